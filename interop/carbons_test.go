package interop

import (
	"encoding/json"
	"fmt"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppCarbons: with slixmpp's XEP-0280 plugin on two resources of
// alice, each sees the conversation the other has with bob: a received
// copy of bob's message to the other, a sent copy of the other's message
// to bob, and none of a message marked <private/>.
func TestSlixmppCarbons(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	res := runSlixmpp(t, srv, "slixmpp_carbons.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
	)
	carbons := func(name string) []string {
		var raw [][4]string
		a := res.get(t, name)
		if err := json.Unmarshal(a.Extra, &raw); err != nil {
			t.Fatalf("%s: %v (%s)", name, err, a.Extra)
		}
		var out []string
		for _, c := range raw {
			out = append(out, fmt.Sprint(c))
		}
		return out
	}
	b := res.get(t, "bob")
	want := []string{
		"[received " + b.BoundJID + " alice@localhost/one to one]",
		"[sent alice@localhost/one " + b.BoundJID + " from one]",
	}
	if got := carbons("alice-two"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alice/two's carbons:\n got %q\nwant %q", got, want)
	}
	if got := carbons("alice-one"); len(got) != 0 {
		t.Errorf("alice/one got carbons of its own conversation: %q", got)
	}
}
