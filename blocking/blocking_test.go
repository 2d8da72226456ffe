package blocking_test

import (
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/blocking"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage"
)

var _ blocking.Store = (*storage.Blocklists)(nil)

const (
	wait  = 5 * time.Second
	quiet = 300 * time.Millisecond
)

func byID(id string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool { return e.Attr("id") == id }
}

// iq sends a set and returns what arrived up to and with its result.
func iq(t *testing.T, c *xmpptest.Client, id, payload string) []xmpptest.Element {
	t.Helper()
	c.Send("<iq type='set' id='%s'>%s</iq>", id, payload)
	var got []xmpptest.Element
	for {
		e := c.Next(wait)
		got = append(got, e)
		if e.Attr("id") == id {
			if e.Attr("type") != "result" {
				t.Fatalf("%s: %s", id, e.Raw)
			}
			return got
		}
	}
}

func blocklist(t *testing.T, c *xmpptest.Client) string {
	t.Helper()
	c.Send("<iq type='get' id='list'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	r := c.Expect(wait, "blocklist", byID("list"))
	if r.Attr("type") != "result" {
		t.Fatalf("blocklist get: %s", r.Raw)
	}
	return r.Inner
}

func isPush(what string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "set" && strings.Contains(e.Inner, "<"+what+" xmlns='urn:xmpp:blocking'")
	}
}

// TestBlocking: alice blocks bob. bob sees her go unavailable; his
// messages and IQs are answered service-unavailable and his presence is
// dropped; hers to him are refused with <blocked/>; the resource that
// fetched the list gets the push, the other not; the list survives a
// restart, on both engines; unblock lets stanzas through again.
func TestBlocking(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			var opts []xmpptest.Option
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			srv := xmpptest.Start(t, opts...)
			aliceJ := srv.AddUser(t, "alice", "pw")
			bobJ := srv.AddUser(t, "bob", "pw")
			a := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
			a2 := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a2"})
			bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
			for _, c := range []*xmpptest.Client{a, a2, bob} {
				c.Send("<presence/>")
			}
			// bob is subscribed to alice's presence, so that blocking
			// him sends him her unavailable presence (§3.3).
			bob.Send("<presence type='subscribe' to='alice@localhost'/>")
			a.Expect(wait, "bob's request", func(e xmpptest.Element) bool { return e.Attr("type") == "subscribe" })
			a.Send("<presence type='subscribed' to='bob@localhost'/>")
			bob.Expect(wait, "alice's presence after approval", func(e xmpptest.Element) bool {
				return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/a" && e.Attr("type") == ""
			})
			if l := blocklist(t, a); strings.Contains(l, "item") {
				t.Fatalf("fresh list: %s", l)
			}
			a2.Sync()
			bob.Sync()

			if got := iq(t, a, "b1", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>"); len(filter(got, isPush("block"))) != 1 {
				t.Fatalf("alice/a fetched the list; got %d block pushes", len(filter(got, isPush("block"))))
			}
			if n := len(filter(a2.Sync(), isPush("block"))); n != 0 {
				t.Errorf("alice/a2 did not fetch the list but got %d pushes", n)
			}
			bob.Expect(wait, "alice's unavailable presence", func(e xmpptest.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "unavailable" && strings.HasPrefix(e.Attr("from"), "alice@localhost/a")
			})
			if l := blocklist(t, a2); !strings.Contains(l, "jid='bob@localhost'") {
				t.Fatalf("list after block: %s", l)
			}
			checkBlocked(t, a, bob)

			cfg := srv.Config
			srv.Stop(t)
			srv = xmpptest.StartConfig(t, cfg)
			a = srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
			bob = srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
			a.Send("<presence/>")
			bob.Send("<presence/>")
			a.Sync()
			if l := blocklist(t, a); !strings.Contains(l, "jid='bob@localhost'") {
				t.Fatalf("list after restart: %s", l)
			}
			checkBlocked(t, a, bob)

			if got := iq(t, a, "u1", "<unblock xmlns='urn:xmpp:blocking'/>"); len(filter(got, isPush("unblock"))) != 1 {
				t.Fatalf("alice/a fetched the list; got %d unblock pushes", len(filter(got, isPush("unblock"))))
			}
			bob.Send("<message type='chat' to='alice@localhost/a' id='hello'><body>hi</body></message>")
			a.Expect(wait, "bob's message after unblock", byID("hello"))
			a.Send("<message type='chat' to='bob@localhost/b' id='hello2'><body>hi</body></message>")
			bob.Expect(wait, "alice's message after unblock", byID("hello2"))
		})
	}
}

// checkBlocked: alice blocks bob; each way is refused.
func checkBlocked(t *testing.T, alice, bob *xmpptest.Client) {
	t.Helper()
	bob.Send("<message type='chat' to='alice@localhost/a' id='m1'><body>hi</body></message>")
	if e := bob.Expect(wait, "error for m1", byID("m1")); e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("bob's message to alice: %s", e.Raw)
	}
	bob.Send("<message type='chat' to='alice@localhost' id='m2'><body>hi</body></message>")
	if e := bob.Expect(wait, "error for m2", byID("m2")); e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("bob's message to alice's bare JID: %s", e.Raw)
	}
	bob.Send("<iq type='get' to='alice@localhost/a' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if e := bob.Expect(wait, "error for q1", byID("q1")); e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("bob's iq to alice: %s", e.Raw)
	}
	bob.Send("<presence to='alice@localhost/a'/>")
	bob.Sync()
	if got := filter(alice.Sync(), func(e xmpptest.Element) bool {
		return strings.HasPrefix(e.Attr("from"), "bob@localhost")
	}); len(got) != 0 {
		t.Errorf("alice got from bob: %s", got[0].Raw)
	}
	alice.Send("<message type='chat' to='bob@localhost/b' id='m3'><body>hi</body></message>")
	e := alice.Expect(wait, "error for m3", byID("m3"))
	if e.Attr("type") != "error" || !e.Contains("not-acceptable") || !e.Contains("urn:xmpp:blocking:errors") {
		t.Errorf("alice's message to bob: %s", e.Raw)
	}
	alice.Send("<iq type='get' to='bob@localhost/b' id='q2'><ping xmlns='urn:xmpp:ping'/></iq>")
	if e := alice.Expect(wait, "error for q2", byID("q2")); !e.Contains("urn:xmpp:blocking:errors") {
		t.Errorf("alice's iq to bob: %s", e.Raw)
	}
	alice.Send("<presence to='bob@localhost/b'/>")
	if e := alice.Expect(wait, "presence error", func(e xmpptest.Element) bool { return e.Name.Local == "presence" && e.Attr("type") == "error" }); !e.Contains("urn:xmpp:blocking:errors") {
		t.Errorf("alice's presence to bob: %s", e.Raw)
	}
	if got := filter(bob.Sync(), func(e xmpptest.Element) bool {
		return strings.HasPrefix(e.Attr("from"), "alice@localhost")
	}); len(got) != 0 {
		t.Errorf("bob got from alice: %s", got[0].Raw)
	}
}

// TestDomainAndFullJIDItems: items match as XEP-0016 §2.1 says.
func TestDomainAndFullJIDItems(t *testing.T) {
	srv := xmpptest.Start(t)
	aliceJ := srv.AddUser(t, "alice", "pw")
	bobJ := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
	b1 := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "one"})
	b2 := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "two"})
	iq(t, a, "b", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost/one'/></block>")
	b1.Send("<message type='chat' to='alice@localhost/a' id='x1'><body>hi</body></message>")
	if e := b1.Expect(wait, "error", byID("x1")); e.Attr("type") != "error" {
		t.Fatalf("blocked full JID got through: %s", e.Raw)
	}
	b2.Send("<message type='chat' to='alice@localhost/a' id='x2'><body>hi</body></message>")
	a.Expect(wait, "message from an unblocked resource", byID("x2"))
	iq(t, a, "d", "<block xmlns='urn:xmpp:blocking'><item jid='localhost'/></block>")
	b2.Send("<message type='chat' to='alice@localhost/a' id='x3'><body>hi</body></message>")
	if e := b2.Expect(wait, "error", byID("x3")); e.Attr("type") != "error" {
		t.Fatalf("blocked domain got through: %s", e.Raw)
	}
	// Malformed and empty requests.
	a.Send("<iq type='set' id='bad'><block xmlns='urn:xmpp:blocking'><item jid='@@'/></block></iq>")
	if e := a.Expect(wait, "error", byID("bad")); !e.Contains("jid-malformed") {
		t.Errorf("malformed item: %s", e.Raw)
	}
	a.Send("<iq type='set' id='empty'><block xmlns='urn:xmpp:blocking'/></iq>")
	if e := a.Expect(wait, "error", byID("empty")); !e.Contains("bad-request") {
		t.Errorf("empty block: %s", e.Raw)
	}
	a.Send("<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	// The server itself is not blocked by blocking its domain.
	if e := a.Expect(wait, "disco", byID("d")); e.Attr("type") != "result" || !e.Contains("'urn:xmpp:blocking'") {
		t.Errorf("disco#info without blocking: %s", e.Raw)
	}
}

func filter(els []xmpptest.Element, f func(xmpptest.Element) bool) []xmpptest.Element {
	var out []xmpptest.Element
	for _, e := range els {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// TestUnblockSendsPresence: a subscriber alice blocks sees her go offline;
// when she unblocks it, it gets her current presence again (as
// MongooseIM and Prosody do); someone not subscribed gets nothing either
// way (XEP-0191 §3.3: presence only where presence is allowed).
func TestUnblockSendsPresence(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	carol := srv.AddUser(t, "carol", "pw")
	dave := srv.AddUser(t, "dave", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	c := srv.Login(t, carol, "pw", xmpptest.LoginOptions{Resource: "c"})
	d := srv.Login(t, dave, "pw", xmpptest.LoginOptions{Resource: "d"})
	c.Send("<presence/>")
	d.Send("<presence/>")
	// carol subscribes to alice's presence; alice approves.
	c.Send("<presence type='subscribe' to='alice@localhost'/>")
	a.Send("<presence/>")
	a.Expect(wait, "carol's request", func(e xmpptest.Element) bool { return e.Attr("type") == "subscribe" })
	a.Send("<presence type='subscribed' to='carol@localhost'/>")
	c.Expect(wait, "alice's presence after approval", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/a" && e.Attr("type") == ""
	})
	a.Send("<presence><status>here</status></presence>")
	c.Expect(wait, "alice's status", func(e xmpptest.Element) bool { return e.Contains("<status>here</status>") })

	iq(t, a, "b1", "<block xmlns='urn:xmpp:blocking'><item jid='carol@localhost'/><item jid='dave@localhost'/></block>")
	c.Expect(wait, "unavailable on block", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/a" && e.Attr("type") == "unavailable"
	})
	iq(t, a, "u1", "<unblock xmlns='urn:xmpp:blocking'/>") // all
	p := c.Expect(wait, "alice's presence on unblock", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == "alice@localhost/a" && e.Attr("type") == ""
	})
	if !p.Contains("<status>here</status>") {
		t.Errorf("on unblock carol got %s, want alice's current presence", p.Raw)
	}
	for _, e := range d.Sync() {
		if e.Name.Local == "presence" && strings.HasPrefix(e.Attr("from"), "alice@") {
			t.Errorf("dave, not subscribed, got alice's presence on block or unblock: %s", e.Raw)
		}
	}
}
