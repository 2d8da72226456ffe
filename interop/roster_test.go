package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// rosterRecord is what testdata/slixmpp_roster.py records for one account
// beyond the login fields of account, which it writes to --record-file.
type rosterRecord struct {
	JID          string         `json:"jid"`
	BoundJID     string         `json:"bound_jid"`
	Step         string         `json:"step"` // the last step reached; "done" at the end
	RosterGets   []rosterGet    `json:"roster_gets"`
	RosterPushes []rosterPush   `json:"roster_pushes"`
	Presences    []seenPresence `json:"presences"` // every presence received, in order
	// slixmpp's presence_available and presence_unavailable events.
	PresenceEvents []presenceEvent        `json:"presence_events"`
	ClientRoster   map[string]slixmppItem `json:"client_roster"` // slixmpp's own items after the handshake
	Disconnected   bool                   `json:"disconnected"`
}

// rosterGet is one roster fetch: what slixmpp sent as ver (nil: it sent
// none, because the server did not advertise roster versioning) and what
// came back.
type rosterGet struct {
	Label    string                `json:"label"` // "initial", "versioned", "full"
	SentVer  *string               `json:"sent_ver"`
	Type     string                `json:"type"`
	HasQuery bool                  `json:"has_query"` // false: an empty result (XEP-0237 §2.4)
	Ver      *string               `json:"ver"`
	Items    map[string]rosterItem `json:"items"`
}

type rosterPush struct {
	From  string                `json:"from"`
	ID    string                `json:"id"`
	Ver   string                `json:"ver"`
	Items map[string]rosterItem `json:"items"`
}

type rosterItem struct {
	Subscription string   `json:"subscription"`
	Ask          string   `json:"ask"`
	Name         string   `json:"name"`
	Groups       []string `json:"groups"`
}

// state is the short form compared here: "none+ask", "to", "both", …
func (it rosterItem) state() string {
	if it.Ask != "" {
		return it.Subscription + "+ask"
	}
	return it.Subscription
}

type seenPresence struct {
	From string `json:"from"`
	To   string `json:"to"`
	Type string `json:"type"` // "available" when the stanza had no type
}

type presenceEvent struct {
	Event string `json:"event"`
	From  string `json:"from"`
}

type slixmppItem struct {
	Subscription string `json:"subscription"`
	To           bool   `json:"to"`
	From         bool   `json:"from"`
	PendingOut   bool   `json:"pending_out"`
	PendingIn    bool   `json:"pending_in"`
}

// TestSlixmppRoster: alice (SCRAM-SHA-256) and bob (PLAIN) each fetch the
// roster, send initial presence, and subscribe to each other's presence,
// every stanza of the handshake sent explicitly (slixmpp's auto_authorize
// and auto_subscribe are off): alice subscribe, bob subscribed, bob
// subscribe, alice subscribed. Both must end with subscription "both" in
// slixmpp's roster (built from the pushes) and in a fresh roster fetch,
// each must have received the other's available presence from its full
// JID once subscribed to it, and alice must see bob's unavailable presence
// when he disconnects (testdata/slixmpp_roster.py).
func TestSlixmppRoster(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice's pässword")
	bob := srv.AddUser(t, "bob", "bob:secret")
	recordFile := filepath.Join(t.TempDir(), "records.json")

	res := runSlixmpp(t, srv, "slixmpp_roster.py",
		"--alice-jid", alice.String(), "--alice-password", "alice's pässword", "--alice-mech", "SCRAM-SHA-256",
		"--bob-jid", bob.String(), "--bob-password", "bob:secret", "--bob-mech", "PLAIN",
		"--record-file", recordFile,
	)
	checkLoggedIn(t, "alice", res.get(t, "alice"), "SCRAM-SHA-256")
	checkLoggedIn(t, "bob", res.get(t, "bob"), "PLAIN")

	raw, err := os.ReadFile(recordFile)
	if err != nil {
		t.Fatalf("slixmpp_roster.py wrote no records: %v", err)
	}
	var recs map[string]rosterRecord
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatalf("records %s: %v", raw, err)
	}
	a, okA := recs["alice"]
	b, okB := recs["bob"]
	if !okA || !okB {
		t.Fatalf("records of %d accounts, want alice and bob: %s", len(recs), raw)
	}
	for name, r := range map[string]rosterRecord{"alice": a, "bob": b} {
		if r.Step != "done" {
			t.Errorf("%s stopped at step %q", name, r.Step)
		}
	}

	checkRosterSide(t, "alice", a, b,
		// 1: her request is pending (ask); 2: bob approved; 4: she approved his.
		[]string{"none+ask", "to", "both"},
		[]seenPresence{
			{From: bob.String(), Type: "subscribed"}, // 2: bob approves
			{From: b.BoundJID, Type: "available"},    // 2: and his presence follows
			{From: bob.String(), Type: "subscribe"},  // 3: bob asks back
			{From: b.BoundJID, Type: "unavailable"},  // 6: bob leaves
		})
	checkRosterSide(t, "bob", b, a,
		// 1 leaves no visible item (a request is not a roster item, RFC
		// 6121 §3.1.3); 2: he approved; 3: he asked back; 4: alice approved.
		[]string{"from", "from+ask", "both"},
		[]seenPresence{
			{From: alice.String(), Type: "subscribe"},  // 1: alice asks
			{From: alice.String(), Type: "subscribed"}, // 4: alice approves
			{From: a.BoundJID, Type: "available"},      // 4: and her presence follows
		})
	if !b.Disconnected {
		t.Errorf("bob: not disconnected at the end")
	}
}

// checkRosterSide checks what one account (self) saw of the other: roster
// fetches, the states its roster pushes went through (wantPushes, in
// order), the presence it received from the other's bare or full JID
// (exactly wantPresence, in order; 'to' unchecked there) and slixmpp's
// own roster item at the end.
func checkRosterSide(t *testing.T, name string, self, other rosterRecord, wantPushes []string, wantPresence []seenPresence) {
	t.Helper()
	contact := other.JID

	// Pushes: from the account itself (no 'from' or its bare JID, RFC
	// 6121 §2.1.6), one item each, about the contact, each with a new
	// version.
	var states []string
	lastVer := ""
	for i, p := range self.RosterPushes {
		if p.From != "" && p.From != self.JID {
			t.Errorf("%s: roster push %d from %q, want none or %s", name, i, p.From, self.JID)
		}
		if p.Ver == "" || p.Ver == lastVer {
			t.Errorf("%s: roster push %d has version %q after %q, want a new one", name, i, p.Ver, lastVer)
		}
		lastVer = p.Ver
		it, ok := p.Items[contact]
		if len(p.Items) != 1 || !ok {
			t.Errorf("%s: roster push %d carries %+v, want one item for %s", name, i, p.Items, contact)
			continue
		}
		// A push that repeats the state before it is allowed (xmppd pushes
		// when only the hidden pending-in flag changed, as in step 3); the
		// sequence of distinct states is what must match.
		if n := len(states); n > 0 && states[n-1] == it.state() {
			t.Logf("%s: roster push %d (ver %s) repeats state %s", name, i, p.Ver, it.state())
			continue
		}
		states = append(states, it.state())
	}
	if !reflect.DeepEqual(states, wantPushes) {
		t.Errorf("%s: roster pushes went through %q, want %q (pushes %+v)", name, states, wantPushes, self.RosterPushes)
	}

	// Fetches: the initial one, one with the version of the last push, one
	// with an empty version.
	if len(self.RosterGets) != 3 {
		t.Fatalf("%s: %d roster fetches, want 3: %+v", name, len(self.RosterGets), self.RosterGets)
	}
	initial, versioned, full := self.RosterGets[0], self.RosterGets[1], self.RosterGets[2]
	if initial.SentVer == nil {
		t.Errorf("%s: slixmpp sent no roster version: the server did not advertise roster versioning", name)
	}
	if initial.Type != "result" || !initial.HasQuery || len(initial.Items) != 0 || initial.Ver == nil {
		t.Errorf("%s: initial roster fetch %+v, want an empty roster with a version", name, initial)
	}
	// XEP-0237 §2.4: the version slixmpp holds from the last push is
	// current, so the answer is an empty result.
	if versioned.SentVer == nil || *versioned.SentVer != lastVer {
		t.Errorf("%s: versioned fetch sent ver %v, want the last push's %q", name, deref(versioned.SentVer), lastVer)
	}
	if versioned.Type != "result" || versioned.HasQuery {
		t.Errorf("%s: fetch with the current version answered %+v, want an empty result", name, versioned)
	}
	wantItems := map[string]rosterItem{contact: {Subscription: "both", Groups: []string{}}}
	if full.Type != "result" || !full.HasQuery || !reflect.DeepEqual(full.Items, wantItems) {
		t.Errorf("%s: full roster fetch %+v, want only %s with subscription both", name, full, contact)
	}
	if full.Ver == nil || *full.Ver != lastVer {
		t.Errorf("%s: full roster fetch has version %v, want the last push's %q", name, deref(full.Ver), lastVer)
	}

	// slixmpp's own roster, built from the pushes.
	if it, ok := self.ClientRoster[contact]; !ok || it.Subscription != "both" || !it.To || !it.From || it.PendingOut {
		t.Errorf("%s: slixmpp's roster item for %s = %+v (present %v), want subscription both, nothing pending", name, contact, it, ok)
	}

	// Presence: from the contact, exactly the handshake's and the
	// broadcasts', in order; nothing from anyone else but the account's own
	// resource.
	var got []seenPresence
	for _, p := range self.Presences {
		switch bare(p.From) {
		case contact:
			if p.To != self.JID && p.To != self.BoundJID {
				t.Errorf("%s: presence %+v addressed to %q, want %s or %s", name, p, p.To, self.JID, self.BoundJID)
			}
			got = append(got, seenPresence{From: p.From, Type: p.Type})
		case self.JID:
		default:
			t.Errorf("%s: presence from a stranger: %+v", name, p)
		}
	}
	if !reflect.DeepEqual(got, wantPresence) {
		t.Errorf("%s: presence received from %s:\n got %+v\nwant %+v", name, contact, got, wantPresence)
	}
	// slixmpp raised its presence_available / presence_unavailable events
	// for the contact's availability, from the full JID.
	var wantEvents, gotEvents []presenceEvent
	for _, p := range wantPresence {
		if p.Type == "available" || p.Type == "unavailable" {
			wantEvents = append(wantEvents, presenceEvent{Event: "presence_" + p.Type, From: p.From})
		}
	}
	for _, e := range self.PresenceEvents {
		if bare(e.From) == contact {
			gotEvents = append(gotEvents, e)
		}
	}
	if !reflect.DeepEqual(gotEvents, wantEvents) {
		t.Errorf("%s: slixmpp's presence events for %s:\n got %+v\nwant %+v", name, contact, gotEvents, wantEvents)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
