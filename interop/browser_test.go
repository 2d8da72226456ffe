package interop

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// chromium is Debian's Chromium, which playwright-core drives.
const chromium = "/usr/bin/chromium"

// requireBrowser skips the test (fails it under CI=true) when Chromium,
// node or interop/browser's node modules (npm ci --prefix interop/browser)
// are missing.
func requireBrowser(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs)")
	}
	for _, m := range []string{"playwright-core", "converse.js/dist/converse.min.js"} {
		if _, err := os.Stat(filepath.Join("browser", "node_modules", m)); err != nil {
			missing = append(missing, "browser/node_modules/"+m+" (npm ci --prefix interop/browser)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "interop: missing " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; required under CI=true")
	}
	t.Skip(msg + "; skipping (under CI=true this fails)")
}

// port is the port of the address host:port.
func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// artefactDir is where screenshots are kept: $XMPPD_ARTEFACTS, under CI
// /tmp/xmppd-artefacts, else the test's temporary folder.
func artefactDir(t *testing.T) string {
	dir := os.Getenv("XMPPD_ARTEFACTS")
	if dir == "" && os.Getenv("CI") == "true" {
		dir = "/tmp/xmppd-artefacts"
	}
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowserConverse: Debian's headless Chromium opens /chat over HTTPS,
// with Converse.js installed from npm (browser/package.json) and served
// from [web] conversejs_path; it logs in through Converse's login form,
// opens a chat with a TCP user, and sends a typed message, which the TCP
// client receives; the TCP client's reply shows on the page
// (browser/chat.mjs). The screenshot is kept (see artefactDir).
func TestBrowserConverse(t *testing.T) { browserConverse(t, false) }

// TestBrowserConverseBOSH: TestBrowserConverse with Converse's settings
// changed (by browser/chat.mjs, before Converse starts) to connect over
// BOSH (bosh_service_url, /http-bind) instead of the WebSocket: the login,
// the message and the reply all go over BOSH requests, and no WebSocket
// is opened.
func TestBrowserConverseBOSH(t *testing.T) { browserConverse(t, true) }

func browserConverse(t *testing.T, bosh bool) {
	requireBrowser(t)
	modules, err := filepath.Abs(filepath.Join("browser", "node_modules", "converse.js"))
	if err != nil {
		t.Fatal(err)
	}
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.Web.ConverseJSPath = modules
	})
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	bc := srv.Login(t, bob, "bob-pw", xmpptest.LoginOptions{Resource: "tcp"})
	bc.Send("<presence/>")

	shot := filepath.Join(artefactDir(t), "browser-converse.png")
	if bosh {
		shot = filepath.Join(artefactDir(t), "browser-converse-bosh.png")
	}
	const msg, reply = "hello from Converse in Chromium", "hello back from TCP"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "chat.mjs")
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(),
		// At the server's domain (localhost), the host of the page's
		// WebSocket URL: the WebSocket refuses other origins.
		"URL=https://"+srv.Domain+":"+port(srv.HTTPS)+"/chat",
		"USER_NAME="+alice.Localpart(), "PASSWORD=alice-pw",
		"PEER="+bob.String(), "MESSAGE="+msg, "REPLY="+reply,
		"SCREENSHOT="+shot, "CHROMIUM="+chromium)
	if bosh {
		cmd.Env = append(cmd.Env, "BOSH_URL=https://"+srv.Domain+":"+port(srv.HTTPS)+"/http-bind")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// The TCP client receives the typed message and replies to the
	// browser's full JID.
	got := make(chan xmpptest.Element, 1)
	go func() {
		for e := range bc.Elements() {
			if e.Name.Local == "message" && strings.Contains(e.Raw, msg) {
				got <- e
				return
			}
		}
	}()
	select {
	case e := <-got:
		if from := e.Attr("from"); !strings.HasPrefix(from, alice.String()+"/") {
			t.Errorf("message from %q, want %s/…", from, alice)
		}
		bc.Send("<message to='%s' type='chat' id='r1'><body>%s</body></message>", e.Attr("from"), reply)
	case err := <-done:
		t.Fatalf("browser script ended before the message arrived (%v):\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatalf("no message from the browser:\n%s", out.String())
	}
	err = <-done
	t.Logf("browser script:\n%s", out.String())
	t.Logf("screenshot: %s", shot)
	if err != nil {
		t.Fatalf("browser script: %v", err)
	}
	if !strings.Contains(out.String(), "reply shown") {
		t.Fatal("the page did not show the reply")
	}
	if bosh {
		m := regexp.MustCompile(`bosh requests: (\d+), websockets: (\d+)`).FindStringSubmatch(out.String())
		if m == nil || m[1] == "0" || m[2] != "0" {
			t.Fatalf("BOSH not used, or a WebSocket opened: %v", m)
		}
	}
}
