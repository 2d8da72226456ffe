// Package component accepts external components (XEP-0114, the Jabber
// Component Protocol): programs such as gateways and bots that connect
// over TCP, authenticate with a secret shared with the server, and serve a
// domain of their own. Every stanza the router has for that domain is
// written to the component; every stanza the component sends, which must
// be from its domain, is routed like one from a built-in service.
//
// Register the configured components' domains before the router carries
// stanzas, then Serve a listener; Shutdown ends every stream with
// <system-shutdown/>.
package component

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// NS is the namespace of a component stream and its stanzas.
const NS = "jabber:component:accept"

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("component: server closed")

// Component is one component allowed to connect.
type Component struct {
	Domain string // its domain, normalised
	Secret string // the handshake's shared secret
}

// Options are the service's components and limits.
type Options struct {
	Components []Component
	// MaxStanzaBytes bounds one stanza read from a component; a larger
	// one ends the stream with <policy-violation/>.
	MaxStanzaBytes int
	// SendQueueBytes bounds what waits to be written to one component;
	// past it the stream ends with <resource-constraint/>, so that a
	// component that stops reading never holds up the router.
	SendQueueBytes int
	// HandshakeTimeout bounds the stream header and the handshake.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to a component.
	WriteTimeout time.Duration
}

// Service accepts components on its listeners and routes their domains.
type Service struct {
	router *router.Router
	opts   Options
	log    *slog.Logger
	byName map[string]*domain // fixed after New

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // Serve loops and connections
}

// domain is a configured component's domain; it is the router's handler
// for that domain whether or not the component is connected.
type domain struct {
	s      *Service
	name   string
	secret []byte

	mu   sync.Mutex
	conn *conn // the authenticated connection, or nil
}

// New returns a service for opts' components; limits left 0 get defaults.
func New(r *router.Router, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxStanzaBytes <= 0 {
		opts.MaxStanzaBytes = 256 << 10
	}
	if opts.SendQueueBytes < opts.MaxStanzaBytes {
		opts.SendQueueBytes = max(16<<20, opts.MaxStanzaBytes)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		router: r, opts: opts, log: log, byName: map[string]*domain{},
		ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
	}
	for _, c := range opts.Components {
		s.byName[c.Domain] = &domain{s: s, name: c.Domain, secret: []byte(c.Secret)}
	}
	return s
}

// Register makes each component's domain routed to it and lists it in
// the server's disco#items, as Prosody lists its components.
func (s *Service) Register(reg *router.Registry) {
	for _, c := range s.opts.Components {
		reg.Domain(c.Domain, s.byName[c.Domain])
		reg.Item(router.Item{JID: c.Domain})
	}
}

// Serve accepts components on ln until Shutdown, when it returns
// ErrServerClosed.
func (s *Service) Serve(ln net.Listener) error {
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
			if isTemporary(err) {
				// Out of file descriptors and the like: try again soon
				// rather than stop serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a component failed", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// isTemporary reports whether an accept error is worth retrying (EMFILE
// and the like), as net/http's Serve does.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops the listeners, ends every component's stream with
// <system-shutdown/> and waits for the connections to finish, or ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.close(streamError("system-shutdown", "the server is shutting down"), false)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
	}
	s.cancel()
	return err
}

// HandleStanza writes a stanza for the component's domain to the
// component, or, when it is not connected or cannot keep up, answers it
// as Prosody does: wait/remote-server-timeout, "component unavailable".
// A wait error, not cancel/service-unavailable, because the service
// exists and is expected back (the component restarting, say): the
// sender may try again later; remote-server-timeout names what happened,
// the entity behind the domain could not be reached in time.
func (d *domain) HandleStanza(ctx context.Context, st *router.Stanza) {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c != nil && c.deliver(st.Raw) == nil {
		return
	}
	d.s.log.Debug("component not connected; bouncing", "domain", d.name, "kind", st.Kind.String(), "from", st.From.String())
	if st.Type == "error" || st.Type == "result" {
		return
	}
	reply := router.ErrorReply(st, router.ErrorText(stanza.Wait, stanza.RemoteServerTimeout, "component unavailable"))
	if reply != nil && !reply.To.Equal(jid.JID{}) {
		d.s.router.Route(ctx, reply)
	}
}

// attach makes c the domain's connection unless another holds it.
func (d *domain) attach(c *conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		return false
	}
	d.conn = c
	return true
}

// detach forgets c if it is the domain's connection.
func (d *domain) detach(c *conn) {
	d.mu.Lock()
	if d.conn == c {
		d.conn = nil
	}
	d.mu.Unlock()
}

// verify reports, in constant time, whether digest is the handshake for
// stream id: lowercase hex SHA-1 of the id and the secret (XEP-0114 §3).
func (d *domain) verify(id, digest string) bool {
	h := sha1.New()
	h.Write([]byte(id))
	h.Write(d.secret)
	want := hex.EncodeToString(h.Sum(nil))
	return subtle.ConstantTimeCompare([]byte(want), []byte(digest)) == 1
}

// streamID returns a fresh random stream id: the handshake's salt.
func streamID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
