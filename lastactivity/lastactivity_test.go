package lastactivity_test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 10 * time.Second

// engines runs f on SQLite and on PostgreSQL.
func engines(t *testing.T, f func(t *testing.T, opts ...xmpptest.Option)) {
	t.Run("sqlite", func(t *testing.T) { f(t) })
	t.Run("postgres", func(t *testing.T) { f(t, xmpptest.WithPostgres(t)) })
}

var n int

// last asks to for its last activity and returns the answer.
func last(t *testing.T, c *xmpptest.Client, to string) xmpptest.Element {
	t.Helper()
	n++
	id := fmt.Sprintf("last-%d", n)
	c.Send("<iq type='get' id='%s' to='%s'><query xmlns='jabber:iq:last'/></iq>", id, to)
	return c.Expect(wait, "answer to "+id, func(e xmpptest.Element) bool { return e.Attr("id") == id })
}

var resultRE = regexp.MustCompile(`^<query xmlns='jabber:iq:last' seconds='(\d+)'>([^<]*)</query>$`)

// seconds checks that e is a result and returns its seconds and text.
func seconds(t *testing.T, e xmpptest.Element) (int, string) {
	t.Helper()
	m := resultRE.FindStringSubmatch(e.Inner)
	if e.Attr("type") != "result" || m == nil {
		t.Fatalf("want a last activity result, got %s", e.Raw)
	}
	s, _ := strconv.Atoi(m[1])
	return s, m[2]
}

// TestServerUptime: an IQ to the server gets its uptime, which grows.
func TestServerUptime(t *testing.T) {
	srv := xmpptest.Start(t)
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})
	if s, text := seconds(t, last(t, c, "localhost")); s > 5 || text != "" {
		t.Fatalf("uptime %d %q, want a few seconds and no text", s, text)
	}
	xmpptest.WaitFor(t, 5*time.Second, func() error {
		if s, _ := seconds(t, last(t, c, "localhost")); s < 1 {
			return fmt.Errorf("uptime still %d", s)
		}
		return nil
	})
	if e := last(t, c, "localhost"); e.Attr("from") != "localhost" {
		t.Errorf("answered from %q", e.Attr("from"))
	}
}

// TestLastActivity: bob, subscribed to alice's presence, learns 0 while
// she is online, then how long ago she logged out and her status text,
// also after a restart; alice may ask about herself; carol, a stranger,
// gets forbidden; an account that never logged out, service-unavailable.
func TestLastActivity(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		aliceJ, bobJ, carolJ := srv.AddUser(t, "alice", "pw"), srv.AddUser(t, "bob", "pw"), srv.AddUser(t, "carol", "pw")
		daveJ := srv.AddUser(t, "dave", "pw") // never sends presence
		alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
		alice2 := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a2"})
		bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
		carol := srv.Login(t, carolJ, "pw", xmpptest.LoginOptions{Resource: "c"})
		alice.Send("<presence/>")
		alice2.Send("<presence/>")
		bob.Send("<presence/>")
		bob.Send("<presence type='subscribe' to='alice@localhost'/>")
		alice.Expect(wait, "bob's request", func(e xmpptest.Element) bool { return e.Attr("type") == "subscribe" })
		alice.Send("<presence type='subscribed' to='bob@localhost'/>")
		bob.Expect(wait, "alice's presence", func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/a" && e.Attr("type") == ""
		})

		// Online: 0, no text.
		if e := last(t, bob, "alice@localhost"); e.Inner != "<query xmlns='jabber:iq:last' seconds='0'></query>" || e.Attr("from") != "alice@localhost" {
			t.Fatalf("alice online: %s", e.Raw)
		}
		// A stranger is refused, online or not.
		if e := last(t, carol, "alice@localhost"); e.Attr("type") != "error" || !e.Contains("<error type='auth'><forbidden ") {
			t.Fatalf("stranger: %s", e.Raw)
		}
		// One resource going is not a logout.
		alice2.Send("<presence type='unavailable'><status>not this one</status></presence>")
		alice2.Sync()
		if e := last(t, bob, "alice@localhost"); e.Inner != "<query xmlns='jabber:iq:last' seconds='0'></query>" {
			t.Fatalf("alice still online on one resource: %s", e.Raw)
		}
		alice2.Close()
		// The last one does, with its status text.
		alice.Send("<presence type='unavailable'><status>Heading Home &amp; out</status><status xml:lang='fr'>Je rentre</status></presence>")
		alice.Sync()
		if s, text := seconds(t, last(t, bob, "alice@localhost")); s > 5 || text != "Heading Home &amp; out" {
			t.Fatalf("after logout: %d %q", s, text)
		}
		if e := last(t, carol, "alice@localhost"); e.Attr("type") != "error" || !e.Contains("<forbidden ") {
			t.Fatalf("stranger after logout: %s", e.Raw)
		}
		// Alice asks about herself (her session is not available):
		// without a to and to her bare JID.
		alice.Send("<iq type='get' id='self1'><query xmlns='jabber:iq:last'/></iq>")
		e := alice.Expect(wait, "self1", func(e xmpptest.Element) bool { return e.Attr("id") == "self1" })
		if _, text := seconds(t, e); text != "Heading Home &amp; out" {
			t.Fatalf("alice about herself: %s", e.Raw)
		}
		if _, text := seconds(t, last(t, alice, "alice@localhost")); text != "Heading Home &amp; out" {
			t.Fatal("alice about her bare JID")
		}
		// Never logged out; no such account (the router).
		dave := srv.Login(t, daveJ, "pw", xmpptest.LoginOptions{Resource: "d"})
		if e := last(t, dave, "dave@localhost"); e.Attr("type") != "error" || !e.Contains("<service-unavailable ") {
			t.Fatalf("never logged out: %s", e.Raw)
		}
		if e := last(t, bob, "nobody@localhost"); e.Attr("type") != "error" || !e.Contains("<service-unavailable ") {
			t.Fatalf("no such account: %s", e.Raw)
		}
		// The seconds count.
		xmpptest.WaitFor(t, 5*time.Second, func() error {
			if s, _ := seconds(t, last(t, bob, "alice@localhost")); s < 1 {
				return fmt.Errorf("seconds still %d", s)
			}
			return nil
		})

		// Kept across a restart.
		alice.Close()
		bob.Close()
		carol.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, srv.Config)
		bob = srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
		if s, text := seconds(t, last(t, bob, "alice@localhost")); s < 1 || s > 30 || text != "Heading Home &amp; out" {
			t.Fatalf("after restart: %d %q", s, text)
		}
		carol = srv.Login(t, carolJ, "pw", xmpptest.LoginOptions{Resource: "c"})
		if e := last(t, carol, "alice@localhost"); e.Attr("type") != "error" || !e.Contains("<forbidden ") {
			t.Fatalf("stranger after restart: %s", e.Raw)
		}

		// A stream that ends without unavailable presence is a logout
		// without text.
		alice = srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
		alice.Send("<presence><status>back</status></presence>")
		alice.Sync()
		if e := last(t, bob, "alice@localhost"); e.Inner != "<query xmlns='jabber:iq:last' seconds='0'></query>" {
			t.Fatalf("alice back online: %s", e.Raw)
		}
		alice.Close()
		xmpptest.WaitFor(t, wait, func() error {
			if e := last(t, bob, "alice@localhost"); e.Inner != "<query xmlns='jabber:iq:last' seconds='0'></query>" {
				return fmt.Errorf("alice still online: %s", e.Raw)
			}
			return nil
		})
		if s, text := seconds(t, last(t, bob, "alice@localhost")); s > 5 || text != "" {
			t.Fatalf("after a stream end: %d %q", s, text)
		}
	})
}
