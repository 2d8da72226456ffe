package c2s_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 5 * time.Second

func TestLoginMechanisms(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "wonder land")
	cases := []struct {
		name string
		o    xmpptest.LoginOptions
	}{
		{"SCRAM-SHA-256", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256}}},
		{"SCRAM-SHA-1", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha1}}},
		{"SCRAM-SHA-256-PLUS/TLS1.3", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256Plus}}},
		{"SCRAM-SHA-1-PLUS/TLS1.3", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha1Plus}}},
		{"SCRAM-SHA-256-PLUS/TLS1.2", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256Plus},
			TLS: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}},
		{"PLAIN", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.Plain}}},
		{"direct TLS SCRAM-SHA-256", xmpptest.LoginOptions{DirectTLS: true}},
		{"direct TLS SCRAM-SHA-256-PLUS", xmpptest.LoginOptions{DirectTLS: true, Mechs: []sasl.Mechanism{sasl.ScramSha256Plus}}},
		{"chosen resource", xmpptest.LoginOptions{Resource: "laptop"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.Login(t, alice, "wonder land", tc.o)
			if c.JID.Bare().String() != "alice@localhost" || c.JID.Resourcepart() == "" {
				t.Fatalf("bound JID = %s, want alice@localhost/<resource>", c.JID)
			}
			if tc.o.Resource != "" && c.JID.Resourcepart() != tc.o.Resource {
				t.Fatalf("resource = %q, want %q", c.JID.Resourcepart(), tc.o.Resource)
			}
			// The session works: the server answers a ping.
			c.Send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			r := c.Expect(wait, "ping result", xmpptest.IsStanza("iq", "result"))
			if r.Attr("id") != "p1" || r.Attr("from") != "localhost" {
				t.Fatalf("ping answer = %s", r.Raw)
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "secret")
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run("wrong password "+mech.Name, func(t *testing.T) {
			_, err := srv.TryLogin(t, alice, "not the password", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{mech}})
			if err == nil || !strings.Contains(err.Error(), "not-authorized") {
				t.Fatalf("login with a wrong password: err = %v, want not-authorized", err)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		bob := alice
		bob, _ = bob.WithResource("")
		_, err := srv.TryLogin(t, mustJID(t, "nobody@localhost"), "secret", xmpptest.LoginOptions{})
		if err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Fatalf("login as unknown user: err = %v, want not-authorized", err)
		}
	})
}

// TestSASLRetryAndThrottle speaks SASL by hand: a wrong PLAIN password is
// refused with not-authorized, the client may retry on the same stream,
// and after max_failures even the right password is refused for a while,
// for that account from that address only.
func TestSASLRetryAndThrottle(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.Auth.MaxFailures = 3
		c.Auth.Lockout = config.Duration{Duration: time.Hour}
	})
	srv.AddUser(t, "alice", "secret")
	srv.AddUser(t, "bob", "bob's secret")
	tc := srv.DialTLS(t)
	plain := func(pw string) string {
		return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00"+pw) + "</auth>"
	}
	tc.Send(plain("wrong1"))
	if got := tc.ReadUntil("</failure>", wait); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("first wrong password: %q, want not-authorized", got)
	}
	tc.Send(plain("wrong2"))
	if got := tc.ReadUntil("</failure>", wait); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("second wrong password: %q", got)
	}
	tc.Send(plain("secret"))
	if got := tc.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("retry with the right password: %q, want success", got)
	}

	// Now three failures lock the account out.
	tc2 := srv.DialTLS(t)
	for i := 0; i < 3; i++ {
		tc2.Send(plain("wrong"))
		tc2.ReadUntil("</failure>", wait)
		tc2.Reset()
	}
	tc2.Send(plain("secret"))
	got := tc2.ReadUntil("</failure>", wait)
	if !strings.Contains(got, "<temporary-auth-failure") || strings.Contains(got, "<success") {
		t.Fatalf("right password while locked out: %q, want temporary-auth-failure", got)
	}
	// The refusal is for alice from this address, not for the address:
	// bob logs in on the same connection.
	tc2.Reset()
	tc2.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00bob\x00bob's secret") + "</auth>")
	if got := tc2.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("bob from the same address: %q, want success", got)
	}
}

func TestMessagesBetweenResources(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw-a")
	bob := srv.AddUser(t, "bob", "pw-b")
	a := srv.Login(t, alice, "pw-a", xmpptest.LoginOptions{Resource: "a1"})
	b1 := srv.Login(t, bob, "pw-b", xmpptest.LoginOptions{Resource: "phone"})
	b2 := srv.Login(t, bob, "pw-b", xmpptest.LoginOptions{Resource: "desk"})
	for _, c := range []*xmpptest.Client{a, b1, b2} {
		c.Send("<presence/>")
	}
	// Each of bob's resources sees the other's initial presence.
	b1.Expect(wait, "presence of desk", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "bob@localhost/desk"
	})
	b2.Expect(wait, "presence of phone", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "bob@localhost/phone"
	})

	// full → full reaches that resource only.
	a.Send("<message to='bob@localhost/desk' type='chat' id='m1'><body>to desk</body></message>")
	m := b2.Expect(wait, "message to desk", xmpptest.IsStanza("message", "chat"))
	if m.Attr("from") != "alice@localhost/a1" || !strings.Contains(m.Inner, "<body>to desk</body>") || m.Attr("id") != "m1" {
		t.Fatalf("desk got %s", m.Raw)
	}
	b1.ExpectNone(200*time.Millisecond, "message for desk", xmpptest.IsStanza("message", ""))

	// full → bare reaches the resources of highest priority.
	b1.Send("<presence><priority>5</priority></presence>")
	b2.Expect(wait, "phone's new presence", func(e xmpptest.Element) bool { return e.Contains("<priority>5</priority>") })
	a.Send("<message to='bob@localhost' type='chat'><body>to bob</body></message>")
	m = b1.Expect(wait, "message to bare", xmpptest.IsStanza("message", "chat"))
	if !strings.Contains(m.Inner, "to bob") {
		t.Fatalf("phone got %s", m.Raw)
	}
	b2.ExpectNone(200*time.Millisecond, "message for phone", xmpptest.IsStanza("message", ""))

	// A client-supplied from equal to its own JID is accepted and stamped.
	b2.Send("<message to='alice@localhost/a1' from='bob@localhost' type='chat'><body>hi</body></message>")
	m = a.Expect(wait, "reply", xmpptest.IsStanza("message", "chat"))
	if m.Attr("from") != "bob@localhost/desk" {
		t.Fatalf("from = %q, want the full JID stamped by the server", m.Attr("from"))
	}

	// Unavailable presence when a resource's stream ends.
	b2.Close()
	b1.Expect(wait, "unavailable of desk", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "unavailable" && e.Attr("from") == "bob@localhost/desk"
	})
}

func TestDirectedPresence(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "r"})
	b := srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: "r"})
	b.Send("<presence/>")
	b.Expect(wait, "own presence", xmpptest.IsStanza("presence", ""))
	a.Send("<presence/>")
	a.Send("<presence to='bob@localhost'><status>here</status></presence>")
	p := b.Expect(wait, "directed presence", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/r"
	})
	if !strings.Contains(p.Inner, "here") {
		t.Fatalf("directed presence = %s", p.Raw)
	}
	// When alice's stream ends, bob, who got directed presence, learns it.
	a.Close()
	b.Expect(wait, "unavailable after directed presence", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "unavailable" && e.Attr("from") == "alice@localhost/r"
	})
}

func TestResourceConflict(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	old := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "same"})
	niu := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "same"})
	select {
	case <-old.Done():
	case <-time.After(wait):
		t.Fatal("the replaced session's stream did not end")
	}
	if err := old.Err(); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("replaced session ended with %v, want a conflict stream error", err)
	}
	niu.Send("<iq type='get' id='x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	niu.Expect(wait, "ping result on the new session", xmpptest.IsStanza("iq", "result"))
}

// TestStanzaErrors checks each error the router and read loop answer with.
func TestStanzaErrors(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw") // exists, offline
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "r"})
	a.Send("<presence/>")
	cases := []struct {
		name, send, kind, cond string
	}{
		{"unknown iq payload to server", "<iq type='get' id='e1' to='localhost'><query xmlns='urn:example:nothing'/></iq>", "iq", "service-unavailable"},
		{"unknown iq payload to self", "<iq type='set' id='e2'><query xmlns='urn:example:nothing'/></iq>", "iq", "service-unavailable"},
		{"iq without child", "<iq type='get' id='e3' to='localhost'/>", "iq", "bad-request"},
		{"iq with two children", "<iq type='get' id='e4' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>", "iq", "bad-request"},
		{"iq with bad type", "<iq type='fetch' id='e5' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "iq", "bad-request"},
		{"iq to unavailable full JID", "<iq type='get' id='e6' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>", "iq", "service-unavailable"},
		{"iq to unknown user", "<iq type='get' id='e7' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "iq", "service-unavailable"},
		{"message to unknown user", "<message type='chat' id='e8' to='nobody@localhost'><body>x</body></message>", "message", "service-unavailable"},
		{"message to another domain", "<message type='chat' id='e10' to='someone@example.net'><body>x</body></message>", "message", "remote-server-not-found"},
		{"iq to another domain", "<iq type='get' id='e11' to='example.net'><ping xmlns='urn:xmpp:ping'/></iq>", "iq", "remote-server-not-found"},
		{"malformed to", "<message type='chat' id='e12' to='a@b@c'><body>x</body></message>", "message", "jid-malformed"},
		{"groupchat to a user", "<message type='groupchat' id='e13' to='bob@localhost'><body>x</body></message>", "message", "service-unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.Send("%s", tc.send)
			e := a.Expect(wait, tc.cond+" error", xmpptest.IsStanza(tc.kind, "error"))
			if !strings.Contains(e.Inner, "<"+tc.cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'") {
				t.Fatalf("got %s, want condition %s", e.Raw, tc.cond)
			}
			want := strings.Split(strings.Split(tc.send, "id='")[1], "'")[0]
			if e.Attr("id") != want {
				t.Fatalf("error id = %q, want %q", e.Attr("id"), want)
			}
		})
	}
}

func TestDiscoVersionPing(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{})
	a.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := a.Expect(wait, "server disco#info", xmpptest.IsStanza("iq", "result"))
	for _, f := range []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "urn:xmpp:ping", "jabber:iq:version"} {
		if !strings.Contains(r.Inner, "var='"+f+"'") {
			t.Errorf("server disco#info lacks %s: %s", f, r.Inner)
		}
	}
	if !strings.Contains(r.Inner, "category='server'") {
		t.Errorf("server disco#info lacks the server identity: %s", r.Inner)
	}
	a.Send("<iq type='get' id='d2' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r = a.Expect(wait, "account disco#info", xmpptest.IsStanza("iq", ""))
	if r.Attr("type") != "result" || !strings.Contains(r.Inner, "category='account'") || r.Attr("from") != "bob@localhost" {
		t.Fatalf("account disco#info = %s", r.Raw)
	}
	a.Send("<iq type='get' id='d3' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>")
	r = a.Expect(wait, "disco node error", xmpptest.IsStanza("iq", ""))
	if r.Attr("type") != "error" || !strings.Contains(r.Inner, "item-not-found") {
		t.Fatalf("disco#info on an unknown node = %s", r.Raw)
	}
	a.Send("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
	r = a.Expect(wait, "version", xmpptest.IsStanza("iq", ""))
	if r.Attr("type") != "result" || !strings.Contains(r.Inner, "<name>xmppd</name>") {
		t.Fatalf("version = %s", r.Raw)
	}
	a.Send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
	r = a.Expect(wait, "session result", xmpptest.IsStanza("iq", ""))
	if r.Attr("type") != "result" || r.Attr("id") != "s1" {
		t.Fatalf("legacy session = %s", r.Raw)
	}
}

func TestVersionOff(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.Server.SoftwareVersion = false })
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{})
	a.Send("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
	r := a.Expect(wait, "version", xmpptest.IsStanza("iq", ""))
	if r.Attr("type") != "error" || !strings.Contains(r.Inner, "service-unavailable") {
		t.Fatalf("version with software_version off = %s", r.Raw)
	}
	a.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r = a.Expect(wait, "disco", xmpptest.IsStanza("iq", "result"))
	if strings.Contains(r.Inner, "jabber:iq:version") {
		t.Fatalf("disco lists jabber:iq:version although it is off: %s", r.Inner)
	}
}
