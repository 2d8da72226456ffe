// Package bosh serves XMPP over BOSH (XEP-0124, XEP-0206) at /http-bind:
// a BOSH session is a c2s session whose transport is a series of HTTP
// requests. The package keeps the request window, holds requests, and
// hands c2s a net.Conn that turns the payloads of requests, in rid order,
// into the byte stream of a TCP client (stream header, elements,
// </stream:stream>) and c2s's output back into response bodies.
// Negotiation, limits, sessions, routing and stream management are c2s's,
// unchanged (c2s.Server.ServeConn).
package bosh

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"xmppd.dev/xmppd/c2s"
	"xmppd.dev/xmppd/internal/origin"
	"xmppd.dev/xmppd/internal/xmlsplit"
)

// Path is where BOSH is served.
const Path = "/http-bind"

// version is the XEP-0124 version implemented.
const version = "1.11"

// maxBacklog bounds the input a session may have waiting for c2s to read
// it: a full window of the largest requests (MaxHold+1 of them). A client
// that gets further ahead is sending faster than its read rate allows.
func (h *Handler) maxBacklog() int {
	return (h.opts.MaxHold + 1) * (h.opts.MaxStanzaBytes + framingBytes)
}

// framingBytes is what a request may hold beyond c2s's stanza limit: the
// <body/> wrapper and a few small elements besides one stanza.
const framingBytes = 16 << 10

// Options configure a Handler. Zero durations and limits take Prosody's
// defaults.
type Options struct {
	// AllowedOrigins are the origins whose pages may use the endpoint
	// (CORS); "*" allows all. Empty: the request's host and PublicURL's.
	AllowedOrigins []string
	// PublicURL is the URL clients reach the HTTP listeners by.
	PublicURL string
	// MaxStanzaBytes is c2s's stanza limit.
	MaxStanzaBytes int
	// TrustedProxies may say, with X-Forwarded-Proto: https, that the
	// client's connection to them is encrypted, and, with
	// X-Forwarded-For, the client's address. nil: loopback addresses.
	TrustedProxies []netip.Prefix
	// MaxWait bounds the time a request is held (60s).
	MaxWait time.Duration
	// MaxInactivity is how long a session may go without a request
	// before its transport ends (60s).
	MaxInactivity time.Duration
	// MaxHold bounds the requests held at once (1; -1 for 0).
	MaxHold int
	// MaxPause bounds a client's pause (120s).
	MaxPause time.Duration
	// Polling is the shortest interval between empty requests of a
	// client holding none (5s; -1 for no limit).
	Polling time.Duration
}

// Handler serves Path, running its sessions on a c2s.Server.
type Handler struct {
	srv  *c2s.Server
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by sid; guarded by mu
}

// New returns the handler of Path, serving its sessions with srv.
func New(srv *c2s.Server, opts Options, log *slog.Logger) *Handler {
	if opts.MaxStanzaBytes <= 0 {
		opts.MaxStanzaBytes = c2s.DefaultLimits.MaxStanzaBytes
	}
	if opts.TrustedProxies == nil {
		opts.TrustedProxies = origin.LoopbackProxies
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.MaxWait, 60*time.Second)
	def(&opts.MaxInactivity, 60*time.Second)
	def(&opts.MaxPause, 120*time.Second)
	def(&opts.Polling, 5*time.Second)
	opts.Polling = max(opts.Polling, 0)
	switch {
	case opts.MaxHold == 0:
		opts.MaxHold = 1
	case opts.MaxHold < 0:
		opts.MaxHold = 0
	}
	return &Handler{srv: srv, opts: opts, log: log, sessions: map[string]*session{}}
}

// ServeHTTP answers one request: a CORS preflight, a session creation
// or a request of a session, the last two once their response is due.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	allowed := origin.Request(r, h.opts.AllowedOrigins, h.opts.PublicURL)
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Add("Vary", "Origin")
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", o)
		}
	}
	switch r.Method {
	case http.MethodOptions:
		// The CORS preflight: text/xml bodies are not "simple".
		if allowed {
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.Header().Set("Access-Control-Max-Age", "86400")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "BOSH (XEP-0124) takes POST requests", http.StatusMethodNotAllowed)
		return
	}
	if !allowed {
		h.log.Debug("BOSH request refused: origin not allowed", "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed (http.allowed_origins)", http.StatusForbidden)
		return
	}
	limit := int64(h.opts.MaxStanzaBytes) + framingBytes
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			// The session, whose sid the start of the request
			// names, ends: its client is told so, and c2s sees
			// the connection drop.
			h.log.Debug("BOSH request refused: too large", "limit", limit)
			if s := h.lookup(sidOf(raw)); s != nil {
				s.fail("policy-violation")
			}
			writeBody(w, http.StatusRequestEntityTooLarge, terminal("policy-violation"))
			return
		}
		return // the client went away
	}
	b, err := parseBody(raw)
	if err != nil {
		h.log.Debug("BOSH request refused: bad body", "err", err)
		writeBody(w, http.StatusBadRequest, terminal("bad-request"))
		return
	}
	if b.sid == "" {
		h.create(w, r, b)
		return
	}
	s := h.lookup(b.sid)
	if s == nil {
		// XEP-0124 §17.2. A 200 with a terminal body (not 404): the
		// request does not say whether the client is a legacy one
		// (§17.1), and non-legacy clients read the condition.
		writeBody(w, http.StatusOK, terminal("item-not-found"))
		return
	}
	if b.rid == 0 {
		s.fail("bad-request")
		writeBody(w, s.status(http.StatusBadRequest), terminal("bad-request"))
		return
	}
	rep := s.request(b)
	select {
	case rp := <-rep:
		writeBody(w, rp.status, rp.body)
	case <-r.Context().Done():
		// The response, when it comes, is kept for a retransmission.
	}
}

// create starts a session (XEP-0124 §7.1, XEP-0206 §4).
func (h *Handler) create(w http.ResponseWriter, r *http.Request, b *body) {
	if b.rid == 0 {
		writeBody(w, http.StatusBadRequest, terminal("bad-request"))
		return
	}
	remote, secure := origin.Client(r, h.opts.TrustedProxies)
	// TLS stays nil: the requests of a session may come over different
	// TLS connections, so there is no channel to bind SASL to.
	info := c2s.ConnInfo{Remote: remote, Secure: secure}
	wait := h.opts.MaxWait
	if b.waitSet {
		wait = min(wait, max(b.wait, time.Second))
	}
	hold := h.opts.MaxHold
	if b.holdSet {
		hold = min(hold, b.hold)
	}
	var id [16]byte
	rand.Read(id[:])
	s := &session{
		h:          h,
		sid:        base64.RawURLEncoding.EncodeToString(id[:]),
		wait:       wait,
		hold:       hold,
		requests:   hold + 1,
		inactivity: h.opts.MaxInactivity,
		legacy:     b.ver == "",
		acks:       b.ack == 1,
		last:       b.rid - 1,
		gap:        map[int64]*request{},
		cache:      map[int64]kept{},
		outMax:     4*h.opts.MaxStanzaBytes + framingBytes,
		drained:    make(chan struct{}, 1),
	}
	local := net.Addr(nil)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	s.conn = newConn(s, local, net.TCPAddrFromAddrPort(info.Remote))
	h.mu.Lock()
	h.sessions[s.sid] = s
	h.mu.Unlock()
	if err := h.srv.ServeConn(s.conn, info); err != nil {
		h.remove(s)
		writeBody(w, http.StatusOK, terminal("system-shutdown"))
		return
	}
	h.log.Debug("BOSH session", "sid", s.sid, "wait", wait, "hold", hold, "remote", info.Remote.String())
	rep := s.start(b)
	select {
	case rp := <-rep:
		writeBody(w, rp.status, rp.body)
	case <-r.Context().Done():
	}
}

// lookup returns the session of sid, or nil.
func (h *Handler) lookup(sid string) *session {
	if sid == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[sid]
}

// sidOf returns the sid of the <body/> start tag at the start of raw (a
// request too long to parse), or "".
func sidOf(raw []byte) string {
	i := bytes.Index(raw, []byte("<body"))
	if i < 0 {
		return ""
	}
	n, _ := xmlsplit.TagEnd(raw[i:])
	if n < 0 {
		return ""
	}
	_, attrs := xmlsplit.StartTag(raw[i:i+n], nil)
	for _, a := range attrs {
		if string(a.Name) == "sid" {
			return string(a.Value)
		}
	}
	return ""
}

func (h *Handler) remove(s *session) {
	h.mu.Lock()
	if h.sessions[s.sid] == s {
		delete(h.sessions, s.sid)
	}
	h.mu.Unlock()
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

var _ http.Handler = (*Handler)(nil)
