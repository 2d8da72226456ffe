package websocket

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
)

// Paths of the XEP-0156 host-meta files.
const (
	HostMetaPath     = "/.well-known/host-meta"
	HostMetaJSONPath = "/.well-known/host-meta.json"
)

// relWebSocket is the XEP-0156 link relation of a WebSocket endpoint.
const relWebSocket = "urn:xmpp:alt-connections:websocket"

// WebSocketURL returns the ws:// or wss:// URL of Path under publicURL
// (an http:// or https:// URL without a trailing slash).
func WebSocketURL(publicURL string) string {
	switch {
	case strings.HasPrefix(publicURL, "https://"):
		return "wss://" + strings.TrimPrefix(publicURL, "https://") + Path
	case strings.HasPrefix(publicURL, "http://"):
		return "ws://" + strings.TrimPrefix(publicURL, "http://") + Path
	}
	return ""
}

// HostMeta serves HostMetaPath (XRD) and HostMetaJSONPath (JRD), listing
// the WebSocket endpoint under publicURL (XEP-0156 §3). Any page may read
// them (Access-Control-Allow-Origin: *): they are what browser clients
// fetch from another origin to find the endpoint.
func HostMeta(publicURL string) http.Handler {
	href := WebSocketURL(publicURL)
	var x strings.Builder
	x.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='" + relWebSocket + "' href='")
	xml.EscapeText(&x, []byte(href))
	x.WriteString("'/>\n</XRD>\n")
	xrd := []byte(x.String())
	jrd, _ := json.Marshal(map[string]any{
		"links": []map[string]string{{"rel": relWebSocket, "href": href}},
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.URL.Path == HostMetaJSONPath {
			w.Header().Set("Content-Type", "application/json")
			w.Write(jrd)
			return
		}
		w.Header().Set("Content-Type", "application/xrd+xml")
		w.Write(xrd)
	})
}
