package webchat_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/webchat"
)

var insecureHTTP = &http.Client{
	Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := insecureHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// fakeNPM makes a folder laid out like one where `npm install
// converse.js` ran, with small fake files.
func fakeNPM(t *testing.T) string {
	dir := t.TempDir()
	dist := filepath.Join(dir, "node_modules", "converse.js", "dist")
	for name, body := range map[string]string{
		"converse.min.js":      "export default 1;",
		"converse.min.css":     "body{}",
		"locales/de-po.js":     "/* de */",
		".hidden":              "secret",
		"../../../outside.txt": "outside",
	} {
		p := filepath.Join(dist, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var settingsRE = regexp.MustCompile(`(?s)<script type="module">(.*?)</script>`)

// TestPage: /chat on both listeners serves Converse pointed at the
// server's wss:// endpoint with the domain locked, no BOSH, no discovery,
// and a CSP that allows exactly its inline configuration; the files come
// from conversejs_path's npm layout.
func TestPage(t *testing.T) {
	dir := fakeNPM(t)
	srv := xmpptest.Start(t, xmpptest.WithHTTP(), xmpptest.WithHTTPS(), func(c *config.Config) {
		c.Web.ConverseJSPath = dir
	})
	wantWS := "wss://" + srv.Domain + ":" + srv.HTTPS[strings.LastIndex(srv.HTTPS, ":")+1:] + "/xmpp-websocket"
	for _, base := range []string{"https://" + srv.HTTPS, "http://" + srv.HTTP} {
		resp, body := get(t, base+"/chat")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s/chat: %s %s", base, resp.Status, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{
			`"websocket_url":"` + wantWS + `"`,
			`"locked_domain":"` + srv.Domain + `"`,
			`"discover_connection_methods":false`,
			`"view_mode":"fullscreen"`,
			`"auto_login":false`,
			`"allow_registration":false`,
			`"assets_path":"/chat/dist"`,
			`<script type="module" src="/chat/dist/converse.min.js">`,
			`<link rel="stylesheet" href="/chat/dist/converse.min.css">`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s/chat lacks %s:\n%s", base, want, body)
			}
		}
		if strings.Contains(body, "bosh_service_url") {
			t.Errorf("page sets bosh_service_url:\n%s", body)
		}
		m := settingsRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no inline configuration script:\n%s", body)
		}
		sum := sha256.Sum256([]byte(m[1]))
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{
			"script-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "' 'wasm-unsafe-eval';",
			"connect-src 'self' wss://" + srv.Domain + ":",
			"object-src 'none'",
		} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "cdn.conversejs.org") || strings.Contains(csp, "unsafe-eval'") && !strings.Contains(csp, "'wasm-unsafe-eval'") {
			t.Errorf("CSP %q with local files", csp)
		}
	}

	base := "https://" + srv.HTTPS
	for path, want := range map[string]string{
		"/chat/dist/converse.min.js":  "export default 1;",
		"/chat/dist/converse.min.css": "body{}",
		"/chat/dist/locales/de-po.js": "/* de */",
	} {
		resp, body := get(t, base+path)
		if resp.StatusCode != 200 || body != want {
			t.Errorf("%s: %s %q, want %q", path, resp.Status, body, want)
		}
		if path == "/chat/dist/converse.min.js" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s: Content-Type %q, want text/javascript (module scripts need it)", path, resp.Header.Get("Content-Type"))
		}
	}
	for _, path := range []string{
		"/chat/dist/", "/chat/dist/locales", "/chat/dist/.hidden", "/chat/dist/missing.js",
		"/chat/dist/..%2f..%2f..%2foutside.txt", "/chat/dist/%2e%2e/package.json", "/chat/x",
	} {
		if resp, body := get(t, base+path); resp.StatusCode != 404 && resp.StatusCode != 301 || strings.Contains(body, "outside") {
			t.Errorf("%s: %s %q, want 404", path, resp.Status, body)
		}
	}
	if resp, _ := get(t, base+"/chat/"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/chat" {
		t.Errorf("/chat/: %s to %q, want 301 to /chat", resp.Status, resp.Header.Get("Location"))
	}
	if resp, err := insecureHTTP.Post(base+"/chat", "text/plain", nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST /chat: %v %v", resp.Status, err)
	}
}

// TestPageCDN: without conversejs_path the page loads Converse from its
// CDN, which the CSP allows, and /chat/dist/ is not served.
func TestPageCDN(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	resp, body := get(t, "https://"+srv.HTTPS+"/chat")
	if resp.StatusCode != 200 {
		t.Fatalf("/chat: %s", resp.Status)
	}
	cdn := "https://cdn.conversejs.org/" + webchat.ConverseVersion + "/dist"
	for _, want := range []string{`src="` + cdn + `/converse.min.js"`, `href="` + cdn + `/converse.min.css"`, `"assets_path":"` + cdn + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/chat lacks %s:\n%s", want, body)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' https://cdn.conversejs.org ") {
		t.Errorf("CSP %q does not allow the CDN's scripts", csp)
	}
	if resp, _ := get(t, "https://"+srv.HTTPS+"/chat/dist/converse.min.js"); resp.StatusCode != 404 {
		t.Errorf("/chat/dist/ without conversejs_path: %s, want 404", resp.Status)
	}
}

// TestDisabled: with [web] enabled = false, /chat is 404 (and the rest
// of the listener still serves).
func TestDisabled(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTP(), func(c *config.Config) { c.Web.Enabled = false })
	if resp, _ := get(t, "http://"+srv.HTTP+"/chat"); resp.StatusCode != 404 {
		t.Errorf("/chat disabled: %s, want 404", resp.Status)
	}
	if resp, _ := get(t, "http://"+srv.HTTP+"/.well-known/host-meta"); resp.StatusCode != 200 {
		t.Errorf("host-meta: %s", resp.Status)
	}
}

// TestDistDir: the three layouts conversejs_path may have, and a folder
// with none.
func TestDistDir(t *testing.T) {
	npm := fakeNPM(t)
	pkg := filepath.Join(npm, "node_modules", "converse.js")
	dist := filepath.Join(pkg, "dist")
	for _, p := range []string{npm, pkg, dist} {
		if got, err := webchat.DistDir(p); err != nil || got != dist {
			t.Errorf("DistDir(%s) = %q, %v; want %s", p, got, err, dist)
		}
	}
	if _, err := webchat.DistDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "npm install converse.js") {
		t.Errorf("DistDir(empty) error %v", err)
	}
	if _, err := webchat.New(webchat.Options{Domain: "example.com", WebSocketURL: "wss://example.com/xmpp-websocket", ConverseJSPath: t.TempDir()}); err == nil {
		t.Error("New with an empty conversejs_path folder succeeded")
	}
}

// TestConfigValidation: check-config refuses a conversejs_path without
// Converse.js, and accepts the npm layout.
func TestConfigValidation(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Domain, cfg.Server.DataDir = "example.com", t.TempDir()
	cfg.Web.ConverseJSPath = t.TempDir()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "web.conversejs_path") {
		t.Errorf("Validate: %v, want a web.conversejs_path error", err)
	}
	cfg.Web.ConverseJSPath = fakeNPM(t)
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate with the npm layout: %v", err)
	}
}
