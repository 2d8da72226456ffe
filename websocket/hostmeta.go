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

// XEP-0156 link relations of a WebSocket and a BOSH endpoint.
const (
	relWebSocket = "urn:xmpp:alt-connections:websocket"
	relBOSH      = "urn:xmpp:alt-connections:xbosh"
)

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
// the WebSocket endpoint under publicURL and, when boshURL is not empty,
// the BOSH endpoint (XEP-0156 §3). Any page may read them
// (Access-Control-Allow-Origin: *): they are what browser clients fetch
// from another origin to find the endpoints.
func HostMeta(publicURL, boshURL string) http.Handler {
	links := []map[string]string{{"rel": relWebSocket, "href": WebSocketURL(publicURL)}}
	if boshURL != "" {
		links = append(links, map[string]string{"rel": relBOSH, "href": boshURL})
	}
	var x strings.Builder
	x.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n")
	for _, l := range links {
		x.WriteString("  <Link rel='" + l["rel"] + "' href='")
		xml.EscapeText(&x, []byte(l["href"]))
		x.WriteString("'/>\n")
	}
	x.WriteString("</XRD>\n")
	xrd := []byte(x.String())
	jrd, _ := json.Marshal(map[string]any{"links": links})
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
