package interop

import (
	"encoding/json"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppResume: slixmpp's XEP-0198 plugin, its connection aborted,
// resumes its session on a new connection: the message sent while it was
// away arrives once, nothing arrives twice, and it is the same session
// (same full JID, no second session start).
func TestSlixmppResume(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	res := runSlixmpp(t, srv, "slixmpp_resume.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
	)
	b := res.get(t, "bob")
	var extra struct {
		Enabled, Resumed, Sessions, SMFailed int
		BoundAfter                           string `json:"bound_after"`
	}
	if err := json.Unmarshal(b.Extra, &extra); err != nil {
		t.Fatalf("bob's extra: %v (%s)", err, b.Extra)
	}
	var bodies []string
	for _, m := range b.Received {
		if m.Body != "" {
			bodies = append(bodies, m.Body)
		}
	}
	if got := len(bodies); got != 3 || bodies[0] != "before" || bodies[1] != "during" || bodies[2] != "after" {
		t.Errorf("bob received %q, want before, during, after, once each", bodies)
	}
	if extra.Enabled != 1 || extra.Resumed != 1 || extra.Sessions != 1 || extra.SMFailed != 0 {
		t.Errorf("stream management events %+v, want enabled once, resumed once, one session, no failure", extra)
	}
	if extra.BoundAfter != b.BoundJID {
		t.Errorf("full JID after resuming %q, want the session's %q", extra.BoundAfter, b.BoundJID)
	}
}
