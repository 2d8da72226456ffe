package s2s_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// rawPeer is a hand-driven server-to-server stream.
type rawPeer struct {
	t   *testing.T
	nc  net.Conn
	buf strings.Builder
}

func dialPeer(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPeer{t: t, nc: nc}
}

func (p *rawPeer) send(s string) {
	p.t.Helper()
	if _, err := p.nc.Write([]byte(s)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// until reads until want has arrived and returns what was read since the
// last call.
func (p *rawPeer) until(want string) string {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	b := make([]byte, 4096)
	for !strings.Contains(p.buf.String(), want) {
		p.nc.SetReadDeadline(deadline)
		n, err := p.nc.Read(b)
		p.buf.Write(b[:n])
		if err != nil {
			p.t.Fatalf("reading until %q: %v; got %q", want, err, p.buf.String())
		}
	}
	s := p.buf.String()
	p.buf.Reset()
	return s
}

func (p *rawPeer) header(from, to string) {
	p.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' from='" +
		from + "' to='" + to + "'>")
}

// external authenticates as from with a certificate of ca for from.
func (p *rawPeer) external(ca *xmpptest.CA, from, to string) {
	p.t.Helper()
	cert, key := ca.Issue(p.t, from)
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		p.t.Fatal(err)
	}
	p.header(from, to)
	p.until("</stream:features>")
	p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	p.until("<proceed")
	tc := tls.Client(p.nc, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}, ServerName: to})
	if err := tc.Handshake(); err != nil {
		p.t.Fatal(err)
	}
	p.nc = tc
	p.header(from, to)
	if f := p.until("</stream:features>"); !strings.Contains(f, "<mechanism>EXTERNAL</mechanism>") {
		p.t.Fatalf("no EXTERNAL offered: %s", f)
	}
	p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
	p.until("<success")
	p.header(from, to)
	p.until("</stream:features>")
}

// TestInboundChecks: what a peer sends must be from the domain it
// authenticated and to one this server serves (RFC 6120 §4.9.3.9,
// §4.9.3.6); a stream to a domain not served is refused at its header.
func TestInboundChecks(t *testing.T) {
	ca := xmpptest.NewCA(t)
	addr := xmpptest.FreePort(t)
	b := xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("b.test"), xmpptest.WithS2S(addr)}, trusting(ca, "b.test")...)...)
	bob := login(t, b, "bob", "desk")

	cases := []struct {
		name, stanza, want string
	}{
		{"forged from", "<message from='alice@a.test/x' to='bob@b.test'><body>forged</body></message>", "<invalid-from"},
		{"to elsewhere", "<message from='mallory@evil.test/x' to='carol@c.test'><body>relay?</body></message>", "<host-unknown"},
		{"no from", "<message to='bob@b.test'><body>no from</body></message>", "<improper-addressing"},
		{"too deep", "<message from='mallory@evil.test/x' to='bob@b.test'>" + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + "</message>", "<policy-violation"},
		// Names encoding/xml accepts but nobody could read written
		// again, and attributes given twice (to bob and to someone
		// else): never routed, stored or relayed.
		{"bad child name", "<message from='mallory@evil.test/x' to='bob@b.test'><a:0 xmlns:a='urn:x'/></message>", "<not-well-formed"},
		{"bad attribute name", "<message from='mallory@evil.test/x' to='bob@b.test'><x xmlns='urn:x' a:='1'/></message>", "<not-well-formed"},
		{"to twice", "<message from='mallory@evil.test/x' to='bob@b.test' to='bob@b.test'><body>x</body></message>", "<not-well-formed"},
		{"child attribute twice", "<message from='mallory@evil.test/x' to='bob@b.test'><x xmlns='urn:x' a='1' a='2'/></message>", "<not-well-formed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := dialPeer(t, addr)
			p.external(ca, "evil.test", "b.test")
			p.send(c.stanza)
			if got := p.until("</stream:stream>"); !strings.Contains(got, c.want) {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
	// A stanza from the authenticated domain is routed.
	p := dialPeer(t, addr)
	p.external(ca, "evil.test", "b.test")
	p.send("<message from='mallory@evil.test/x' to='bob@b.test' type='chat'><body>legit</body></message>")
	bob.Expect(5*time.Second, "mallory's message", isMessageFrom("mallory@evil.test/x"))
	bob.ExpectNone(200*time.Millisecond, "a forged message", func(e xmpptest.Element) bool { return e.Contains("forged") })

	t.Run("unknown host", func(t *testing.T) {
		p := dialPeer(t, addr)
		p.header("evil.test", "c.test")
		if got := p.until("</stream:stream>"); !strings.Contains(got, "<host-unknown") {
			t.Errorf("got %s", got)
		}
	})
	t.Run("stanza before auth", func(t *testing.T) {
		p := dialPeer(t, addr)
		p.header("evil.test", "b.test")
		p.until("</stream:features>")
		p.send("<message from='mallory@evil.test/x' to='bob@b.test'><body>early</body></message>")
		if got := p.until("</stream:stream>"); !strings.Contains(got, "<not-authorized") {
			t.Errorf("got %s", got)
		}
	})
	t.Run("our own domain", func(t *testing.T) {
		p := dialPeer(t, addr)
		p.header("b.test", "b.test")
		if got := p.until("</stream:stream>"); !strings.Contains(got, "<invalid-from") {
			t.Errorf("a peer claiming b.test to b.test: got %s", got)
		}
	})
	t.Run("SASL failing twice", func(t *testing.T) {
		p := dialPeer(t, addr)
		p.header("evil.test", "b.test")
		p.until("</stream:features>")
		p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>")
		p.until("</failure>")
		p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>")
		if got := p.until("</stream:stream>"); !strings.Contains(got, "<not-authorized") {
			t.Errorf("got %s", got)
		}
	})
	t.Run("denied", func(t *testing.T) {
		addr := xmpptest.FreePort(t)
		xmpptest.Start(t, xmpptest.WithDomain("c.test"), xmpptest.WithS2S(addr), func(c *config.Config) { c.S2S.Deny = []string{"evil.test"} })
		p := dialPeer(t, addr)
		p.header("evil.test", "c.test")
		if got := p.until("</stream:stream>"); !strings.Contains(got, "<policy-violation") {
			t.Errorf("got %s", got)
		}
	})
}

// TestUnreachable: a peer that is down gets the sender
// remote-server-not-found at once (messages with a body after the one
// retry); one that accepts TCP but never answers, remote-server-timeout
// after connect_timeout. Broadcast presence is not bounced.
func TestUnreachable(t *testing.T) {
	down := xmpptest.FreePort(t) // nothing listens there
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	a := xmpptest.Start(t, xmpptest.WithDomain("a.test"), xmpptest.WithS2S(xmpptest.FreePort(t)),
		xmpptest.WithS2SRoute("down.test", down), xmpptest.WithS2SRoute("silent.test", silent.Addr().String()),
		func(c *config.Config) {
			c.S2S.ConnectTimeout = config.Duration{Duration: time.Second}
			c.S2S.RetryDelay = config.Duration{Duration: 300 * time.Millisecond}
		})
	alice := login(t, a, "alice", "phone")
	for _, c := range []struct{ domain, cond, typ string }{
		{"down.test", "remote-server-not-found", "cancel"},
		{"silent.test", "remote-server-timeout", "wait"},
	} {
		start := time.Now()
		alice.Send("<iq type='get' to='%s' id='iq-%[1]s'><ping xmlns='urn:xmpp:ping'/></iq>", c.domain)
		alice.Send("<message to='u@%s' id='m-%[1]s'><body>hi</body></message>", c.domain)
		alice.Send("<presence to='u@%s'/>", c.domain)
		alice.Send("<presence to='u@%s' type='subscribe' id='s-%[1]s'/>", c.domain)
		// A room join waits for an answer: it is bounced, unlike presence
		// to a bare JID (above: a broadcast's kind).
		alice.Send("<presence to='lounge@%s/alice' id='j-%[1]s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", c.domain)
		got := map[string]xmpptest.Element{}
		for len(got) < 4 {
			e := alice.Expect(5*time.Second, "the bounces for "+c.domain, func(e xmpptest.Element) bool { return strings.HasSuffix(e.Attr("id"), "-"+c.domain) })
			got[e.Attr("id")] = e
		}
		for id, e := range got {
			if e.Attr("type") != "error" || !e.Contains("<"+c.cond) || !e.Contains("type='"+c.typ+"'") {
				t.Errorf("%s: %s", id, e.Raw)
			}
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%s: bounces took %v", c.domain, d)
		}
	}
	alice.ExpectNone(300*time.Millisecond, "a bounced presence to a bare JID", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "error" && !strings.HasPrefix(e.Attr("id"), "j-")
	})
}

// TestLimits: a stanza over s2s.max_stanza_bytes ends the peer's stream
// with policy-violation; a peer flooding faster than s2s.read_rate is
// slowed while another peer's stanzas pass at once.
func TestLimits(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), append(trusting(ca, "b.test"), func(c *config.Config) {
		c.S2S.MaxStanzaBytes = 10000 // bursts of 20,000 bytes
		c.S2S.ReadRate = 20000
	}))
	alice, bob := chat(t, f)

	p := dialPeer(t, f.bAddr)
	p.external(ca, "evil.test", "b.test")
	p.send("<message from='m@evil.test/x' to='bob@b.test'><body>" + strings.Repeat("x", 11000) + "</body></message>")
	if got := p.until("</stream:stream>"); !strings.Contains(got, "<policy-violation") {
		t.Errorf("too large: %s", got)
	}

	flood := dialPeer(t, f.bAddr)
	flood.external(ca, "evil.test", "b.test")
	msg := "<message from='m@evil.test/x' to='bob@b.test' type='chat'><body>" + strings.Repeat("y", 900) + "</body></message>"
	start := time.Now()
	go func() {
		for i := range 100 { // about 100 KB: five seconds at 20 KB/s
			flood.nc.Write([]byte(strings.Replace(msg, "<body>", fmt.Sprintf("<body>%d ", i), 1)))
		}
	}()
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	alice.Send("<message to='bob@b.test' type='chat' id='during'><body>through the flood</body></message>")
	bob.Expect(5*time.Second, "alice's message during the flood", func(e xmpptest.Element) bool {
		return e.Attr("id") == "during"
	})
	if d := time.Since(sent); d > time.Second {
		t.Errorf("alice's message took %v during the flood", d)
	}
	bob.Expect(15*time.Second, "the flood's last message", func(e xmpptest.Element) bool { return e.Contains("<body>99 ") })
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("100 KB from one peer passed in %v at a read rate of 20 KB/s", d)
	}
}

// TestDirectTLS: the XEP-0368 listener takes TLS from the first byte,
// with ALPN xmpp-server, and SASL EXTERNAL then.
func TestDirectTLS(t *testing.T) {
	ca := xmpptest.NewCA(t)
	addr := xmpptest.FreePort(t)
	b := xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("b.test"), xmpptest.WithS2S(""), func(c *config.Config) { c.S2S.DirectTLSListen = addr }},
		trusting(ca, "b.test")...)...)
	bob := login(t, b, "bob", "desk")
	cert, key := ca.Issue(t, "evil.test")
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}, ServerName: "b.test", NextProtos: []string{"xmpp-server"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	if tc.ConnectionState().NegotiatedProtocol != "xmpp-server" {
		t.Errorf("ALPN %q", tc.ConnectionState().NegotiatedProtocol)
	}
	p := &rawPeer{t: t, nc: tc}
	p.header("evil.test", "b.test")
	if f := p.until("</stream:features>"); !strings.Contains(f, "EXTERNAL") || strings.Contains(f, "starttls") {
		t.Fatalf("features %s", f)
	}
	p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
	p.until("<success")
	p.header("evil.test", "b.test")
	p.until("</stream:features>")
	p.send("<message from='m@evil.test/x' to='bob@b.test' type='chat'><body>direct</body></message>")
	bob.Expect(5*time.Second, "the message over direct TLS", isMessageFrom("m@evil.test/x"))
}
