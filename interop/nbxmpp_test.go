package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestNbxmppChat: Gajim's XMPP library (Debian's python3-nbxmpp) logs two
// accounts in over STARTTLS and delivers a chat message
// (testdata/nbxmpp_chat.py).
func TestNbxmppChat(t *testing.T) {
	if err := exec.Command(python, "-c", "import nbxmpp, gi").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-nbxmpp is not importable by %s: %v (.ci/run installs it)", python, err)
		}
		t.Skipf("python3-nbxmpp is not importable by %s: %v", python, err)
	}
	srv := xmpptest.Start(t)
	srv.AddUser(t, "alice", "pw gajim")
	srv.AddUser(t, "bob", "pw gajim")
	host, port, _ := strings.Cut(srv.Addr, ":")
	const body = "hello from nbxmpp — ünïcode <&>"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "testdata/nbxmpp_chat.py", host, port, srv.Domain, "pw gajim", body).Output()
	if err != nil {
		t.Fatalf("nbxmpp_chat.py: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var res struct {
		Connected  []string          `json:"connected"`
		Mechanisms map[string]string `json:"mechanisms"`
		Body       string            `json:"body"`
		From       string            `json:"from"`
		Errors     []string          `json:"errors"`
		SM         struct {
			Supported, Enabled, Resumable bool
		} `json:"sm"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(res.Errors) > 0 || len(res.Connected) != 2 {
		t.Fatalf("nbxmpp: connected %q, errors %q", res.Connected, res.Errors)
	}
	t.Logf("nbxmpp stream management: %+v", res.SM)
	if !res.SM.Supported || !res.SM.Enabled || !res.SM.Resumable {
		t.Errorf("nbxmpp's stream management: %+v, want offered, enabled and resumable (as Gajim uses it)", res.SM)
	}
	for _, m := range res.Mechanisms {
		if !strings.HasPrefix(m, "SCRAM-SHA-") {
			t.Errorf("nbxmpp chose %q, want a SCRAM mechanism", m)
		}
	}
	if len(res.Mechanisms) != 2 {
		t.Errorf("mechanisms seen: %v, want one per account", res.Mechanisms)
	}
	if res.Body != body || res.From != "alice@localhost/gajim" {
		t.Fatalf("bob received %q from %q, want %q from alice@localhost/gajim", res.Body, res.From, body)
	}
}

// requireNbxmpp skips the test when /usr/bin/python3 cannot import nbxmpp
// (with GObject), and fails it instead under CI=true.
func requireNbxmpp(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import nbxmpp, gi").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-nbxmpp is not importable by %s: %v (.ci/run installs it)", python, err)
		}
		t.Skipf("python3-nbxmpp is not importable by %s: %v", python, err)
	}
}

// befriend makes a and b (passwords pwA, pwB) subscribed to each
// other's presence, through two test clients that then leave.
func befriend(t *testing.T, srv *xmpptest.Server, a jid.JID, pwA string, b jid.JID, pwB string) {
	t.Helper()
	ca := srv.Login(t, a, pwA, xmpptest.LoginOptions{Resource: "setup"})
	cb := srv.Login(t, b, pwB, xmpptest.LoginOptions{Resource: "setup"})
	defer ca.Close()
	defer cb.Close()
	for _, c := range []*xmpptest.Client{ca, cb} {
		c.Send("<presence/>")
		c.Sync()
	}
	for _, p := range [][2]*xmpptest.Client{{ca, cb}, {cb, ca}} {
		from, to := p[0], p[1]
		from.Send("<presence type='subscribe' to='%s'/>", to.JID.Bare())
		to.Expect(10*time.Second, "subscription request", func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("type") == "subscribe"
		})
		to.Send("<presence type='subscribed' to='%s'/>", from.JID.Bare())
		from.Expect(10*time.Second, "approval", func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("type") == "subscribed"
		})
	}
	ca.Sync()
	cb.Sync()
}
