package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("s2s: server closed")

// Options configure federation; zero limits get defaults.
type Options struct {
	// TLS holds the server's certificate, presented on every stream
	// both ways; nil means no TLS at all (tests of insecure peers).
	TLS *tls.Config
	// Roots are the trusted roots for peers' certificates: the system's
	// plus [s2s] ca_file.
	Roots *x509.CertPool
	// RequireTLS refuses streams without TLS, except with
	// InsecureDomains.
	RequireTLS bool
	// Dialback accepts and uses dialback (XEP-0220) with peers whose
	// certificate does not verify; without it only SASL EXTERNAL
	// authenticates a peer (InsecureDomains always may use dialback).
	Dialback bool
	// InsecureDomains may federate without TLS or a valid certificate.
	InsecureDomains []string
	// Allow, when not empty, are the only peers; Deny are never peers.
	Allow, Deny []string
	// Routes are peer domains' addresses (host:port), bypassing DNS.
	Routes map[string]string
	// Resolver looks up SRV records; nil: net.DefaultResolver.
	Resolver Resolver
	// Secret keys dialback (XEP-0185); it must survive restarts.
	Secret []byte

	ConnectTimeout time.Duration // setting up an outgoing stream
	IdleTimeout    time.Duration // a stream nothing crossed
	RetryDelay     time.Duration // before the one retry of messages with a body
	WriteTimeout   time.Duration // each write
	QueueStanzas   int           // waiting for one peer's stream
	MaxStanzaBytes int           // one stanza read from a peer
	ReadRate       int           // bytes per second per connection; 0: none
}

// pair is a domain pair (RFC 6120 §13.7.1.3 "domain pair"): one of this
// server's domains and a peer's. Each has its own outgoing stream.
type pair struct{ local, remote string }

// Service is federation: the router's remote route, the listeners for
// peers' streams and the streams it opens to them.
type Service struct {
	router *router.Router
	opts   Options
	log    *slog.Logger

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	outs      map[pair]*out
	ins       map[*in]struct{}
	wg        sync.WaitGroup
}

// New returns the service; register it with Register before stanzas flow.
func New(r *router.Router, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.QueueStanzas <= 0 {
		opts.QueueStanzas = 1000
	}
	if opts.MaxStanzaBytes <= 0 {
		opts.MaxStanzaBytes = 256 << 10
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Roots == nil {
		opts.Roots = x509.NewCertPool()
	}
	if len(opts.Secret) == 0 {
		opts.Secret = make([]byte, 32)
		rand.Read(opts.Secret)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		router: r, opts: opts, log: log, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, outs: map[pair]*out{}, ins: map[*in]struct{}{},
	}
}

// Register makes the service the router's remote route.
func (s *Service) Register(reg *router.Registry) { reg.Remote(s) }

// insecure reports whether domain may federate without TLS or a valid
// certificate.
func (s *Service) insecure(domain string) bool {
	return slices.Contains(s.opts.InsecureDomains, domain)
}

// allowed reports whether federation with domain is allowed.
func (s *Service) allowed(domain string) bool {
	if slices.Contains(s.opts.Deny, domain) {
		return false
	}
	return len(s.opts.Allow) == 0 || slices.Contains(s.opts.Allow, domain)
}

// mustTLS reports whether a stream with domain needs TLS.
func (s *Service) mustTLS(domain string) bool { return s.opts.RequireTLS && !s.insecure(domain) }

// Route takes a stanza for another domain (router.Remote): it is queued
// for the stream of its domain pair, set up if need be, and goes out in
// order. When it cannot be delivered the sender is answered (bounce).
func (s *Service) Route(ctx context.Context, st *router.Stanza) {
	p := pair{local: st.From.Domainpart(), remote: st.To.Domainpart()}
	if !s.router.Serves(p.local) {
		// Never relay between two other servers.
		s.log.Debug("dropping a stanza between two remote domains", "from", st.From, "to", st.To)
		return
	}
	if !s.allowed(p.remote) {
		s.bounce(ctx, st, stanza.RemoteServerNotFound, "federation with "+p.remote+" is not allowed here")
		return
	}
	for {
		o := s.outFor(p)
		if o == nil {
			s.bounce(ctx, st, stanza.RemoteServerTimeout, "the server is shutting down")
			return
		}
		switch o.enqueue(st) {
		case nil:
			return
		case errFull:
			s.bounce(ctx, st, stanza.ResourceConstraint, "too many stanzas are waiting for "+p.remote)
			return
		}
		s.dropOut(p, o) // closed just now: a new stream
	}
}

// outFor returns the outgoing stream of p, starting one; nil after
// Shutdown.
func (s *Service) outFor(p pair) *out {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	o := s.outs[p]
	if o == nil {
		o = newOut(s, p)
		s.outs[p] = o
		s.wg.Add(1)
		go o.run()
	}
	return o
}

// dropOut forgets o if it is still p's stream.
func (s *Service) dropOut(p pair, o *out) {
	s.mu.Lock()
	if s.outs[p] == o {
		delete(s.outs, p)
	}
	s.mu.Unlock()
}

// bounce answers a stanza that could not be delivered (RFC 6120 §8.3):
// never an error or an IQ result. Of presence, subscription requests and
// answers, and available presence from a full JID to a full JID (a room
// join: XEP-0045 §7.2 has the client wait for the room's answer), whose
// senders wait;
// broadcast presence (to bare JIDs) and probes to an unreachable server
// are dropped, as a contact that is offline would be (RFC 6121 §4.3.2
// allows no answer).
func (s *Service) bounce(ctx context.Context, st *router.Stanza, cond stanza.Condition, text string) {
	if st.Type == "error" || st.Kind == router.KindIQ && st.Type == "result" {
		return
	}
	if st.Kind == router.KindPresence {
		switch {
		case st.Type == "subscribe", st.Type == "subscribed", st.Type == "unsubscribe", st.Type == "unsubscribed":
		case st.Type == "" && st.To.Resourcepart() != "" && st.From.Resourcepart() != "":
			// From a client or a room occupant; a probe's answer comes
			// from a bare JID, and its sender waits for nothing.
		default:
			return
		}
	}
	typ := stanza.Cancel
	if cond == stanza.RemoteServerTimeout || cond == stanza.ResourceConstraint {
		typ = stanza.Wait
	}
	reply := router.ErrorReply(st, router.ErrorText(typ, cond, text))
	if reply == nil || !s.router.Serves(reply.To.Domainpart()) {
		return
	}
	s.router.Route(ctx, reply)
}

// Serve accepts peers' streams on ln (STARTTLS) until Shutdown.
func (s *Service) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts peers' direct TLS streams (XEP-0368) on ln.
func (s *Service) ServeTLS(ln net.Listener) error { return s.serve(ln, true) }

func (s *Service) serve(ln net.Listener, direct bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a server connection failed", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newIn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.ins[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve(direct)
			s.mu.Lock()
			delete(s.ins, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops the listeners, ends incoming streams with
// <system-shutdown/>, writes what is queued on outgoing streams and closes
// them, and waits for it all, or ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.ins {
		c.shutdown()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.ins {
			c.conn().Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Peers describes the streams up: outgoing ones as "local -> remote
// auth", incoming ones as "remote -> local auth", auth being external
// or dialback (for tests and an admin's look).
func (s *Service) Peers() (out, in []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.outs {
		if auth := o.upWith(); auth != "" {
			out = append(out, p.local+" -> "+p.remote+" "+auth)
		}
	}
	for c := range s.ins {
		c.mu.Lock()
		to := c.to
		c.mu.Unlock()
		for _, d := range c.authedDomains() {
			in = append(in, d+" -> "+to+" "+c.authMethod(d))
		}
	}
	slices.Sort(out)
	slices.Sort(in)
	return out, in
}

// streamID returns a fresh random stream id.
func streamID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
