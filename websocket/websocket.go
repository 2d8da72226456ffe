// Package websocket serves XMPP over WebSocket (RFC 7395) at
// /xmpp-websocket: it accepts the WebSocket, checks its subprotocol and
// Origin, and hands c2s a net.Conn that translates RFC 7395's framing to
// the byte stream of a TCP client and back. Negotiation, limits, sessions,
// routing and stream management are c2s's, unchanged (c2s.Server.ServeConn);
// only the transport is this package's. It also serves the XEP-0156
// host-meta files that tell browser clients where the WebSocket is.
package websocket

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	ws "github.com/gobwas/ws"

	"xmppd.dev/xmppd/c2s"
	"xmppd.dev/xmppd/internal/origin"
)

// Path is where the WebSocket endpoint is served.
const Path = "/xmpp-websocket"

// Subprotocol is the WebSocket subprotocol of RFC 7395 §3.1.
const Subprotocol = "xmpp"

// Options configure a Handler.
type Options struct {
	// AllowedOrigins are the origins ("https://chat.example.org") whose
	// pages may open the WebSocket; "*" allows all. Empty: only pages
	// from the host the request was sent to, or from PublicURL's.
	AllowedOrigins []string
	// PublicURL is the URL clients reach the HTTP listeners by.
	PublicURL string
	// MaxStanzaBytes is c2s's stanza limit; a longer message is refused
	// as a longer stanza is over TCP.
	MaxStanzaBytes int
	// TrustedProxies may tell, with X-Forwarded-Proto: https, that the
	// client's connection to them is encrypted, and, with
	// X-Forwarded-For, the client's address. nil: loopback addresses.
	TrustedProxies []netip.Prefix
}

// Handler accepts WebSocket connections and serves them with a c2s.Server.
type Handler struct {
	srv  *c2s.Server
	opts Options
	log  *slog.Logger
}

// New returns the handler of Path, serving its connections with srv.
func New(srv *c2s.Server, opts Options, log *slog.Logger) *Handler {
	if opts.MaxStanzaBytes <= 0 {
		opts.MaxStanzaBytes = c2s.DefaultLimits.MaxStanzaBytes
	}
	if opts.TrustedProxies == nil {
		opts.TrustedProxies = origin.LoopbackProxies
	}
	return &Handler{srv: srv, opts: opts, log: log}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !offersXMPP(r) {
		// RFC 7395 §3.1 gives the client no XMPP stream without the
		// subprotocol; refusing the handshake (RFC 6455 §4.2.2) tells
		// it at once rather than after an upgrade it must close.
		http.Error(w, "the WebSocket subprotocol 'xmpp' is required (RFC 7395)", http.StatusBadRequest)
		return
	}
	if !h.originAllowed(r) {
		h.log.Debug("WebSocket refused: origin not allowed", "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed (http.allowed_origins)", http.StatusForbidden)
		return
	}
	peer, secure := origin.Client(r, h.opts.TrustedProxies)
	info := c2s.ConnInfo{Remote: peer, Secure: secure, TLS: r.TLS}
	u := ws.HTTPUpgrader{
		Protocol: func(p string) bool { return p == Subprotocol },
		Timeout:  handshakeWriteTimeout,
	}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		h.log.Debug("WebSocket handshake failed", "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	// What the client sent after its request, read by the HTTP server
	// already: the start of the first frame, perhaps.
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ = rw.Reader.Peek(n)
	}
	local := net.Addr(nil)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	remote := net.TCPAddrFromAddrPort(info.Remote)
	h.srv.ServeConn(newConn(nc, pending, local, remote, h.opts.MaxStanzaBytes), info)
}

// handshakeWriteTimeout bounds the write of the handshake's response.
const handshakeWriteTimeout = 10 * time.Second

// offersXMPP reports whether the client offers the xmpp subprotocol.
func offersXMPP(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(p) == Subprotocol {
				return true
			}
		}
	}
	return false
}

// originAllowed applies AllowedOrigins (internal/origin, shared with
// BOSH's CORS).
func (h *Handler) originAllowed(r *http.Request) bool {
	return origin.Request(r, h.opts.AllowedOrigins, h.opts.PublicURL)
}
