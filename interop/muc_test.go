package interop

import (
	"encoding/json"
	"slices"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// mucRecord is what testdata/slixmpp_muc.py records of each account in
// "extra".
type mucRecord struct {
	Joined *struct {
		From        string `json:"from"`
		Codes       []int  `json:"codes"`
		Affiliation string `json:"affiliation"`
		Role        string `json:"role"`
	} `json:"joined"`
	Subject   string   `json:"subject"`
	Occupants []string `json:"occupants"`
	History   []struct {
		From      string `json:"from"`
		Body      string `json:"body"`
		DelayFrom string `json:"delay_from"`
	} `json:"history"`
	Groupchat []struct {
		From string `json:"from"`
		Body string `json:"body"`
	} `json:"groupchat"`
}

// TestSlixmppMUC: slixmpp's xep_0045 creates a room (201, owner), makes
// it an instant room, a second account joins and both exchange group
// chat messages, and a late joiner gets both as history, with a delay
// from the room (testdata/slixmpp_muc.py).
func TestSlixmppMUC(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	const room = "coven@conference.localhost"
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	carol := srv.AddUser(t, "carol", "carol-pw")
	res := runSlixmpp(t, srv, "slixmpp_muc.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
		"--carol-jid", carol.String(), "--carol-password", "carol-pw",
		"--room", room)
	rec := map[string]mucRecord{}
	for _, name := range []string{"alice", "bob", "carol"} {
		checkLoggedIn(t, name, res.get(t, name), "SCRAM-SHA-256")
		var r mucRecord
		if err := json.Unmarshal(res.get(t, name).Extra, &r); err != nil {
			t.Fatalf("%s: extra: %v", name, err)
		}
		if r.Joined == nil {
			t.Fatalf("%s never joined: %+v", name, r)
		}
		rec[name] = r
	}
	if t.Failed() {
		return
	}

	for _, tc := range []struct {
		name, nick, aff, role string
		codes                 []int
		occupants             []string
	}{
		{"alice", "Alice", "owner", "moderator", []int{110, 201}, []string{room + "/Alice"}},
		{"bob", "Bob", "none", "participant", []int{110}, []string{room + "/Alice", room + "/Bob"}},
		{"carol", "Carol", "none", "participant", []int{110}, []string{room + "/Alice", room + "/Bob", room + "/Carol"}},
	} {
		j := rec[tc.name].Joined
		if j.From != room+"/"+tc.nick || !slices.Equal(j.Codes, tc.codes) || j.Affiliation != tc.aff || j.Role != tc.role {
			t.Errorf("%s's own presence: %+v; want from %s/%s, codes %v, %s/%s", tc.name, *j, room, tc.nick, tc.codes, tc.aff, tc.role)
		}
		if got := rec[tc.name].Occupants; !slices.Equal(got, tc.occupants) {
			t.Errorf("%s saw occupants %q on joining, want %q", tc.name, got, tc.occupants)
		}
		if s := rec[tc.name].Subject; s != "" {
			t.Errorf("%s got subject %q, want none", tc.name, s)
		}
	}

	// alice and bob each got both messages live, in order, from the
	// occupant JIDs.
	want := []struct{ from, body string }{{room + "/Alice", "Hello from alice"}, {room + "/Bob", "Hello from bob — ✓"}}
	for _, name := range []string{"alice", "bob"} {
		got := rec[name].Groupchat
		if len(got) != len(want) {
			t.Errorf("%s received %d group chat messages, want %d: %+v", name, len(got), len(want), got)
			continue
		}
		for i, w := range want {
			if got[i].From != w.from || got[i].Body != w.body {
				t.Errorf("%s's message %d: %+v, want from %s %q", name, i, got[i], w.from, w.body)
			}
		}
	}

	// carol, joining late, got them as history.
	h := rec["carol"].History
	if len(h) != len(want) {
		t.Fatalf("carol received %d history messages, want %d: %+v", len(h), len(want), h)
	}
	for i, w := range want {
		if h[i].From != w.from || h[i].Body != w.body || h[i].DelayFrom != room {
			t.Errorf("carol's history message %d: %+v, want from %s %q delayed by %s", i, h[i], w.from, w.body, room)
		}
	}
	if len(rec["carol"].Groupchat) != 0 {
		t.Errorf("carol received live messages: %+v", rec["carol"].Groupchat)
	}
}
