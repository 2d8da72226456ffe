package carbons_test

import (
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	wait  = 5 * time.Second
	quiet = 300 * time.Millisecond
)

// setup logs in alice on resources a (carbons on), b (carbons on) and c
// (carbons off), and bob on resource b; all send initial presence.
func setup(t *testing.T) (srv *xmpptest.Server, a, b, c, bob *xmpptest.Client) {
	t.Helper()
	srv = xmpptest.Start(t)
	aliceJ := srv.AddUser(t, "alice", "pw")
	bobJ := srv.AddUser(t, "bob", "pw")
	login := func(j, res string) *xmpptest.Client {
		user := aliceJ
		if j == "bob" {
			user = bobJ
		}
		cl := srv.Login(t, user, "pw", xmpptest.LoginOptions{Resource: res})
		cl.Send("<presence/>")
		return cl
	}
	a, b, c, bob = login("alice", "a"), login("alice", "b"), login("alice", "c"), login("bob", "b")
	for _, cl := range []*xmpptest.Client{a, b} {
		cl.Send("<iq type='set' id='on'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
		r := cl.Expect(wait, "enable result", func(e xmpptest.Element) bool { return e.Attr("id") == "on" })
		if r.Attr("type") != "result" {
			t.Fatalf("enable: %s", r.Raw)
		}
	}
	for _, cl := range []*xmpptest.Client{a, b, c, bob} {
		cl.Sync()
	}
	return srv, a, b, c, bob
}

func isCarbon(dir string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && strings.Contains(e.Inner, "<"+dir+" xmlns='urn:xmpp:carbons:2'")
	}
}

func anyCarbon(e xmpptest.Element) bool { return isCarbon("sent")(e) || isCarbon("received")(e) }

// TestEligibility sends each kind of message from alice/a to bob/b and
// from bob/b to alice/a, and checks which become carbons on alice/b.
func TestEligibility(t *testing.T) {
	_, a, b, c, bob := setup(t)
	cases := []struct {
		name string
		msg  string // %s is the to
		copy bool
	}{
		{"chat", "<message type='chat' to='%s' id='m1'><body>hi</body></message>", true},
		{"chat state without body", "<message type='chat' to='%s' id='m2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", true},
		{"normal with body", "<message to='%s' id='m3'><body>hi</body></message>", true},
		{"normal without body", "<message to='%s' id='m4'><x xmlns='jabber:x:oob'/></message>", false},
		{"muc private message", "<message to='%s' id='m5'><x xmlns='http://jabber.org/protocol/muc#user'/></message>", true},
		{"private", "<message type='chat' to='%s' id='m6'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"no-copy", "<message type='chat' to='%s' id='m7'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>", false},
		{"headline", "<message type='headline' to='%s' id='m8'><body>hi</body></message>", false},
		{"error", "<message type='error' to='%s' id='m9'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// sent: alice/a to bob/b.
			a.Send(tc.msg, "bob@localhost/b")
			a.Sync()
			bob.Sync()
			els := b.Sync()
			got := 0
			for _, e := range els {
				if isCarbon("sent")(e) {
					got++
					if e.Attr("from") != "alice@localhost" || e.Attr("to") != "alice@localhost/b" || e.Attr("type") != typeOf(tc.msg) {
						t.Errorf("sent copy header: %s", e.Raw)
					}
					if !strings.Contains(e.Inner, "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'") ||
						!strings.Contains(e.Inner, "from='alice@localhost/a'") {
						t.Errorf("sent copy does not forward the original: %s", e.Raw)
					}
				}
			}
			if want := b2i(tc.copy); got != want {
				t.Errorf("sent copies on alice/b = %d, want %d (got %q)", got, want, raws(els))
			}
			for _, cl := range []*xmpptest.Client{a, c} {
				if n := count(cl.Sync(), anyCarbon); n != 0 {
					t.Errorf("%s got %d carbons of its own or without enabling", cl.JID, n)
				}
			}
			// received: bob/b to alice/a (full JID): alice/b gets a copy.
			bob.Send(tc.msg, "alice@localhost/a")
			bob.Sync()
			delivered := a.Sync()
			els = b.Sync()
			got = 0
			for _, e := range els {
				if isCarbon("received")(e) {
					got++
					if e.Attr("from") != "alice@localhost" || e.Attr("to") != "alice@localhost/b" {
						t.Errorf("received copy header: %s", e.Raw)
					}
				}
			}
			if want := b2i(tc.copy); got != want {
				t.Errorf("received copies on alice/b = %d, want %d (got %q)", got, want, raws(els))
			}
			if n := count(c.Sync(), anyCarbon); n != 0 {
				t.Errorf("alice/c (carbons off) got %d carbons", n)
			}
			if n := count(delivered, anyCarbon); n != 0 {
				t.Errorf("alice/a got a carbon of a message it got itself")
			}
			// §7: the recipient does not see <private/>.
			for _, e := range delivered {
				if e.Attr("id") == "m6" && strings.Contains(e.Inner, "private") {
					t.Errorf("private delivered with <private/>: %s", e.Raw)
				}
			}
		})
	}
}

// TestGroupchatNotCopied: a groupchat message is never copied.
func TestGroupchatNotCopied(t *testing.T) {
	srv, a, b, _, _ := setup(t)
	_ = srv
	a.Send("<presence to='room@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	a.Sync()
	a.Send("<message type='groupchat' to='room@conference.localhost' id='g1'><body>hi</body></message>")
	a.Expect(wait, "groupchat echo", func(e xmpptest.Element) bool { return e.Attr("type") == "groupchat" && e.Attr("id") == "g1" })
	if n := count(b.Sync(), anyCarbon); n != 0 {
		t.Fatalf("alice/b got %d carbons of a groupchat message", n)
	}
}

// TestBareJIDAndDisable: a message to alice's bare JID goes to all of
// her highest-priority resources, so none gets a copy; after disable,
// alice/b gets no copies.
func TestBareJIDAndDisable(t *testing.T) {
	_, a, b, _, bob := setup(t)
	bob.Send("<message type='chat' to='alice@localhost' id='bare'><body>hi</body></message>")
	bob.Sync()
	for _, cl := range []*xmpptest.Client{a, b} {
		els := cl.Sync()
		if n := count(els, anyCarbon); n != 0 {
			t.Errorf("%s got %d carbons of a message to the bare JID it got", cl.JID, n)
		}
		if count(els, func(e xmpptest.Element) bool { return e.Attr("id") == "bare" }) != 1 {
			t.Errorf("%s did not get the message to the bare JID: %q", cl.JID, raws(els))
		}
	}
	b.Send("<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
	if r := b.Expect(wait, "disable result", func(e xmpptest.Element) bool { return e.Attr("id") == "off" }); r.Attr("type") != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
	a.Send("<message type='chat' to='bob@localhost/b' id='after'><body>hi</body></message>")
	bob.Send("<message type='chat' to='alice@localhost/a' id='after2'><body>hi</body></message>")
	a.Sync()
	bob.Sync()
	b.ExpectNone(quiet, "carbon after disable", anyCarbon)
}

// TestDisco: the server's disco#info lists carbons.
func TestDisco(t *testing.T) {
	_, a, _, _, _ := setup(t)
	a.Send("<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := a.Expect(wait, "disco result", func(e xmpptest.Element) bool { return e.Attr("id") == "d" })
	if !strings.Contains(r.Inner, "urn:xmpp:carbons:2") {
		t.Fatalf("disco#info without carbons: %s", r.Raw)
	}
}

func typeOf(msg string) string {
	if i := strings.Index(msg, "type='"); i >= 0 && i < strings.Index(msg, ">") {
		rest := msg[i+6:]
		return rest[:strings.IndexByte(rest, '\'')]
	}
	return ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func count(els []xmpptest.Element, f func(xmpptest.Element) bool) int {
	n := 0
	for _, e := range els {
		if f(e) {
			n++
		}
	}
	return n
}

func raws(els []xmpptest.Element) []string {
	var out []string
	for _, e := range els {
		out = append(out, e.Raw)
	}
	return out
}
