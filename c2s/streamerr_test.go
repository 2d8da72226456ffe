package c2s_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// streamErrorOf returns the condition of the stream error in s, or "".
func streamErrorOf(s string) string {
	i := strings.Index(s, "<stream:error>")
	if i < 0 {
		return ""
	}
	rest := s[i+len("<stream:error><"):]
	return rest[:strings.IndexAny(rest, " />")]
}

// TestStreamErrorsBeforeAuth sends hostile or early input on a fresh
// connection and checks the stream error that closes it.
func TestStreamErrorsBeforeAuth(t *testing.T) {
	srv := xmpptest.Start(t)
	h := srv.Header()
	cases := []struct {
		name, send, cond string
		tls              bool
	}{
		{"stanza before auth", h + "<message to='x@localhost'><body>hi</body></message>", "not-authorized", true},
		{"iq before auth", h + "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "not-authorized", true},
		{"stanza before TLS", h + "<message to='x@localhost'><body>hi</body></message>", "not-authorized", false},
		{"unknown host", strings.Replace(h, "to='localhost'", "to='elsewhere.example'", 1), "host-unknown", false},
		{"wrong namespace", "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='localhost'>", "", false},
		{"not a stream", "<hello/>", "invalid-namespace", false},
		{"DTD", "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY x 'y'>]>" + h, "restricted-xml", false},
		{"comment", h + "<!-- hello -->", "restricted-xml", true},
		{"processing instruction", h + "<?php echo 1; ?>", "restricted-xml", true},
		{"entity reference", h + "<message>&foo;</message>", "restricted-xml", true},
		{"malformed XML", h + "</foo>", "not-well-formed", true},
		{"malformed XML before TLS", h + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></foo>", "not-well-formed", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *xmpptest.Raw
			send := tc.send
			if tc.tls {
				r = srv.DialTLS(t)
				send = strings.TrimPrefix(send, h)
			} else {
				r = srv.DialRaw(t)
			}
			r.Send(send)
			got, closed := r.ReadAll(wait)
			if tc.name == "wrong namespace" {
				// jabber:server on the c2s port is refused (RFC 6120 §4.9.3.10).
				if c := streamErrorOf(got); c != "invalid-namespace" && c != "bad-format" {
					t.Fatalf("got %q, want an invalid-namespace stream error", got)
				}
			} else if c := streamErrorOf(got); c != tc.cond {
				t.Fatalf("stream error = %q, want %q; received %q", c, tc.cond, got)
			}
			if !tc.tls && !strings.Contains(got, "<stream:stream") {
				t.Errorf("no stream header before the error: %q", got)
			}
			if !closed {
				t.Errorf("connection not closed after the stream error")
			}
		})
	}
}

// TestStreamErrorsAfterBind checks the limits on a bound session.
func TestStreamErrorsAfterBind(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.C2S.MaxStanzaBytes = 10000 })
	alice := srv.AddUser(t, "alice", "pw")
	cases := []struct {
		name, send, cond string
	}{
		{"too large", "<message to='alice@localhost'><body>" + strings.Repeat("x", 20000) + "</body></message>", "policy-violation"},
		{"invalid from", "<message to='alice@localhost' from='mallory@localhost'><body>x</body></message>", "invalid-from"},
		{"not a stanza", "<foo xmlns='jabber:client'/>", "unsupported-stanza-type"},
		{"too deep", "<message>" + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + "</message>", "policy-violation"},
		{"comment", "<!-- x -->", "restricted-xml"},
		{"malformed", "<message><body></message>", "not-well-formed"},
		// encoding/xml reads these; written again, nobody could.
		{"bad child name", "<message to='alice@localhost'><a:0 xmlns:a='urn:x'/></message>", "not-well-formed"},
		{"child attribute twice", "<message to='alice@localhost'><x xmlns='urn:x' a='1' a='2'/></message>", "not-well-formed"},
		{"stanza attribute twice", "<message to='alice@localhost' type='chat' type='normal'><body>x</body></message>", "not-well-formed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.Login(t, alice, "pw", xmpptest.LoginOptions{})
			c.Send("%s", tc.send)
			select {
			case <-c.Done():
			case <-time.After(wait):
				t.Fatal("stream not closed")
			}
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tc.cond) {
				t.Fatalf("stream ended with %v, want %s", err, tc.cond)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.C2S.HandshakeTimeout = config.Duration{Duration: 300 * time.Millisecond} })
	r := srv.DialRaw(t)
	r.Send(srv.Header())
	got, closed := r.ReadAll(wait)
	if !closed || streamErrorOf(got) != "connection-timeout" {
		t.Fatalf("idle before auth: closed=%v got %q, want connection-timeout", closed, got)
	}
}

// TestKeepalive: the server pings a silent client; one that answers
// stays, one that does not is closed with connection-timeout; with parked
// sessions (the keepalive then runs from a timer) and without.
func TestKeepalive(t *testing.T) {
	for _, park := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("park_after=%v", park), func(t *testing.T) { testKeepalive(t, park) })
	}
}

func testKeepalive(t *testing.T, park time.Duration) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.PingInterval = config.Duration{Duration: 300 * time.Millisecond}
		c.C2S.PingTimeout = config.Duration{Duration: 300 * time.Millisecond}
		c.C2S.ParkAfter = config.Duration{Duration: park}
	})
	alice := srv.AddUser(t, "alice", "pw")
	good := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "good"})
	bad := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "bad"})
	for i := 0; i < 3; i++ {
		p := good.Expect(wait, "server ping", func(e xmpptest.Element) bool {
			return e.Name.Local == "iq" && e.Attr("type") == "get" && strings.Contains(e.Inner, "urn:xmpp:ping")
		})
		good.Send("<iq type='result' id='%s' to='localhost'/>", p.Attr("id"))
	}
	select {
	case <-bad.Done():
	case <-time.After(wait):
		t.Fatal("silent client not closed")
	}
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "connection-timeout") {
		t.Fatalf("silent client closed with %v, want connection-timeout", err)
	}
	select {
	case <-good.Done():
		t.Fatalf("answering client closed: %v", good.Err())
	default:
	}
}

// TestSlowConsumer: a client that stops reading is disconnected and the
// sender is never blocked.
func TestSlowConsumer(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.SendQueueBytes = 300000 // about 37 of the 8 KB messages below
		c.C2S.WriteTimeout = config.Duration{Duration: time.Second}
	})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "r"})
	// bob logs in over a raw connection and then never reads.
	r := srv.DialTLS(t)
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00bob\x00pw") + "</auth>")
	r.ReadUntil("<success", wait)
	r.Send(srv.Header())
	r.ReadUntil("</stream:features>", wait)
	r.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>slow</resource></bind></iq>")
	r.ReadUntil("</iq>", wait)
	r.Send("<presence/>")
	if tcp, ok := r.Conn.(interface{ NetConn() net.Conn }); ok {
		tcp.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	}
	_ = bob
	big := strings.Repeat("y", 8000)
	start := time.Now()
	for i := 0; i < 500; i++ {
		a.Send("<message to='bob@localhost/slow' type='chat'><body>%d %s</body></message>", i, big)
	}
	a.Send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	a.Expect(10*time.Second, "ping after flooding", func(e xmpptest.Element) bool { return e.Attr("id") == "after" })
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("sender blocked for %v", d)
	}
	xmpptest.WaitFor(t, 10*time.Second, func() error {
		if srv.Router().SessionCount() != 1 {
			return context.DeadlineExceeded
		}
		return nil
	})
}

// TestShutdown: every stream ends with system-shutdown.
func TestShutdown(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{})
	srv.Stop(t)
	select {
	case <-a.Done():
	case <-time.After(wait):
		t.Fatal("stream not closed by shutdown")
	}
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), "system-shutdown") {
		t.Fatalf("stream ended with %v, want system-shutdown", err)
	}
}

// TestWhitespaceDuringNegotiation: clients (go-xmpp, for one) send a
// newline after each element; whitespace between the stream's children is
// meaningless everywhere, negotiation included.
func TestWhitespaceDuringNegotiation(t *testing.T) {
	srv := xmpptest.Start(t)
	srv.AddUser(t, "alice", "pw")
	r := srv.DialRaw(t)
	r.Send(srv.Header() + "\n")
	r.ReadUntil("</stream:features>", wait)
	r.Send("\n  <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n")
	if got := r.ReadUntil("<proceed", wait); !strings.Contains(got, "<proceed") {
		t.Fatalf("STARTTLS after whitespace: %q", got)
	}
	tc := tls.Client(r.Conn, &tls.Config{InsecureSkipVerify: true})
	r.Conn = tc
	r.Reset()
	r.Send(srv.Header() + "\n")
	r.ReadUntil("</stream:features>", wait)
	r.Send("\n<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00pw") + "</auth>\n\t")
	if got := r.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("PLAIN after whitespace: %q", got)
	}
	r.Reset()
	r.Send(srv.Header() + "\r\n")
	r.ReadUntil("</stream:features>", wait)
	r.Send("\n<iq type='set' id='b'>\n <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\n  <resource>ws</resource>\n </bind>\n</iq>\n")
	if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "alice@localhost/ws") {
		t.Fatalf("bind after whitespace: %q", got)
	}
	r.Reset()
	r.Send("\n<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>\n")
	if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "type='result'") {
		t.Fatalf("ping after bind: %q", got)
	}
}

// TestReadRate: a client sending faster than c2s.read_rate is slowed
// down, not disconnected, and loses nothing.
func TestReadRate(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.MaxStanzaBytes = 10000
		c.C2S.ReadRate = 50000 // bytes/s; bursts of 20,000 pass at once
	})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: "b"})
	body := strings.Repeat("z", 4900)
	start := time.Now()
	const n = 20 // about 100 KB
	for i := 0; i < n; i++ {
		a.Send("<message to='bob@localhost/b' type='chat' id='m%d'><body>%s</body></message>", i, body)
	}
	a.Sync()
	// (100,000 - 20,000 burst) bytes at 50,000 bytes/s: at least 1.6 s.
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("100 KB read in %v; the 50 KB/s limit was not applied", d)
	}
	got := 0
	for _, e := range b.Sync() {
		if e.Name.Local == "message" {
			got++
		}
	}
	if got != n {
		t.Fatalf("bob received %d messages, want %d", got, n)
	}
	select {
	case <-a.Done():
		t.Fatalf("the fast sender was disconnected: %v", a.Err())
	default:
	}
}

// dialAuthenticated logs alice in with PLAIN over STARTTLS and returns with
// the restarted stream's features read, before resource binding.
func dialAuthenticated(t *testing.T, srv *xmpptest.Server) *xmpptest.Raw {
	t.Helper()
	r := srv.DialTLS(t)
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00pw") + "</auth>")
	if got := r.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("PLAIN: %q", got)
	}
	r.Reset()
	r.Send(srv.Header())
	if got := r.ReadUntil("</stream:features>", wait); !strings.Contains(got, "<bind ") {
		t.Fatalf("features after SASL: %q", got)
	}
	r.Reset()
	return r
}

// closeAndExpectEnd closes the client's stream and wants the server's
// closing tag, alone, and then the end of the connection.
func closeAndExpectEnd(t *testing.T, r *xmpptest.Raw) {
	t.Helper()
	r.Reset()
	r.Send("</stream:stream>")
	got, closed := r.ReadAll(wait)
	if got != "</stream:stream>" || !closed {
		t.Fatalf("got %q (closed %v), want the closing tag and the end", got, closed)
	}
}

// TestNegotiationEdges covers what a client may do during negotiation
// besides logging in: close its stream, send SASL before a required
// STARTTLS, and retry a refused bind.
func TestNegotiationEdges(t *testing.T) {
	srv := xmpptest.Start(t)
	srv.AddUser(t, "alice", "pw")

	t.Run("client closes before TLS", func(t *testing.T) {
		r := srv.DialRaw(t)
		r.Send(srv.Header())
		r.ReadUntil("</stream:features>", wait)
		closeAndExpectEnd(t, r)
	})
	t.Run("client closes during SASL", func(t *testing.T) {
		r := srv.DialTLS(t)
		r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>" + b64("n,,n=alice,r=abcdefgh") + "</auth>")
		r.ReadUntil("</challenge>", wait)
		closeAndExpectEnd(t, r)
	})
	t.Run("SASL before required STARTTLS", func(t *testing.T) {
		r := srv.DialRaw(t)
		r.Send(srv.Header())
		if got := r.ReadUntil("</stream:features>", wait); strings.Contains(got, "<mechanisms") {
			t.Fatalf("SASL offered before TLS: %q", got)
		}
		r.Reset()
		r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00pw") + "</auth>")
		want := "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>"
		if got := r.ReadUntil("</failure>", wait); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		// The stream goes on: STARTTLS still works.
		r.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		if got := r.ReadUntil("<proceed", wait); !strings.Contains(got, "<proceed") {
			t.Fatalf("STARTTLS after the failure: %q", got)
		}
	})
	t.Run("bind refused, then retried", func(t *testing.T) {
		r := dialAuthenticated(t, srv)
		r.Send("<iq type='get' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
		if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "type='error' id='b1'") || !strings.Contains(got, "<bad-request") {
			t.Fatalf("bind with type get: %q, want a bad-request error", got)
		}
		r.Reset()
		// Without an id the error has none either, rather than an empty one.
		r.Send("<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
		want := "<iq type='error'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>an iq needs an id</text></error></iq>"
		if got := r.ReadUntil("</iq>", wait); got != want {
			t.Fatalf("bind without an id: %q, want %q", got, want)
		}
		r.Reset()
		r.Send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>")
		if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "<jid>alice@localhost/again</jid>") {
			t.Fatalf("second bind: %q", got)
		}
		r.Reset()
		r.Send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "type='result'") {
			t.Fatalf("ping after bind: %q", got)
		}
	})
	t.Run("stanza after SASL, before bind", func(t *testing.T) {
		r := dialAuthenticated(t, srv)
		r.Send("<message to='alice@localhost'><body>early</body></message>")
		got, closed := r.ReadAll(wait)
		if streamErrorOf(got) != "not-authorized" || !closed {
			t.Fatalf("got %q (closed %v), want not-authorized", got, closed)
		}
	})
}
