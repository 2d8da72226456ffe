package xmpptest_test

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/caps"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestCapsVer: the helper's ver is the one package caps computes from the
// answer the helper gives, for features in any order, repeated, or with
// characters XML escapes.
func TestCapsVer(t *testing.T) {
	for name, feats := range map[string][]string{
		"none":     nil,
		"notify":   {"urn:xmpp:avatar:metadata+notify", "eu.siacs.conversations.axolotl.devicelist+notify"},
		"repeated": {"urn:xmpp:bookmarks:1+notify", "http://jabber.org/protocol/caps", "urn:xmpp:bookmarks:1+notify"},
		"escaped":  {"urn:example:a&b<c'd"},
	} {
		t.Run(name, func(t *testing.T) {
			ver := xmpptest.CapsVer(feats...)
			info, err := caps.ParseInfo(xml.NewDecoder(strings.NewReader(xmpptest.CapsInfo(xmpptest.CapsNode+"#"+ver, feats))))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := caps.Ver("sha-1", info); err != nil || got != ver {
				t.Fatalf("caps.Ver = %q, %v; CapsVer = %q", got, err, ver)
			}
		})
	}
	if a, b := xmpptest.CapsVer("urn:a", "urn:b"), xmpptest.CapsVer("urn:b", "urn:a", "urn:a"); a != b {
		t.Errorf("order or repetition changed the ver: %s, %s", a, b)
	}
	if a, b := xmpptest.CapsVer("urn:a"), xmpptest.CapsVer("urn:b"); a == b {
		t.Error("different features, same ver")
	}
}

// TestAnnounceCaps: a client announcing caps answers the server's query
// by itself (the query is not queued), and the server then knows its
// +notify interest; a second client with the same features is not asked,
// and a forged ver gives no interest.
func TestAnnounceCaps(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	const node = "urn:xmpp:avatar:metadata"
	feats := []string{node + "+notify", "eu.siacs.conversations.axolotl.devicelist+notify"}
	svc := srv.Caps()

	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	ver := a.AnnounceCaps(feats...)
	if ver != xmpptest.CapsVer(feats...) {
		t.Fatalf("AnnounceCaps = %s", ver)
	}
	for _, e := range a.SyncCaps() {
		if e.Name.Local == "iq" {
			t.Fatalf("the caps query was queued: %s", e.Raw)
		}
	}
	if a.CapsQueries() != 1 || !svc.Wants(a.JID, node) || !svc.Wants(a.JID, "eu.siacs.conversations.axolotl.devicelist") {
		t.Fatalf("after the answer: %d queries answered, wants %v", a.CapsQueries(), svc.Wants(a.JID, node))
	}
	if svc.Wants(a.JID, "urn:xmpp:avatar:data") {
		t.Fatal("wants a node it did not announce")
	}

	b := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "b"})
	b.AnnounceCaps(feats...)
	b.SyncCaps()
	if b.CapsQueries() != 0 || !svc.Wants(b.JID, node) {
		t.Fatalf("cached ver: %d queries, wants %v", b.CapsQueries(), svc.Wants(b.JID, node))
	}

	f := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "f"})
	f.Send("<presence>%s</presence>", f.ServeCapsVer(xmpptest.CapsVer(), feats...)) // answers with more than it hashed
	f.SyncCaps()
	if f.CapsQueries() != 1 || svc.Wants(f.JID, node) || svc.Features(f.JID) != nil {
		t.Fatalf("forged ver: %d queries, features %q", f.CapsQueries(), svc.Features(f.JID))
	}
	// Other disco#info queries still reach the test.
	a.Send("<iq type='get' id='d1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", f.JID)
	f.Expect(5*time.Second, "a contact's disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "d1" })
}
