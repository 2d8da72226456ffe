package bosh_test

import (
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

func boshURL(srv *xmpptest.Server) string { return "https://" + srv.HTTPS + "/http-bind" }

// TestLoginAndMessages: a BOSH user logs in with SCRAM (creation,
// features, SASL, restart, bind) and exchanges messages with a WebSocket
// user and a TCP user, in all directions, on both storage engines.
func TestLoginAndMessages(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			opts := []xmpptest.Option{xmpptest.WithHTTPS()}
			if engine == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			srv := xmpptest.Start(t, opts...)
			alice := srv.AddUser(t, "alice", "pw")
			srv.AddUser(t, "bob", "bob's pw")
			srv.AddUser(t, "carol", "pw")
			a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "tcp"})
			c := dialWS(t, srv)
			c.login("carol", "pw", "ws")

			b := create(t, boshURL(srv), "")
			b.login("bob", "bob's pw", "bosh")

			// BOSH -> TCP, BOSH -> WebSocket; a stanza without
			// xmlns takes jabber:client.
			b.send("", "<message to='alice@localhost/tcp' type='chat'><body>bosh to tcp</body></message>"+
				"<message xmlns='jabber:client' to='carol@localhost/ws' type='chat'><body>bosh to ws</body></message>")
			a.Expect(wait, "bob's message", func(e xmpptest.Element) bool {
				return e.Contains("bosh to tcp") && e.Attr("from") == "bob@localhost/bosh"
			})
			c.expect("bob's message", "bosh to ws")

			// TCP -> BOSH, WebSocket -> BOSH.
			a.Send("<message to='bob@localhost/bosh' type='chat'><body>tcp to bosh &amp; more</body></message>")
			m := b.expect("alice's message", "tcp to bosh &amp; more")
			if !strings.HasPrefix(m, "<message xmlns='jabber:client'") || !strings.Contains(m, "from='alice@localhost/tcp'") {
				t.Fatalf("message %q: want a namespace-qualified <message/> from alice", m)
			}
			c.send("<message xmlns='jabber:client' to='bob@localhost/bosh' type='chat'><body>ws to bosh</body></message>")
			if m := b.expect("carol's message", "ws to bosh"); !strings.Contains(m, "from='carol@localhost/ws'") {
				t.Fatalf("message %q", m)
			}
			// WebSocket <-> TCP, for completeness of the triangle.
			c.send("<message xmlns='jabber:client' to='alice@localhost/tcp' type='chat'><body>ws to tcp</body></message>")
			a.Expect(wait, "carol's message", func(e xmpptest.Element) bool { return e.Contains("ws to tcp") })

			// Terminate: the payload goes out, then the stream ends.
			b.send("type='terminate'", "<message xmlns='jabber:client' to='alice@localhost/tcp' type='chat'><body>bye</body></message>")
			if r := b.expectTerminate(); r.attrs["condition"] != "" {
				t.Fatalf("terminate answered %s", r)
			}
			a.Expect(wait, "bob's last message", func(e xmpptest.Element) bool { return e.Contains("<body>bye</body>") })
			if r := b.raw(b.rid+1, "", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "item-not-found" {
				t.Fatalf("request after terminate: %s", r)
			}
		})
	}
}

// TestCreation: the session creation response's attributes (XEP-0124
// §7.1, XEP-0206 §4-5) and the features in it.
func TestCreation(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.BOSH.MaxWait = config.Duration{Duration: 30 * time.Second}
		c.BOSH.MaxHold = 2
	})
	b := create(t, boshURL(srv), "ack='1' hold='5'")
	want := map[string]string{
		"wait": "10", "hold": "2", "requests": "3", "polling": "5", "inactivity": "60", "maxpause": "120",
		"ver": "1.11", "from": "localhost", "xmpp:version": "1.0", "xmpp:restartlogic": "true",
	}
	for k, v := range want {
		if got := b.created.attrs[k]; got != v {
			t.Errorf("%s=%q, want %q: %s", k, got, v, b.created)
		}
	}
	if b.created.attrs["authid"] == "" || b.created.attrs["ack"] == "" {
		t.Errorf("no authid or ack: %s", b.created)
	}
	if len(b.created.children) != 1 || !strings.HasPrefix(b.created.children[0], "<stream:features") {
		t.Fatalf("children %q, want the stream features", b.created.children)
	}
	// A wait longer than max_wait is cut to it.
	b2 := create(t, boshURL(srv), "wait='300'")
	if b2.created.attrs["wait"] != "30" || b2.created.attrs["hold"] != "1" {
		t.Fatalf("wait/hold: %s", b2.created)
	}
}
