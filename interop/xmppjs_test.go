package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// xmppjsDir is the Node project with @xmpp/client pinned
// (xmppjs/package.json, xmppjs/package-lock.json); .ci/run installs its
// modules with npm ci.
const xmppjsDir = "xmppjs"

// requireXmppjs skips the test when node or the project's node_modules
// are missing, and fails it instead under CI=true.
func requireXmppjs(t *testing.T) string {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+" (.ci/run installs node and runs npm ci --prefix interop/xmppjs)", args...)
		}
		t.Skipf(format+" (npm ci --prefix interop/xmppjs)", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(xmppjsDir, "node_modules", "@xmpp", "client", "package.json")); err != nil {
		skip("@xmpp/client is not installed in interop/xmppjs: %v", err)
	}
	return node
}

// TestXmppjsWebSocketChat: @xmpp/client (xmpp.js, from npm) logs in over
// XMPP over WebSocket on the HTTPS listener with SCRAM, and exchanges chat
// messages with a client on the TCP c2s listener (xmppjs/client.js).
//
// It runs once with the npm package ws as the WebSocket, and once with
// Node's own (undici's, the WHATWG API browsers have) when this node has
// one, with or without --experimental-websocket (Node 20).
func TestXmppjsWebSocketChat(t *testing.T) {
	node := requireXmppjs(t)
	t.Run("ws", func(t *testing.T) { xmppjsChat(t, node, nil, []string{"XMPPJS_WEBSOCKET=ws"}, "ws") })
	t.Run("node", func(t *testing.T) {
		var args []string
		probe := []string{"-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"}
		if exec.Command(node, probe...).Run() != nil {
			args = []string{"--experimental-websocket"}
			if err := exec.Command(node, append(args, probe...)...).Run(); err != nil {
				t.Skipf("this node has no WebSocket of its own: %v", err)
			}
		}
		xmppjsChat(t, node, args, nil, "node")
	})
}

// xmppjsChat runs xmppjs/client.js with node (nodeArgs before the script,
// env added to the environment) and expects it to have used the WebSocket
// implementation impl.
func xmppjsChat(t *testing.T, node string, nodeArgs, env []string, impl string) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "alice", "pw xmpp.js")
	bob := srv.AddUser(t, "bob", "pw tcp")
	tcp := srv.Login(t, bob, "pw tcp", xmpptest.LoginOptions{Resource: "tcp"})
	tcp.Send("<presence/>")
	tcp.Sync()

	const body = "hello from xmpp.js — ünïcode <&> \"quotes\""
	const reply = "hello back from TCP — ok"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := append(append([]string{}, nodeArgs...), filepath.Join(xmppjsDir, "client.js"),
		"wss://"+srv.HTTPS+"/xmpp-websocket", srv.Domain, "alice", "pw xmpp.js", "xmppjs",
		tcp.JID.String(), body, "30000")
	cmd := exec.CommandContext(ctx, node, args...)
	// The test server's certificate is self-signed.
	cmd.Env = append(append(os.Environ(), "NODE_TLS_REJECT_UNAUTHORIZED=0", "NODE_NO_WARNINGS=1"), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Bob, on TCP, receives alice's message and answers it.
	var got xmpptest.Element
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case e := <-tcp.Elements():
			if e.Name.Local == "message" && e.Attr("type") != "error" {
				got = e
				break wait
			}
		case err := <-exited:
			t.Fatalf("client.js ended before bob received a message: %v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
		case <-deadline:
			t.Fatalf("bob received no message from xmpp.js\nstdout: %s\nstderr: %s", &stdout, &stderr)
		}
	}
	from := got.Attr("from")
	if !strings.HasPrefix(from, "alice@"+srv.Domain+"/") {
		t.Errorf("bob's message is from %q, want alice's full JID", from)
	}
	var msg struct {
		Body []string `xml:"body"`
	}
	if err := xml.Unmarshal([]byte(got.Raw), &msg); err != nil || len(msg.Body) != 1 || msg.Body[0] != body {
		t.Errorf("bob received %s (%v), want exactly one body %q", got.Raw, err, body)
	}
	tcp.Send("<message to='%s' type='chat' id='tcp-1'><body>%s</body></message>", xmlEscape(from), xmlEscape(reply))

	var err error
	select {
	case err = <-exited:
	case <-time.After(40 * time.Second):
		t.Fatalf("client.js did not exit\nstdout: %s\nstderr: %s", &stdout, &stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res struct {
		WebSocket   string   `json:"websocket"`
		Online      string   `json:"online"`
		Secure      bool     `json:"secure"`
		Offered     []string `json:"offered"`
		Mechanism   string   `json:"mechanism"`
		SASLSuccess bool     `json:"saslSuccess"`
		Sent        bool     `json:"sent"`
		Reply       *struct {
			From, Body string
		} `json:"reply"`
		Errors []string `json:"errors"`
	}
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("client.js (exit %v) output %q: %v\nstderr: %s", err, stdout.String(), jerr, &stderr)
	}
	t.Logf("xmpp.js (%s WebSocket): online as %s, offered %v, chose %s, secure %v", res.WebSocket, res.Online, res.Offered, res.Mechanism, res.Secure)
	if res.WebSocket != impl {
		t.Errorf("client.js used the %q WebSocket, want %q", res.WebSocket, impl)
	}
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("client.js: %v, errors %q\nstderr: %s", err, res.Errors, &stderr)
	}
	if res.Online != from {
		t.Errorf("xmpp.js bound %q, bob saw the message from %q", res.Online, from)
	}
	switch res.Mechanism {
	case "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS":
	default:
		t.Errorf("xmpp.js authenticated with %q (offered %v), want SCRAM", res.Mechanism, res.Offered)
	}
	if !res.SASLSuccess {
		t.Errorf("xmpp.js saw no SASL <success/>")
	}
	if res.Reply == nil || res.Reply.Body != reply || res.Reply.From != tcp.JID.String() {
		t.Errorf("xmpp.js received %+v, want %q from %s", res.Reply, reply, tcp.JID)
	}
}

// xmlEscape escapes s for XML character data and attribute values.
func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}
