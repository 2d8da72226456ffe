package interop

import (
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppOffline: alice writes to bob while he is offline; when bob
// logs in with slixmpp, the messages arrive in order, from alice, each with
// a XEP-0203 delay from the server stamped when it was stored
// (testdata/slixmpp_offline.py).
func TestSlixmppOffline(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	bodies := []string{"first, while you were away", `second <b>&amp;</b> — café ✓`}

	start := time.Now().Add(-time.Second) // XEP-0082 stamps may drop the fraction
	res := runSlixmpp(t, srv, "slixmpp_offline.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
		"--body", bodies[0], "--body", bodies[1],
	)
	end := time.Now()
	a, b := res.get(t, "alice"), res.get(t, "bob")
	checkLoggedIn(t, "alice", a, "SCRAM-SHA-256")
	checkLoggedIn(t, "bob", b, "SCRAM-SHA-256")
	if t.Failed() {
		return
	}
	if len(a.Received) != 0 {
		t.Errorf("alice received %+v, want nothing (no error: the messages were stored)", a.Received)
	}
	if len(b.Received) != len(bodies) {
		t.Fatalf("bob received %d messages, want %d: %+v", len(b.Received), len(bodies), b.Received)
	}
	for i, m := range b.Received {
		if m.Body != bodies[i] {
			t.Errorf("bob's message %d has body %q, want %q", i, m.Body, bodies[i])
		}
		if m.From != a.BoundJID || m.Type != "chat" {
			t.Errorf("bob's message %d is a %q from %q, want chat from %q", i, m.Type, m.From, a.BoundJID)
		}
		if m.DelayFrom != srv.Domain {
			t.Errorf("bob's message %d has delay from %q, want %q", i, m.DelayFrom, srv.Domain)
		}
		stamp, err := time.Parse(time.RFC3339Nano, m.DelayStamp)
		if err != nil || stamp.Before(start) || stamp.After(end) {
			t.Errorf("bob's message %d has delay stamp %q (%v), want a time between %s and %s", i, m.DelayStamp, err, start.UTC(), end.UTC())
		}
	}
}
