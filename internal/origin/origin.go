// Package origin says where a browser's request comes from, for the
// WebSocket and BOSH endpoints alike: whether the page's origin may use them
// ([http] allowed_origins: the WebSocket's Origin check and BOSH's CORS),
// and the client's address and encryption behind trusted proxies ([http]
// trusted_proxies).
package origin

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Allowed reports whether the page origin ("https://chat.example.org")
// may use an endpoint of the server. allowed is [http] allowed_origins:
// "*" allows any; empty allows pages of the host the request was sent to
// (host, the request's Host) or of publicURL's host.
func Allowed(origin string, allowed []string, host, publicURL string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(allowed) == 0 {
		if strings.EqualFold(u.Host, host) {
			return true
		}
		if p, err := url.Parse(publicURL); err == nil && p.Host != "" && strings.EqualFold(u.Host, p.Host) {
			return true
		}
		return false
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// Request applies Allowed to r's Origin header. A request without one is
// not from a browser page: the rule protects browsers' users only.
func Request(r *http.Request, allowed []string, publicURL string) bool {
	o := r.Header.Get("Origin")
	return o == "" || Allowed(o, allowed, r.Host, publicURL)
}

// LoopbackProxies are the proxies trusted when none are configured.
var LoopbackProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Client returns the address of the client behind r and whether its
// connection is encrypted: r's peer and TLS state, unless the peer is one of
// the trusted proxies, which may say (X-Forwarded-Proto: https) that the
// client's connection to them is encrypted and (the last address of
// X-Forwarded-For, the one it added) where the client is.
func Client(r *http.Request, trusted []netip.Prefix) (remote netip.AddrPort, secure bool) {
	remote, secure = addrPort(r.RemoteAddr), r.TLS != nil
	if !slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(remote.Addr()) }) {
		return remote, secure
	}
	if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		secure = true
	}
	if ip := forwardedFor(r); ip.IsValid() {
		remote = netip.AddrPortFrom(ip, 0)
	}
	return remote, secure
}

// forwardedFor returns the last address of X-Forwarded-For, or the zero
// Addr.
func forwardedFor(r *http.Request) netip.Addr {
	v := r.Header.Values("X-Forwarded-For")
	if len(v) == 0 {
		return netip.Addr{}
	}
	last := v[len(v)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func addrPort(s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
