package vcard_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/vcard"
)

var _ vcard.Store = (*storage.VCards)(nil)

const (
	wait  = 5 * time.Second
	quiet = 300 * time.Millisecond
)

func byID(id string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool { return e.Name.Local == "iq" && e.Attr("id") == id }
}

// ask sends an IQ and returns its answer.
func ask(t *testing.T, c *xmpptest.Client, id, format string, args ...any) xmpptest.Element {
	t.Helper()
	c.Send(format, args...)
	return c.Expect(wait, "answer to "+id, byID(id))
}

func wantResult(t *testing.T, e xmpptest.Element, inner string) {
	t.Helper()
	if e.Attr("type") != "result" || e.Inner != inner {
		t.Fatalf("got %s\nwant result with %s", e.Raw, inner)
	}
}

func wantError(t *testing.T, e xmpptest.Element, typ, cond string) {
	t.Helper()
	if e.Attr("type") != "error" || !e.Contains("<error type='"+typ+"'><"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>") {
		t.Fatalf("got %s\nwant a %s/%s error", e.Raw, typ, cond)
	}
}

func engines(t *testing.T, f func(t *testing.T, opts ...xmpptest.Option)) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			var opts []xmpptest.Option
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			f(t, opts...)
		})
	}
}

const card = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice &amp; co</NICKNAME><DESC>ü</DESC></vCard>"

// TestVCard: the owner gets an empty vCard before setting one, a
// stranger service-unavailable (as for a name that is no account); the
// owner sets it (with and without to); anyone reads it; a stranger cannot
// set it; one over max_bytes is refused and changes nothing; it survives a
// restart; vcard-temp is among the server's and the account's features.
func TestVCard(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		opts = append(opts, func(c *config.Config) { c.VCard.MaxBytes = 2048 })
		srv := xmpptest.Start(t, opts...)
		aliceJ := srv.AddUser(t, "alice", "pw")
		bobJ := srv.AddUser(t, "bob", "pw")
		alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
		bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})

		wantResult(t, ask(t, alice, "g1", "<iq type='get' id='g1'><vCard xmlns='vcard-temp'/></iq>"), "<vCard xmlns='vcard-temp'></vCard>")
		wantError(t, ask(t, bob, "g2", "<iq type='get' id='g2' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"), "cancel", "service-unavailable")
		wantError(t, ask(t, bob, "g3", "<iq type='get' id='g3' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>"), "cancel", "service-unavailable")

		wantResult(t, ask(t, alice, "s1", "<iq type='set' id='s1'>%s</iq>", "<vCard xmlns='vcard-temp'><FN>old</FN></vCard>"), "")
		wantResult(t, ask(t, alice, "s2", "<iq type='set' id='s2' to='alice@localhost'>%s</iq>", card), "")
		wantResult(t, ask(t, alice, "g4", "<iq type='get' id='g4'><vCard xmlns='vcard-temp'/></iq>"), card)
		wantResult(t, ask(t, bob, "g5", "<iq type='get' id='g5' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"), card)
		wantError(t, ask(t, bob, "s3", "<iq type='set' id='s3' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>bob was here</FN></vCard></iq>"), "auth", "forbidden")

		big := "<vCard xmlns='vcard-temp'><DESC>" + strings.Repeat("x", 2100) + "</DESC></vCard>"
		e := ask(t, alice, "s4", "<iq type='set' id='s4'>%s</iq>", big)
		wantError(t, e, "modify", "not-acceptable")
		if !e.Contains("vCard exceeds 2048 bytes") {
			t.Errorf("too big: no text naming the limit: %s", e.Raw)
		}
		e = ask(t, alice, "s5", "<iq type='set' id='s5'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>not base64!</BINVAL></PHOTO></vCard></iq>")
		wantError(t, e, "modify", "bad-request")
		wantResult(t, ask(t, bob, "g6", "<iq type='get' id='g6' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"), card)

		for _, to := range []string{"localhost", "alice@localhost"} {
			e := ask(t, alice, "d-"+to, "<iq type='get' id='d-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", to, to)
			if !e.Contains("<feature var='vcard-temp'>") {
				t.Errorf("%s's disco#info lacks vcard-temp: %s", to, e.Raw)
			}
			// The server wires vCards to PEP: the account keeps its
			// photo and avatar in step (XEP-0398 §3).
			if to != "localhost" && !e.Contains("'"+vcard.NSConversion+"'") {
				t.Errorf("%s's disco#info lacks %s: %s", to, vcard.NSConversion, e.Raw)
			}
		}

		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		bob = srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
		wantResult(t, ask(t, bob, "g7", "<iq type='get' id='g7' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"), card)
	})
}

func sha1hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

func presenceFrom(from string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == from && e.Attr("type") == ""
	}
}

// TestPhotoHash: a contact sees alice's presence with an empty <photo/>
// before she has a photo; after she sets a vCard with one, her presence
// is sent again with its SHA-1 (to the contact and to her other
// resource); a client's empty <x/> and a wrong hash are replaced, an empty
// <photo/> is left; after a restart the hash comes from storage.
func TestPhotoHash(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		aliceJ := srv.AddUser(t, "alice", "pw")
		bobJ := srv.AddUser(t, "bob", "pw")
		alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
		bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
		bob.Send("<presence/>")
		bob.Send("<presence type='subscribe' to='alice@localhost'/>")
		alice.Send("<presence/>")
		alice.Expect(wait, "bob's request", func(e xmpptest.Element) bool { return e.Attr("type") == "subscribe" })
		alice.Send("<presence type='subscribed' to='bob@localhost'/>")
		e := bob.Expect(wait, "alice's presence", presenceFrom("alice@localhost/a"))
		const none = "<x xmlns='vcard-temp:x:update'><photo></photo></x>"
		if e.Inner != none {
			t.Fatalf("presence without a vCard: %s, want %s", e.Raw, none)
		}
		alice2 := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a2"})
		alice2.Send("<presence><status>second</status></presence>")
		bob.Expect(wait, "alice/a2's presence", presenceFrom("alice@localhost/a2"))
		alice2.Sync()

		img := []byte("\x89PNG not really, but bytes")
		hash := sha1hex(img)
		b64 := base64.StdEncoding.EncodeToString(img)
		// Split as RFC 2045 writers do: whitespace is not part of the data.
		b64 = b64[:10] + "\n  " + b64[10:]
		wantResult(t, ask(t, alice, "s1", "<iq type='set' id='s1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>", b64), "")
		withHash := "<x xmlns='vcard-temp:x:update'><photo>" + hash + "</photo></x>"
		for _, res := range []string{"a", "a2"} {
			e := bob.Expect(wait, "alice/"+res+"'s presence again", presenceFrom("alice@localhost/"+res))
			if !strings.Contains(e.Inner, withHash) || strings.Count(e.Inner, "vcard-temp:x:update") != 1 {
				t.Errorf("presence of alice/%s after the set: %s, want one %s", res, e.Raw, withHash)
			}
			if res == "a2" && !e.Contains("<status>second</status>") {
				t.Errorf("re-sent presence lost its status: %s", e.Raw)
			}
		}
		if e := alice2.Expect(wait, "alice/a's presence again", presenceFrom("alice@localhost/a")); !e.Contains(withHash) {
			t.Errorf("alice/a2 got %s, want %s", e.Raw, withHash)
		}

		cases := []struct{ name, sent, want string }{
			{"wrong hash", "<x xmlns='vcard-temp:x:update'><photo>0123456789abcdef0123456789abcdef01234567</photo></x><status>away</status>", withHash + "<status>away</status>"},
			{"not ready", "<show>dnd</show><x xmlns='vcard-temp:x:update'/>", "<show>dnd</show>" + withHash},
			{"none", "<priority>5</priority>", "<priority>5</priority>" + withHash},
			{"two", "<x xmlns=\"vcard-temp:x:update\"/><status>s</status><x xmlns='vcard-temp:x:update'><photo>ab</photo></x>", withHash + "<status>s</status>"},
			{"right hash", withHash, withHash},
			{"empty photo", "<x xmlns='vcard-temp:x:update'><photo/></x>", none},
		}
		for _, c := range cases {
			alice.Send("<presence>%s</presence>", c.sent)
			if e := bob.Expect(wait, c.name, presenceFrom("alice@localhost/a")); e.Inner != c.want {
				t.Errorf("%s: sent %s, bob got %s, want %s", c.name, c.sent, e.Inner, c.want)
			}
		}

		// A set that leaves the photo as it is sends no presence again.
		bob.Sync()
		wantResult(t, ask(t, alice, "s2", "<iq type='set' id='s2'><vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><BINVAL>%s</BINVAL></PHOTO></vCard></iq>", b64), "")
		bob.ExpectNone(quiet, "presence after a set that kept the photo", presenceFrom("alice@localhost/a"))

		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		bob = srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
		bob.Send("<presence/>")
		bob.Sync()
		alice = srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
		alice.Send("<presence/>")
		if e := bob.Expect(wait, "alice's presence after restart", presenceFrom("alice@localhost/a")); e.Inner != withHash {
			t.Errorf("after restart: %s, want %s", e.Raw, withHash)
		}
		// Removing the photo sends presence again with an empty one.
		wantResult(t, ask(t, alice, "s3", "<iq type='set' id='s3'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>"), "")
		if e := bob.Expect(wait, "alice's presence after the photo went", presenceFrom("alice@localhost/a")); e.Inner != none {
			t.Errorf("after removing the photo: %s, want %s", e.Raw, none)
		}
	})
}

// TestPhotoHashInRoom (XEP-0398 §4): the presence that joins a room
// carries the joining account's photo hash, which the room reflects to its
// occupants (clients show occupants' avatars from it).
func TestPhotoHashInRoom(t *testing.T) {
	srv := xmpptest.Start(t)
	aliceJ := srv.AddUser(t, "alice", "pw")
	bobJ := srv.AddUser(t, "bob", "pw")
	alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
	bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
	img := []byte("an avatar's bytes")
	hash := sha1hex(img)
	wantResult(t, ask(t, alice, "s1", "<iq type='set' id='s1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>",
		base64.StdEncoding.EncodeToString(img)), "")
	room := "avatars@conference." + srv.Domain
	bob.Send("<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	bob.Expect(wait, "bob's own presence in the room (the room is created)", presenceFrom(room+"/bob"))
	bob.Send("<iq type='set' id='cfg' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room)
	bob.Expect(wait, "the room unlocked", func(e xmpptest.Element) bool { return e.Attr("id") == "cfg" })
	// A client that sends no vcard-temp:x:update of its own.
	alice.Send("<presence to='%s/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	e := bob.Expect(wait, "alice's presence in the room", presenceFrom(room+"/alice"))
	if want := "<x xmlns='vcard-temp:x:update'><photo>" + hash + "</photo></x>"; !e.Contains(want) {
		t.Fatalf("alice's join as bob sees it: %s, want %s in it", e.Raw, want)
	}
}
