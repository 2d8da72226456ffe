// Package webchat serves /chat: a page that runs Converse.js, the
// browser XMPP client, pointed at this server's WebSocket endpoint with
// the server's domain preset (like Prosody's and ejabberd's
// mod_conversejs). The page holds Converse's configuration and nothing
// else of ours. Converse's files come from a folder the admin filled with
// `npm install converse.js` or, without one, from Converse's CDN.
package webchat

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Paths served.
const (
	// Path is the chat page.
	Path = "/chat"
	// AssetsPath is where Converse's dist folder is served from when
	// Options.ConverseJSPath is set.
	AssetsPath = "/chat/dist/"
)

// ConverseVersion is the Converse.js release the page loads from the CDN
// when no local copy is configured.
const ConverseVersion = "14.0.0"

// CDNDist is the dist folder of ConverseVersion on Converse's CDN.
const CDNDist = "https://cdn.conversejs.org/" + ConverseVersion + "/dist"

// mainScript is the file of a dist folder the page loads (an ES module);
// the stylesheet beside it is mainStyle.
const (
	mainScript = "converse.min.js"
	mainStyle  = "converse.min.css"
)

// Options configure the page.
type Options struct {
	// Domain is the XMPP domain users log in to (Converse's
	// locked_domain: the login form asks for the user name only).
	Domain string
	// WebSocketURL is the ws:// or wss:// URL of the RFC 7395 endpoint.
	WebSocketURL string
	// ConverseJSPath is a folder holding Converse's dist files: one where
	// `npm install converse.js` ran (<path>/node_modules/converse.js/dist),
	// the converse.js package folder (<path>/dist) or a dist folder
	// itself. "" loads Converse from CDNDist.
	ConverseJSPath string
}

// DistDir returns the folder of Converse's dist files under p (see
// Options.ConverseJSPath), or an error naming the places looked at.
func DistDir(p string) (string, error) {
	candidates := []string{
		filepath.Join(p, "node_modules", "converse.js", "dist"),
		filepath.Join(p, "dist"),
		p,
	}
	for _, d := range candidates {
		if fi, err := os.Stat(filepath.Join(d, mainScript)); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
	}
	return "", fmt.Errorf("webchat: no Converse.js in %s: want %s in one of %s (run `npm install converse.js` there)",
		p, mainScript, strings.Join(candidates, ", "))
}

// Handler serves Path and, with a local copy of Converse, AssetsPath.
type Handler struct {
	page []byte
	csp  string
	dist string // local dist folder, or ""
}

// New builds the page for o. It fails when o.ConverseJSPath is set but
// holds no Converse.js.
func New(o Options) (*Handler, error) {
	if o.Domain == "" || o.WebSocketURL == "" {
		return nil, errors.New("webchat: a domain and a WebSocket URL are needed")
	}
	h := &Handler{}
	assets := CDNDist
	if o.ConverseJSPath != "" {
		d, err := DistDir(o.ConverseJSPath)
		if err != nil {
			return nil, err
		}
		h.dist = d
		assets = strings.TrimSuffix(AssetsPath, "/")
	}

	// Converse's settings (https://conversejs.org/docs/configuration/).
	// json.Marshal escapes <, > and &, so the text is safe inside <script>.
	settings, err := json.Marshal(map[string]any{
		"assets_path":                 assets,
		"websocket_url":               o.WebSocketURL,
		"discover_connection_methods": false,
		"locked_domain":               o.Domain,
		"view_mode":                   "fullscreen",
		"auto_login":                  false,
		"allow_registration":          false,
	})
	if err != nil {
		return nil, err
	}
	script := "\nconverse.initialize(" + string(settings) + ");\n"
	sum := sha256.Sum256([]byte(script))
	scriptHash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"

	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("<title>" + html.EscapeString(o.Domain) + " chat</title>\n")
	b.WriteString("<link rel=\"stylesheet\" href=\"" + html.EscapeString(assets+"/"+mainStyle) + "\">\n")
	b.WriteString("<script type=\"module\" src=\"" + html.EscapeString(assets+"/"+mainScript) + "\"></script>\n")
	b.WriteString("</head>\n<body class=\"converse-fullscreen\">\n")
	// Module scripts run in document order: this one after Converse's.
	b.WriteString("<script type=\"module\">" + script + "</script>\n")
	b.WriteString("<noscript>This chat needs JavaScript.</noscript>\n</body>\n</html>\n")
	h.page = []byte(b.String())
	h.csp = csp(scriptHash, o.WebSocketURL, h.dist == "")
	return h, nil
}

// csp is the page's Content-Security-Policy. Scripts: Converse's files
// and the configuration (by its hash), no other inline script and no
// eval ('wasm-unsafe-eval' is for OMEMO's WebAssembly, as Converse's
// security notes ask). Connections: this origin and the WebSocket.
// Converse's templates use style attributes ('unsafe-inline' for styles
// only), and it shows avatars, previews and media from anywhere.
func csp(scriptHash, wsURL string, cdn bool) string {
	src := "'self'"
	if cdn {
		u, _ := url.Parse(CDNDist)
		src += " https://" + u.Host
	}
	connect := "'self'"
	if u, err := url.Parse(wsURL); err == nil && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	if cdn {
		connect += " https://cdn.conversejs.org" // emoji.json, translations
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src " + src + " " + scriptHash + " 'wasm-unsafe-eval'",
		"style-src " + src + " 'unsafe-inline'",
		"font-src " + src + " data:",
		"img-src * data: blob:",
		"media-src * data: blob:",
		"connect-src " + connect,
		"worker-src 'self' blob:",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'self'",
	}, "; ")
}

// ServeHTTP serves the page at Path and the dist files under AssetsPath.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case r.URL.Path == Path:
		hd := w.Header()
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		w.Write(h.page)
	case r.URL.Path == Path+"/":
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
	case h.dist != "" && strings.HasPrefix(r.URL.Path, AssetsPath):
		h.serveAsset(w, r, strings.TrimPrefix(r.URL.Path, AssetsPath))
	default:
		http.NotFound(w, r)
	}
}

// assetMaxAge is how long browsers may keep a dist file without asking.
const assetMaxAge = time.Hour

// serveAsset serves the regular file name (slash-separated, relative)
// of the dist folder; directories, dot files and names leaving the folder
// get 404.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, "\\") || strings.HasPrefix(path.Base(name), ".") {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(h.dist)
	if err != nil {
		http.Error(w, "chat files unavailable", http.StatusInternalServerError)
		return
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(assetMaxAge.Seconds())))
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}
