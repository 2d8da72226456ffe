package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"mellium.im/xmpp/jid"
)

// The checks shared by the sections' validate methods in config.go.

// oneOf records a problem unless v is one of valid.
func (p *problems) oneOf(key, v string, valid ...string) {
	for _, ok := range valid {
		if v == ok {
			return
		}
	}
	quoted := make([]string, len(valid))
	for i, s := range valid {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	p.add(key, "invalid value %q (want one of %s)", v, strings.Join(quoted, ", "))
}

// atLeast records a problem when n < lowest; why, if not empty, says where
// the bound comes from.
func (p *problems) atLeast(key string, n, lowest int, why string) {
	if n >= lowest {
		return
	}
	if why != "" {
		why = ", " + why
	}
	p.add(key, "%d is too small (want at least %d%s)", n, lowest, why)
}

// between records a problem unless lowest <= n <= highest; why, if not
// empty, says what the lowest value means.
func (p *problems) between(key string, n, lowest, highest int, why string) {
	switch {
	case n < lowest && n < 0:
		if why != "" {
			why = "; " + why
		}
		p.add(key, "must not be negative (got %d%s)", n, why)
	case n < lowest:
		p.atLeast(key, n, lowest, why)
	case n > highest:
		p.add(key, "%d is absurdly large (want at most %d)", n, highest)
	}
}

// cidrs records a problem for each item of list that is not a CIDR
// (192.0.2.0/24, 2001:db8::/32; a bare address stands for itself).
func (p *problems) cidrs(key string, list []string) {
	for i, s := range list {
		if _, err := ParsePrefix(s); err != nil {
			p.add(key, "item %d: %q is not a network (want CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\", or an address)", i+1, s)
		}
	}
}

// ParsePrefix parses a network in CIDR notation, or a single address as
// the network of that address alone.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a := pr.Addr(); a.Is4In6() {
			if pr.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("IPv4-mapped network %s is wider than IPv4", s)
			}
			pr = netip.PrefixFrom(a.Unmap(), pr.Bits()-96)
		}
		return pr.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Prefixes parses a list that passed validation (see [ParsePrefix]); an
// item that does not parse is left out.
func Prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if pr, err := ParsePrefix(s); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// positive records a problem unless d > 0.
func (p *problems) positive(key string, d Duration) {
	if d.Duration <= 0 {
		p.add(key, "must be more than 0s (got %q)", d.String())
	}
}

// notNegative records a problem when d < 0; zero says what 0 means.
func (p *problems) notNegative(key string, d Duration, zero string) {
	if d.Duration < 0 {
		p.add(key, "must not be negative (got %q; %s)", d.String(), zero)
	}
}

// addr records a problem unless a is a valid listen address.
func (p *problems) addr(key, a string) {
	if _, _, msg := splitAddr(a); msg != "" {
		p.add(key, "%s", msg)
	}
}

// splitAddr splits a listen address "host:port" with a port of 1-65535 and a
// host that is empty (all interfaces), an IP address or a host name. On
// failure msg says why.
func splitAddr(a string) (host, port, msg string) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Sprintf(`invalid address %q (want host:port such as ":5222", "127.0.0.1:5222" or "[::1]:5222")`, a)
	}
	if !validPort(port) {
		return "", "", fmt.Sprintf("invalid port %q (want 1-65535)", port)
	}
	if host != "" && !validHost(host) {
		return "", "", fmt.Sprintf("invalid host %q (want an IP address or a host name, or nothing for all interfaces)", host)
	}
	return host, port, ""
}

func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkDistinctAddrs records a problem for each listen address that would
// bind a port an earlier one already binds. Each pair is a key and its value;
// empty and invalid values are skipped.
func (p *problems) checkDistinctAddrs(addrs [][2]string) {
	for j := range addrs {
		hj, pj, msg := splitAddr(addrs[j][1])
		if addrs[j][1] == "" || msg != "" {
			continue
		}
		for i := range j {
			hi, pi, msg := splitAddr(addrs[i][1])
			if addrs[i][1] == "" || msg != "" || pi != pj {
				continue
			}
			if hi == hj || wildcard(hi) || wildcard(hj) {
				p.add(addrs[j][0], "%q uses the same port as %s (%q); give each listener its own port",
					addrs[j][1], addrs[i][0], addrs[i][1])
				break
			}
		}
	}
}

// wildcard reports whether host, from a listen address, means all interfaces.
func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// readable records a problem unless path names a regular file this process
// can open. It looks before it opens, so that a FIFO cannot block it.
func (p *problems) readable(key, path string) {
	fi, err := os.Stat(path)
	if err == nil {
		switch {
		case fi.IsDir():
			p.add(key, "%q is a directory (want a PEM file)", path)
			return
		case !fi.Mode().IsRegular():
			p.add(key, "%q is not a regular file (want a PEM file)", path)
			return
		}
		var f *os.File
		if f, err = os.Open(path); err == nil {
			f.Close()
			return
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	p.add(key, "cannot read %q: %v", path, err)
}

// normaliseDomain returns d as an XMPP domainpart (RFC 7622 §3.2), or a
// message saying why it is not one.
func normaliseDomain(d string) (norm, msg string) {
	const want = `want a domain such as "example.com"`
	switch {
	case d == "":
		return "", "must not be empty (" + want + ", the part after the @ in your users' addresses)"
	case strings.ContainsAny(d, "@/"):
		return "", fmt.Sprintf("%q is a JID, not a domain (%s)", d, want)
	}
	j, err := jid.New("", d, "")
	if err != nil {
		return "", fmt.Sprintf("invalid domain %q: %v (%s)", d, err, want)
	}
	norm = j.Domainpart()
	if norm[0] != '[' && strings.Contains("."+norm+".", "..") {
		return "", fmt.Sprintf("invalid domain %q: empty label (%s)", d, want)
	}
	return norm, ""
}

// validPostgresDSN reports whether s looks like a libpq connection string: a
// postgres:// or postgresql:// URL, or key=value pairs. The driver checks the
// rest when it connects.
func validPostgresDSN(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, err := url.Parse(s)
		return err == nil
	}
	return strings.Contains(s, "=")
}

// checkPublicURL returns "" when s is an absolute http(s) URL fit to put
// paths after, or a message saying why not.
func checkPublicURL(s string) string {
	const want = `want an absolute http:// or https:// URL such as "https://xmpp.example.com"`
	u, err := url.Parse(s)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Sprintf("invalid URL %q (%s)", s, want)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Sprintf("%q has a query or fragment (%s, optionally with a path)", s, want)
	}
	return ""
}

// checkOrigin returns "" when s is "*" or a web origin, scheme://host with
// an optional port and nothing after, or a message saying why not.
func checkOrigin(s string) string {
	if s == "*" {
		return ""
	}
	const want = `want an origin such as "https://chat.example.com", or "*"`
	u, err := url.Parse(s)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Sprintf("invalid origin %q (%s)", s, want)
	case strings.TrimRight(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Sprintf("%q is more than an origin (%s)", s, want)
	}
	return ""
}
