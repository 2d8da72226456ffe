package interop

import (
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppChat: slixmpp logs alice in with SCRAM-SHA-256 and bob with
// PLAIN, both over STARTTLS; alice writes to bob's bare JID and bob answers
// the full JID the message came from (testdata/slixmpp_chat.py).
func TestSlixmppChat(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice's pässword")
	bob := srv.AddUser(t, "bob", "bob:secret")
	// Markup, quotes and non-ASCII text must arrive exactly as sent.
	const aliceBody = `Hello Bob <b>&amp;</b> & 'quoted' "text" — café ✓`
	const bobBody = "Hi Alice, got it: <ok/> 🎉\nsecond line"

	res := runSlixmpp(t, srv, "slixmpp_chat.py",
		"--alice-jid", alice.String(), "--alice-password", "alice's pässword", "--alice-mech", "SCRAM-SHA-256", "--alice-body", aliceBody,
		"--bob-jid", bob.String(), "--bob-password", "bob:secret", "--bob-mech", "PLAIN", "--bob-body", bobBody,
	)
	a, b := res.get(t, "alice"), res.get(t, "bob")
	checkLoggedIn(t, "alice", a, "SCRAM-SHA-256")
	checkLoggedIn(t, "bob", b, "PLAIN")
	if t.Failed() {
		return
	}

	// bob got alice's message, from her full JID, to his bare JID (a
	// server does not rewrite 'to') or the resource it was delivered to.
	if len(b.Received) != 1 {
		t.Fatalf("bob received %d messages, want 1: %+v", len(b.Received), b.Received)
	}
	m := b.Received[0]
	if m.Body != aliceBody {
		t.Errorf("bob received body %q, want %q", m.Body, aliceBody)
	}
	if m.From != a.BoundJID {
		t.Errorf("bob's message is from %q, want alice's full JID %q", m.From, a.BoundJID)
	}
	if m.To != bob.String() && m.To != b.BoundJID {
		t.Errorf("bob's message is to %q, want %q or %q", m.To, bob, b.BoundJID)
	}
	if m.Type != "chat" {
		t.Errorf("bob's message has type %q, want chat", m.Type)
	}

	// alice got bob's reply, from his full JID, to hers.
	if len(a.Received) != 1 {
		t.Fatalf("alice received %d messages, want 1: %+v", len(a.Received), a.Received)
	}
	m = a.Received[0]
	if m.Body != bobBody {
		t.Errorf("alice received body %q, want %q", m.Body, bobBody)
	}
	if m.From != b.BoundJID {
		t.Errorf("alice's message is from %q, want bob's full JID %q", m.From, b.BoundJID)
	}
	if m.To != a.BoundJID {
		t.Errorf("alice's message is to %q, want her full JID %q", m.To, a.BoundJID)
	}
	if m.Type != "chat" {
		t.Errorf("alice's message has type %q, want chat", m.Type)
	}
}
