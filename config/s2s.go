package config

import (
	"strings"
	"time"
)

// S2S is the [s2s] table: federation with other XMPP servers (RFC 6120
// server-to-server streams, XEP-0178 SASL EXTERNAL, XEP-0220 dialback,
// XEP-0368 direct TLS).
type S2S struct {
	// Enabled turns federation on; false answers every stanza for
	// another domain with remote-server-not-found, and opens no listener.
	Enabled bool `toml:"enabled"`
	// Listen is the host:port other servers connect to (STARTTLS); ""
	// turns inbound federation off.
	Listen string `toml:"listen"`
	// DirectTLSListen is the host:port for XEP-0368 direct TLS server
	// connections; "" disables it.
	DirectTLSListen string `toml:"direct_tls_listen"`
	// RequireTLS refuses streams, both ways, without TLS, except with
	// InsecureDomains.
	RequireTLS bool `toml:"require_tls"`
	// Dialback accepts and uses dialback (XEP-0220) with peers whose
	// certificate does not verify; false federates only with peers
	// whose certificates verify (and InsecureDomains).
	Dialback bool `toml:"dialback"`
	// CAFile is a PEM file of extra trusted roots for peers' certificates
	// (a private CA), besides the system's.
	CAFile string `toml:"ca_file"`
	// InsecureDomains are peers accepted without TLS or a verified
	// certificate (dialback alone): private networks and tests.
	InsecureDomains []string `toml:"insecure_domains"`
	// Allow, when not empty, is the only peers federated with; Deny are
	// peers never federated with.
	Allow []string `toml:"allow"`
	Deny  []string `toml:"deny"`
	// ConnectTimeout bounds setting up an outgoing stream (DNS, TCP, TLS,
	// authentication); past it, waiting stanzas get remote-server-timeout.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// IdleTimeout closes a stream nothing crossed for that long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// RetryDelay is how long messages with a body wait for one more
	// connection attempt before they are bounced.
	RetryDelay Duration `toml:"retry_delay"`
	// QueueStanzas bounds the stanzas waiting for one peer's stream.
	QueueStanzas int `toml:"queue_stanzas"`
	// MaxStanzaBytes bounds one stanza read from a peer.
	MaxStanzaBytes int `toml:"max_stanza_bytes"`
	// ReadRate is the bytes per second one peer connection may send.
	ReadRate int `toml:"read_rate"`
	// Routes name the address of a peer's domain, bypassing DNS.
	Routes []S2SRoute `toml:"routes"`
}

// S2SRoute is one [[s2s.routes]] entry.
type S2SRoute struct {
	// Domain is the peer's domain.
	Domain string `toml:"domain"`
	// Address is its host:port (STARTTLS).
	Address string `toml:"address"`
}

func defaultS2S() S2S {
	return S2S{
		Enabled:         true,
		Listen:          ":5269",
		DirectTLSListen: ":5270",
		RequireTLS:      true,
		Dialback:        true,
		InsecureDomains: []string{},
		Allow:           []string{},
		Deny:            []string{},
		ConnectTimeout:  Duration{10 * time.Second},
		IdleTimeout:     Duration{10 * time.Minute},
		RetryDelay:      Duration{5 * time.Second},
		QueueStanzas:    1000,
		MaxStanzaBytes:  262144,
		ReadRate:        1 << 20,
		Routes:          []S2SRoute{},
	}
}

func (s *S2S) validate(p *problems) {
	if s.Listen != "" {
		p.addr("s2s.listen", s.Listen)
	}
	if s.DirectTLSListen != "" {
		p.addr("s2s.direct_tls_listen", s.DirectTLSListen)
	}
	if s.CAFile != "" {
		p.readable("s2s.ca_file", s.CAFile)
	}
	domains := func(key string, list []string) {
		for i, d := range list {
			n, msg := normaliseDomain(d)
			if msg != "" {
				p.add(key, "item %d: %s", i+1, msg)
				continue
			}
			list[i] = n
		}
	}
	domains("s2s.insecure_domains", s.InsecureDomains)
	domains("s2s.allow", s.Allow)
	domains("s2s.deny", s.Deny)
	p.positive("s2s.connect_timeout", s.ConnectTimeout)
	p.positive("s2s.idle_timeout", s.IdleTimeout)
	p.notNegative("s2s.retry_delay", s.RetryDelay, "0 bounces at once")
	p.between("s2s.queue_stanzas", s.QueueStanzas, 1, 1000000, "")
	p.between("s2s.max_stanza_bytes", s.MaxStanzaBytes, 10000, 1<<30, "")
	p.between("s2s.read_rate", s.ReadRate, 0, 1<<30, "0 sets no limit")
	seen := map[string]int{}
	for i := range s.Routes {
		r := &s.Routes[i]
		d, msg := normaliseDomain(r.Domain)
		switch {
		case msg != "":
			p.add("s2s.routes.domain", "item %d: %s", i+1, msg)
		case seen[d] != 0:
			p.add("s2s.routes.domain", "item %d: %q is item %d's domain too (want one route per domain)", i+1, r.Domain, seen[d])
		default:
			r.Domain, seen[d] = d, i+1
		}
		if _, _, msg := splitAddr(r.Address); msg != "" || strings.HasPrefix(r.Address, ":") {
			if msg == "" {
				msg = "a route needs a host"
			}
			p.add("s2s.routes.address", "item %d: %s", i+1, msg)
		}
	}
}
