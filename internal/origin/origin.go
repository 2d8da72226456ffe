// Package origin decides which web pages' origins may use the server's
// HTTP endpoints from a browser ([http] allowed_origins): the WebSocket's
// Origin check and the CORS answers of BOSH share it.
package origin

import (
	"net/http"
	"net/url"
	"strings"
)

// Allowed reports whether the page origin ("https://chat.example.org")
// may use an endpoint of the server. allowed is [http] allowed_origins:
// "*" allows any; empty allows pages of the host the request was sent to
// (host, the request's Host) or of publicURL's host.
func Allowed(origin string, allowed []string, host, publicURL string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(allowed) == 0 {
		if strings.EqualFold(u.Host, host) {
			return true
		}
		if p, err := url.Parse(publicURL); err == nil && p.Host != "" && strings.EqualFold(u.Host, p.Host) {
			return true
		}
		return false
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// Request applies Allowed to r's Origin header. A request without one is
// not from a browser page: the rule protects browsers' users only.
func Request(r *http.Request, allowed []string, publicURL string) bool {
	o := r.Header.Get("Origin")
	return o == "" || Allowed(o, allowed, r.Host, publicURL)
}
