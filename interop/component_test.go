package interop

import (
	"net"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppComponent: slixmpp's ComponentXMPP connects as an external
// component (XEP-0114) with its secret, receives a user's message to its
// domain and answers it; the user gets the answer from the component's
// JID.
func TestSlixmppComponent(t *testing.T) {
	requireSlixmpp(t)
	const gateway, secret = "echo.localhost", "component secret ✓"
	srv := xmpptest.Start(t, xmpptest.WithComponent(gateway, secret))
	alice := srv.AddUser(t, "alice", "pw")
	_, port, err := net.SplitHostPort(srv.Component)
	if err != nil {
		t.Fatal(err)
	}
	const body = "Hello component <b>&amp;</b> — café"
	res := runSlixmpp(t, srv, "slixmpp_component.py",
		"--component-port", port, "--component-jid", gateway, "--secret", secret,
		"--alice-jid", alice.String(), "--alice-password", "pw", "--alice-body", body)
	a, c := res.get(t, "alice"), res.get(t, "component")
	checkLoggedIn(t, "alice", a, "SCRAM-SHA-256")
	if !c.SessionStarted || len(c.StreamErrors) != 0 {
		t.Fatalf("component: handshake accepted = %v, stream errors %q", c.SessionStarted, c.StreamErrors)
	}
	if len(c.Received) != 1 || c.Received[0].Body != body || c.Received[0].From != a.BoundJID || c.Received[0].To != "echo@"+gateway {
		t.Fatalf("component received %+v, want alice's message from %s to echo@%s", c.Received, a.BoundJID, gateway)
	}
	if len(a.Received) != 1 || a.Received[0].Body != "echo: "+body || a.Received[0].From != "echo@"+gateway || a.Received[0].Type != "chat" {
		t.Fatalf("alice received %+v, want the echo from echo@%s", a.Received, gateway)
	}
}
