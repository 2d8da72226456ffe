package interop

import (
	"encoding/json"
	"net"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppPush: bob, on slixmpp with stream management, enables push
// (XEP-0357) with a publish-options secret and loses his connection; each
// of alice's messages then reaches the app server, slixmpp's
// ComponentXMPP parsing it with its XEP-0060 stanzas, as a publish to
// bob's node from bob's bare JID with the summary form (count, sender, no
// body) and the secret; once bob has resumed, nothing more
// (testdata/slixmpp_push.py).
func TestSlixmppPush(t *testing.T) {
	requireSlixmpp(t)
	const app, secret, pushSecret = "push.localhost", "component secret", "eruio234vzxc2kla-91"
	srv := xmpptest.Start(t, xmpptest.WithComponent(app, secret))
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	_, port, err := net.SplitHostPort(srv.Component)
	if err != nil {
		t.Fatal(err)
	}
	res := runSlixmpp(t, srv, "slixmpp_push.py",
		"--component-port", port, "--component-jid", app, "--secret", secret, "--push-secret", pushSecret,
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw")
	a, b, c := res.get(t, "alice"), res.get(t, "bob"), res.get(t, "component")
	var bx struct {
		Enable  string
		Resumed int
	}
	if err := json.Unmarshal(b.Extra, &bx); err != nil {
		t.Fatalf("bob's extra: %v (%s)", err, b.Extra)
	}
	if bx.Enable != "result" || bx.Resumed != 1 {
		t.Fatalf("bob: enable %q, resumed %d times; want result, once", bx.Enable, bx.Resumed)
	}
	var cx struct {
		Notifications []struct {
			From, To, Node string
			Summary        map[string]*string
			PublishOptions map[string]*string `json:"publish_options"`
		}
	}
	if err := json.Unmarshal(c.Extra, &cx); err != nil {
		t.Fatalf("app server's extra: %v (%s)", err, c.Extra)
	}
	if len(cx.Notifications) != 2 {
		t.Fatalf("app server got %d notifications, want 2 (one per message while away, none after resuming): %+v", len(cx.Notifications), cx.Notifications)
	}
	for i, n := range cx.Notifications {
		want := map[string]string{
			"FORM_TYPE":           "urn:xmpp:push:summary",
			"message-count":       []string{"1", "2"}[i],
			"last-message-sender": a.BoundJID,
		}
		if n.From != bob.String() || n.To != app || n.Node != "conversations-node" {
			t.Errorf("notification %d: from %s to %s node %s", i, n.From, n.To, n.Node)
		}
		for k, v := range want {
			if n.Summary[k] == nil || *n.Summary[k] != v {
				t.Errorf("notification %d: %s = %v, want %s (%v)", i, k, n.Summary[k], v, n.Summary)
			}
		}
		if _, ok := n.Summary["last-message-body"]; ok || len(n.Summary) != 3 {
			t.Errorf("notification %d: summary %v, want only the three fields", i, n.Summary)
		}
		if p := n.PublishOptions["secret"]; p == nil || *p != pushSecret {
			t.Errorf("notification %d: publish-options %v, want the secret", i, n.PublishOptions)
		}
	}
}
