package interop

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppMAM: slixmpp's XEP-0313 plugin pages through a user's
// archive (RSM, forwards and from the end) and reads a room's archive as
// a user who never joined it (testdata/slixmpp_mam.py).
func TestSlixmppMAM(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	room := "archived@conference." + srv.Domain
	res := runSlixmpp(t, srv, "slixmpp_mam.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
		"--room", room,
	)
	type entry struct{ ID, Body, From, Stamp string }
	extra := func(name string) map[string][]entry {
		var m map[string][]entry
		a := res.get(t, name)
		if err := json.Unmarshal(a.Extra, &m); err != nil {
			t.Fatalf("%s: %v (%s)", name, err, a.Extra)
		}
		return m
	}
	bodiesOf := func(list []entry) []string {
		var out []string
		for _, e := range list {
			out = append(out, e.Body)
		}
		return out
	}
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("a%02d", i))
	}
	for i := range 5 {
		want = append(want, fmt.Sprintf("b%02d", i))
	}
	a, b := extra("alice"), extra("bob")
	if got := bodiesOf(a["pages"]); !slices.Equal(got, want) {
		t.Errorf("alice's archive with bob, 10 a page:\n got %q\nwant %q", got, want)
	}
	ids := map[string]bool{}
	for _, e := range a["pages"] {
		if e.ID == "" || ids[e.ID] || e.Stamp == "" {
			t.Errorf("result %+v: a missing or repeated id, or no stamp", e)
		}
		ids[e.ID] = true
	}
	// reverse: the newest first, as slixmpp yields a backwards iteration.
	last7 := slices.Clone(want[len(want)-7:])
	slices.Reverse(last7)
	if got := bodiesOf(a["last7"]); !slices.Equal(got, last7) {
		t.Errorf("alice's last 7, backwards:\n got %q\nwant %q", got, last7)
	}
	if got := bodiesOf(b["room"]); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
		t.Errorf("the room's archive read by bob: %q", got)
	}
	for _, e := range b["room"] {
		if e.From != room+"/Alice" {
			t.Errorf("room message from %q, want %s/Alice", e.From, room)
		}
	}
}
