package config

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Contact is the [server.contact] table: the server's contact addresses
// (XEP-0157), served as a form in its disco#info. Each list holds URIs:
// "mailto:", "xmpp:", "https:" or "http:". An empty list is left out of
// the form.
type Contact struct {
	// Abuse is where to report abuse (spam, harassment) by the server's users.
	Abuse []string `toml:"abuse"`
	// Admin reaches the server's administrators.
	Admin []string `toml:"admin"`
	// Feedback takes comments about the service.
	Feedback []string `toml:"feedback"`
	// Sales is for commercial questions.
	Sales []string `toml:"sales"`
	// Security takes reports of security problems.
	Security []string `toml:"security"`
	// Status is where the service's status (outages, maintenance) is published.
	Status []string `toml:"status"`
	// Support helps the server's users.
	Support []string `toml:"support"`
}

// Lists returns the lists by their XEP-0157 names (abuse, admin, …), in
// the order of the XEP's registry.
func (c *Contact) Lists() []ContactList {
	return []ContactList{
		{"abuse", c.Abuse}, {"admin", c.Admin}, {"feedback", c.Feedback}, {"sales", c.Sales},
		{"security", c.Security}, {"status", c.Status}, {"support", c.Support},
	}
}

// ContactList is one kind of contact address and its URIs.
type ContactList struct {
	Kind string // abuse, admin, …: the field is "<kind>-addresses"
	URIs []string
}

func (c *Contact) validate(p *problems) {
	for _, l := range c.Lists() {
		for i, u := range l.URIs {
			if msg := checkContactURI(u); msg != "" {
				p.add("server.contact."+l.Kind, "item %d: %s", i+1, msg)
			}
		}
	}
}

// checkContactURI returns why u is not a usable contact address, or "".
func checkContactURI(u string) string {
	const want = `(want a URI such as "mailto:abuse@example.org", "xmpp:admin@example.org" or "https://example.org/support")`
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme == "" {
		return fmt.Sprintf("%q is not a URI %s", u, want)
	}
	switch strings.ToLower(pu.Scheme) {
	case "mailto":
		if local, domain, ok := strings.Cut(pu.Opaque, "@"); !ok || local == "" || domain == "" {
			return fmt.Sprintf("%q is not a mailto: URI with an address %s", u, want)
		}
	case "xmpp":
		// RFC 5122: xmpp:node@domain, or xmpp://auth/… with an authority.
		addr, _, _ := strings.Cut(pu.Opaque, "?")
		if addr == "" {
			addr = strings.TrimPrefix(pu.Path, "/")
		}
		if a, err := url.PathUnescape(addr); err == nil {
			addr = a
		}
		if _, err := jid.Parse(addr); addr == "" || err != nil {
			return fmt.Sprintf("%q is not an xmpp: URI with a valid JID %s", u, want)
		}
	case "http", "https":
		if pu.Host == "" {
			return fmt.Sprintf("%q has no host %s", u, want)
		}
	default:
		return fmt.Sprintf("%q: scheme %q is not one of mailto, xmpp, https, http %s", u, pu.Scheme, want)
	}
	return ""
}

// ExtDisco is the [extdisco] table: external services such as STUN and
// TURN servers that clients discover through the server (XEP-0215).
type ExtDisco struct {
	// CredentialLifetime is how long the TURN credentials made from a
	// service's secret stay valid.
	CredentialLifetime Duration `toml:"credential_lifetime"`
	// Services are the services offered, one [[extdisco.services]] table
	// each; none turns XEP-0215 off.
	Services []ExternalService `toml:"services"`
}

// ExternalService is one [[extdisco.services]] entry.
type ExternalService struct {
	// Type is the service's type: "stun", "stuns", "turn" or "turns".
	Type string `toml:"type"`
	// Host is the service's host name or IP address.
	Host string `toml:"host"`
	// Port is the service's port; 0 means the type's default (3478 for
	// stun and turn, 5349 for stuns and turns).
	Port int `toml:"port"`
	// Transport is "udp", "tcp" or "" (not said).
	Transport string `toml:"transport"`
	// Name is a label shown to users; "" for none.
	Name string `toml:"name"`
	// Restricted says the service needs credentials the server does not
	// hand out. A service with a secret is always restricted.
	Restricted bool `toml:"restricted"`
	// Secret is the TURN server's shared secret (coturn's
	// static-auth-secret with use-auth-secret): users get time-limited
	// credentials made from it. Only for turn and turns.
	Secret string `toml:"secret"`
	// SecretFile is a file holding Secret instead (surrounding white
	// space is ignored), so that the configuration can be readable by
	// more people than the secret.
	SecretFile string `toml:"secret_file"`
}

// DefaultPort returns the service's port: Port, or its type's default.
func (s *ExternalService) DefaultPort() int {
	if s.Port != 0 {
		return s.Port
	}
	if s.Type == "stuns" || s.Type == "turns" {
		return 5349
	}
	return 3478
}

// maxSecretFile bounds what LoadSecret reads: a secret is a line.
const maxSecretFile = 4096

// LoadSecret returns the service's secret: Secret, or the contents of
// SecretFile without surrounding white space, or "" for none.
func (s *ExternalService) LoadSecret() (string, error) {
	if s.SecretFile == "" {
		return s.Secret, nil
	}
	secret, err := readSecret(s.SecretFile)
	if err != nil {
		return "", fmt.Errorf("config: extdisco secret_file: %w", err)
	}
	return secret, nil
}

// readSecret returns the contents of the file path without surrounding
// white space; an error names the file.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%q is longer than %d bytes (want the secret alone)", path, maxSecretFile)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%q is empty (want the secret)", path)
	}
	return secret, nil
}

func (e *ExtDisco) validate(p *problems) {
	p.positive("extdisco.credential_lifetime", e.CredentialLifetime)
	if e.CredentialLifetime.Duration > 30*24*time.Hour {
		p.add("extdisco.credential_lifetime", "%q is too long (want at most \"720h\"; a leaked credential works that long)", e.CredentialLifetime.String())
	}
	for i := range e.Services {
		s := &e.Services[i]
		item := func(key, format string, args ...any) {
			p.add("extdisco.services."+key, "item %d: "+format, append([]any{i + 1}, args...)...)
		}
		switch s.Type {
		case "stun", "stuns", "turn", "turns":
		default:
			item("type", `invalid value %q (want one of "stun", "stuns", "turn", "turns")`, s.Type)
		}
		switch {
		case s.Host == "":
			item("host", `must not be empty (want a host name such as "turn.example.org" or an IP address)`)
		case !validHost(s.Host):
			item("host", `invalid host %q (want a host name such as "turn.example.org" or an IP address)`, s.Host)
		}
		if s.Port < 0 || s.Port > 65535 {
			item("port", "invalid port %d (want 1-65535, or 0 for the type's default)", s.Port)
		}
		switch s.Transport {
		case "", "udp", "tcp":
		default:
			item("transport", `invalid value %q (want "udp", "tcp" or "")`, s.Transport)
		}
		if s.Secret != "" && s.SecretFile != "" {
			item("secret_file", "set with secret (want one of them)")
		}
		if (s.Secret != "" || s.SecretFile != "") && s.Type != "turn" && s.Type != "turns" {
			key := "secret"
			if s.Secret == "" {
				key = "secret_file"
			}
			item(key, "only turn and turns services take a secret (got type %q)", s.Type)
		}
		if s.SecretFile != "" {
			if _, err := readSecret(s.SecretFile); err != nil {
				item("secret_file", "%v", err)
			}
		}
	}
}

// Component is the [component] table: external components (XEP-0114)
// that connect to the server and serve a domain of their own, such as a
// gateway or a bot.
type Component struct {
	// Listen is the host:port components connect to; "" turns XEP-0114
	// off. Components authenticate with a shared secret only, over plain
	// TCP: listen on a loopback or private address.
	Listen string `toml:"listen"`
	// SendQueueBytes bounds what waits to be written to one component; a
	// component that falls that far behind is disconnected with
	// <resource-constraint/>.
	SendQueueBytes int `toml:"send_queue_bytes"`
	// Services are the components allowed to connect, one
	// [[component.services]] table each.
	Services []ComponentService `toml:"services"`
}

// ComponentService is one [[component.services]] entry.
type ComponentService struct {
	// Domain is the component's domain, which it names in its stream
	// header and every stanza it sends is from.
	Domain string `toml:"domain"`
	// Secret is the shared secret of the handshake.
	Secret string `toml:"secret"`
	// SecretFile is a file holding Secret instead (surrounding white
	// space is ignored).
	SecretFile string `toml:"secret_file"`
}

// LoadSecret returns the component's secret: Secret, or the contents of
// SecretFile without surrounding white space.
func (s *ComponentService) LoadSecret() (string, error) {
	if s.SecretFile == "" {
		return s.Secret, nil
	}
	secret, err := readSecret(s.SecretFile)
	if err != nil {
		return "", fmt.Errorf("config: component %s secret_file: %w", s.Domain, err)
	}
	return secret, nil
}

// validate checks the [component] table; taken are the domains already
// served (server.domain, the muc and upload domains), which a component's
// must differ from.
func (c *Component) validate(p *problems, maxStanzaBytes int, taken ...string) {
	if c.Listen != "" {
		p.addr("component.listen", c.Listen)
	} else if len(c.Services) > 0 {
		p.add("component.listen", `must be set when [[component.services]] are configured (want host:port such as "127.0.0.1:5347")`)
	}
	if maxStanzaBytes >= 10000 && c.SendQueueBytes < maxStanzaBytes {
		p.add("component.send_queue_bytes", "%d is less than c2s.max_stanza_bytes (%d), so a stanza of the largest size "+
			"could never be queued (want at least %[2]d)", c.SendQueueBytes, maxStanzaBytes)
	}
	seen := map[string]int{}
	for i := range c.Services {
		s := &c.Services[i]
		item := func(key, format string, args ...any) {
			p.add("component.services."+key, "item %d: "+format, append([]any{i + 1}, args...)...)
		}
		d, msg := normaliseDomain(s.Domain)
		switch {
		case msg != "":
			item("domain", "%s", strings.Replace(msg, `"example.com"`, `"gateway.example.com"`, 1))
		case strings.HasPrefix(d, "[") || !strings.Contains(d, "."):
			item("domain", "%q is not a subdomain-style name (want one such as %q)", s.Domain, "gateway."+taken[0])
		case slices.Contains(taken, d):
			item("domain", "%q is already served (server.domain, the muc or the upload domain); a component needs a domain of its own (want one such as %q)",
				s.Domain, "gateway."+taken[0])
		case seen[d] != 0:
			item("domain", "%q is item %d's domain too (want one item per component)", s.Domain, seen[d])
		default:
			s.Domain = d
			seen[d] = i + 1
		}
		switch {
		case s.Secret != "" && s.SecretFile != "":
			item("secret_file", "set with secret (want one of them)")
		case s.Secret == "" && s.SecretFile == "":
			item("secret", "must be set, or secret_file (want the shared secret the component authenticates with)")
		case s.SecretFile != "":
			if _, err := readSecret(s.SecretFile); err != nil {
				item("secret_file", "%v", err)
			}
		}
	}
}
