package interop

import (
	"reflect"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppBookmarks: slixmpp's XEP-0048 plugin stores bookmarks in
// private XML, reads them from XEP-0048's PEP node, and XEP-0402's node
// has them; it stores through PEP (xep_0223, with its publish-options)
// and reads them from private XML and XEP-0402; another session of the
// account receives the events of XEP-0048's and XEP-0402's nodes
// (testdata/slixmpp_bookmarks.py).
func TestSlixmppBookmarks(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	room1, room2 := "one@conference."+srv.Domain, "two@conference."+srv.Domain
	res := runSlixmpp(t, srv, "slixmpp_bookmarks.py", "--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--room1", room1, "--room2", room2)
	one, two := res.pep(t, "one"), res.pep(t, "two")
	f := one.Fetches

	type conf = map[string]any
	c1 := conf{"jid": room1, "name": "Room One", "nick": "Al", "autojoin": true}
	c2 := conf{"jid": room2, "name": "Room Two", "nick": "Alice", "autojoin": false}
	for _, k := range []string{"store_private", "store_pep"} {
		if f[k].Type != "result" {
			t.Errorf("%s: %+v", k, f[k])
		}
	}
	check := func(key string, want ...conf) {
		t.Helper()
		got := f[key]
		wantList := []any{}
		for _, c := range want {
			wantList = append(wantList, map[string]any(c))
		}
		if got.Type != "result" || !reflect.DeepEqual(got.Extra["conferences"], wantList) {
			t.Errorf("%s: %+v, want conferences %v", key, got, wantList)
		}
	}
	check("pep_after_private", c1)
	check("private_after_pep", c1, c2)

	type item struct{ ID, XML string }
	native := func(key string, want ...item) {
		t.Helper()
		got := f[key]
		var items []item
		for _, it := range got.Items {
			items = append(items, item{it.ID, it.Payload.XML})
		}
		if got.Type != "result" || !reflect.DeepEqual(items, want) {
			t.Errorf("%s: XEP-0402 items %+v (%+v), want %+v", key, items, got, want)
		}
	}
	n1 := item{room1, "name=Room One autojoin=true nick=Al"}
	n2 := item{room2, "name=Room Two autojoin=None nick=Alice"}
	native("native_after_private", n1)
	native("native_after_pep", n1, n2)

	// The watching session: XEP-0402 events of room1 then room2, and
	// XEP-0048's node's.
	var ids []string
	legacy := 0
	for _, e := range two.Events {
		switch e.Node {
		case "urn:xmpp:bookmarks:1":
			ids = append(ids, e.ID)
		case "storage:bookmarks":
			legacy++
		}
		if e.From != alice.String() {
			t.Errorf("two: event from %q, want %s", e.From, alice)
		}
	}
	if !reflect.DeepEqual(ids, []string{room1, room2}) {
		t.Errorf("two: XEP-0402 events of %q, want %s then %s", ids, room1, room2)
	}
	if legacy != 2 {
		t.Errorf("two: %d events of storage:bookmarks, want one per store (2)", legacy)
	}
}
