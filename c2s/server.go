package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xdg-go/scram"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/internal/proxyproto"
	"xmppd.dev/xmppd/internal/ratelimit"
	"xmppd.dev/xmppd/router"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("c2s: server closed")

// Limits bound what one client may cost the server. Each has a key in the
// [c2s] section of the configuration.
type Limits struct {
	MaxStanzaBytes   int           // a larger stanza ends the stream with policy-violation
	MaxDepth         int           // element nesting inside a stanza
	SendQueueStanzas int           // queued stanzas before the session is a slow consumer
	SendQueueBytes   int           // queued bytes before the session is a slow consumer
	WriteTimeout     time.Duration // one flush may take this long
	HandshakeTimeout time.Duration // TLS, SASL and bind must finish within it
	PingInterval     time.Duration // silence before the server pings; 0 disables
	PingTimeout      time.Duration // silence after the ping before the session is closed
	ReadRate         int           // bytes per second a session may send; 0 = no limit
	ParkAfter        time.Duration // silence after which a session gives back its read goroutine; 0 = never

	// Connections, answered past their bound with <policy-violation/>;
	// 0 sets no bound. Addresses are counted per IPv4 address and per
	// IPv6 /64, after the PROXY protocol header where there is one.
	MaxConnections           int     // open at once, all addresses
	MaxConnectionsPerAddress int     // open at once from one address
	ConnectionRate           float64 // new connections per second from one address
	ConnectionBurst          int     // new connections at once from one address before ConnectionRate applies
	MaxResources             int     // sessions bound to one account; past it a bind gets <resource-constraint/>

	// MaxUnacked bounds the stanzas a stream-managed session holds until
	// the client acknowledges them (bytes: SendQueueBytes); past it the
	// session is closed and they are settled as undelivered.
	MaxUnacked int
	// ResumeTimeout is how long a stream-managed session whose connection
	// was lost waits for the client to resume it (XEP-0198 §5); 0 offers
	// no resumption.
	ResumeTimeout time.Duration
}

// DefaultLimits are the limits used when a field is zero.
var DefaultLimits = Limits{
	MaxStanzaBytes:   256 << 10,
	MaxDepth:         64,
	SendQueueStanzas: 1000,
	SendQueueBytes:   8 << 20,
	MaxUnacked:       1000,
	WriteTimeout:     30 * time.Second,
	HandshakeTimeout: 30 * time.Second,
	PingTimeout:      60 * time.Second,
}

// Server accepts client connections (RFC 6120 c2s), negotiates TLS, SASL
// and resource binding itself (negotiation.go), and runs each bound
// session's read loop and writer. It is a value: several can run in one
// process.
type Server struct {
	Router     *router.Router
	Store      CredentialStore
	TLS        *tls.Config // certificate for STARTTLS and direct TLS
	RequireTLS bool        // STARTTLS is required before SASL; false also offers SCRAM (not PLAIN) without TLS
	Limits     Limits
	Auth       AuthLimits
	Log        *slog.Logger
	// Features are informational stream features listed after
	// authentication for what features support (roster versioning,
	// pre-approval: XEP-0237, RFC 6121 §3.4).
	Features []xml.Name
	// Caps is the server's XEP-0115 caps element (<c hash node ver/>),
	// serialised, listed with Features (§6.3); nil for none.
	Caps []byte
	// SCRAMIterations is the iteration count of new accounts; unknown
	// users are shown the same so that they look like real ones.
	SCRAMIterations int
	// LegacySCRAM, when set, is asked at each SASL offer; true withholds
	// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, so that clients, which pick
	// the strongest mechanism offered, use SCRAM-SHA-1: accounts imported
	// with SCRAM-SHA-1 keys only can log in then.
	LegacySCRAM func() bool

	// ProxyNetworks are the proxies that put a PROXY protocol header (v1
	// or v2) in front of their connections; nil turns the PROXY protocol
	// off. A connection from them must start with one; one from anywhere
	// else must not.
	ProxyNetworks []netip.Prefix

	// AllowInsecureAuth offers SCRAM without TLS; for tests only.
	AllowInsecureAuth bool

	once      sync.Once
	directTLS *tls.Config          // TLS with the XEP-0368 ALPN protocol
	endPoint  scram.ChannelBinding // of the served certificate; zero: not offered
	throttle  *authThrottle        // nil: no throttling
	conns     *connLimits          // nil: no limits per address
	storeLog  *burstlog.Logger     // the account store's failures, once per burst
	logins    *loginMemory         // nil: no logins remembered
	fakeKey   []byte
	baseCtx   context.Context
	cancelCtx context.CancelFunc
	lot       *parkingLot // nil: sessions do not park
	workers   *workers
	jids      jidCache // parsed to addresses, shared by the read loops

	mu        sync.Mutex
	closed    bool                      // guarded by mu
	listeners map[net.Listener]struct{} // guarded by mu
	pending   map[net.Conn]struct{}     // negotiating connections; guarded by mu
	sessions  map[*Session]struct{}     // guarded by mu
	resumable map[string]*Session       // by stream management id; guarded by mu
	wg        sync.WaitGroup            // every connection goroutine
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		d := DefaultLimits
		l := &s.Limits
		for _, f := range []struct {
			v *int
			d int
		}{{&l.MaxStanzaBytes, d.MaxStanzaBytes}, {&l.MaxDepth, d.MaxDepth}, {&l.SendQueueStanzas, d.SendQueueStanzas}, {&l.SendQueueBytes, d.SendQueueBytes}, {&l.MaxUnacked, d.MaxUnacked}} {
			if *f.v <= 0 {
				*f.v = f.d
			}
		}
		for _, f := range []struct {
			v *time.Duration
			d time.Duration
		}{{&l.WriteTimeout, d.WriteTimeout}, {&l.HandshakeTimeout, d.HandshakeTimeout}, {&l.PingTimeout, d.PingTimeout}} {
			if *f.v <= 0 {
				*f.v = f.d
			}
		}
		if s.Auth.MaxFailures > 0 && s.Auth.Logins != nil && s.Auth.RememberLogins > 0 {
			s.logins = newLoginMemory(s.Auth.Logins, s.Auth.RememberLogins, s.Log)
		}
		s.throttle = newAuthThrottle(s.Auth, s.logins, time.Now)
		s.conns = newConnLimits(s.Limits, time.Now)
		s.storeLog = burstlog.New(s.Log, "c2s: account store failed during SASL", time.Minute)
		if s.TLS != nil {
			// The end-point binding hashes the certificate only, so it
			// is derived once, here, with the certificate it stands for:
			// xmppd does not reload certificates.
			if len(s.TLS.Certificates) == 1 {
				c := s.TLS.Certificates[0]
				leaf := c.Leaf
				if leaf == nil && len(c.Certificate) > 0 {
					leaf, _ = x509.ParseCertificate(c.Certificate[0])
				}
				s.endPoint = endPointBinding(leaf)
			}
			s.directTLS = s.TLS.Clone()
			s.directTLS.NextProtos = []string{"xmpp-client"}
		}
		s.fakeKey = make([]byte, 32)
		rand.Read(s.fakeKey)
		s.baseCtx, s.cancelCtx = context.WithCancel(context.Background())
		s.workers = newWorkers()
		if l.ParkAfter > 0 {
			if p, err := newPoller(s.Log); err != nil {
				s.Log.Warn("idle sessions will keep their goroutines", "err", err)
			} else {
				s.lot = newParkingLot(p)
			}
		}
		s.listeners = map[net.Listener]struct{}{}
		s.pending = map[net.Conn]struct{}{}
		s.sessions = map[*Session]struct{}{}
		s.resumable = map[string]*Session{}
	})
}

// Serve accepts connections on ln that start in plaintext and upgrade with
// STARTTLS. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts connections on ln that start with TLS (XEP-0368).
func (s *Server) ServeTLS(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, direct bool) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || temporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("c2s: accept: %w", err)
		}
		backoff = 0
		conn = newSockConn(conn)
		if !s.track(conn) {
			conn.Close()
			return ErrServerClosed
		}
		go s.handle(conn, direct, nil)
	}
}

// ConnInfo describes a connection that another transport accepted and
// hands to ServeConn (a WebSocket: package websocket).
type ConnInfo struct {
	// Remote is the client's address, for the connection limits and the
	// logs; the PROXY protocol is not read.
	Remote netip.AddrPort
	// Secure: the client's connection is encrypted, by xmppd (TLS) or by
	// a trusted proxy in front of it. STARTTLS is never offered on these
	// connections; without Secure, SASL follows RequireTLS as on a TCP
	// stream that did not negotiate TLS.
	Secure bool
	// TLS is the state of the TLS connection xmppd terminated itself, for
	// channel binding (SCRAM-*-PLUS); nil when TLS ended at a proxy.
	TLS *tls.ConnectionState
}

// SocketListener wraps ln so that the TCP connections it accepts read and
// write as c2s's own do, in system calls that do not enter the scheduler
// (sockConn, on Linux): for listeners whose connections may become c2s
// sessions, such as the HTTP listeners that carry WebSockets. They stay
// syscall.Conn, so sessions on them can park.
func SocketListener(ln net.Listener) net.Listener { return sockListener{ln} }

type sockListener struct{ net.Listener }

func (l sockListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newSockConn(c), nil
}

// ParkableConn is a connection handed to ServeConn whose session may park
// like a TCP client's when it falls silent (see park.go): its own framing
// sits on a socket it names, and it tells when it holds bytes read from
// that socket that Read has not returned yet. A session parks only at a
// stanza boundary, after a read through conn timed out, with nothing
// buffered in conn; the poller then watches the socket, and the session
// wakes to read through conn again when the socket becomes readable, for
// whatever the client sent (control frames included).
type ParkableConn interface {
	net.Conn
	syscall.Conn // the socket under conn's framing and TLS
	// Buffered reports whether conn holds bytes read from the socket that
	// Read has not returned yet (or the start of a frame); the session
	// does not park then. Called by the goroutine that reads conn.
	Buffered() bool
}

// ServeConn negotiates and serves one client connection accepted
// elsewhere, such as a WebSocket adapted to the c2s byte stream: the same
// negotiation, limits, session and stream management as a TCP client.
// Its session parks when conn is a ParkableConn (or a socket itself), and
// never otherwise. It returns at once;
// the connection is the server's from then on, and it returns
// ErrServerClosed (closing conn) after Shutdown.
func (s *Server) ServeConn(conn net.Conn, info ConnInfo) error {
	s.init()
	if !s.track(conn) {
		conn.Close()
		return ErrServerClosed
	}
	go s.handle(conn, false, &info)
	return nil
}

// temporary reports accept errors worth retrying (out of file
// descriptors and the like).
func temporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.pending[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// handle negotiates one connection and, once bound, starts its session.
// ext is nil for a connection from one of the server's listeners.
func (s *Server) handle(conn net.Conn, direct bool, ext *ConnInfo) {
	started := false
	limitKey := "" // the address admitted by s.conns, to release
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic in connection", "remote", conn.RemoteAddr().String(), "panic", p, "stack", string(debug.Stack()))
			conn.Close()
		}
		s.mu.Lock()
		delete(s.pending, conn)
		s.mu.Unlock()
		if !started {
			if limitKey != "" {
				s.conns.release(limitKey)
			}
			s.wg.Done()
		}
	}()
	// The handshake deadline: it fails whatever read is under way, and
	// stays set until negotiation is over.
	var timedOut atomic.Bool
	deadline := time.AfterFunc(s.Limits.HandshakeTimeout, func() {
		timedOut.Store(true)
		conn.SetReadDeadline(time.Unix(1, 0))
	})
	var remote netip.AddrPort
	var err error
	if ext != nil {
		remote = ext.Remote
	} else {
		remote, err = s.clientAddr(conn)
	}
	if err != nil {
		deadline.Stop()
		s.Log.Warn("connection refused: PROXY protocol", "peer", conn.RemoteAddr().String(), "err", err)
		if !direct && errors.Is(err, errUntrustedProxy) {
			e := withText(stream.PolicyViolation, "a PROXY protocol header is not accepted from your address")
			s.refuse(conn, false, &e)
		} else {
			conn.Close()
		}
		return
	}
	log := s.Log.With("remote", remote.String())
	if err := s.admit(remote.Addr(), &limitKey); err != nil {
		deadline.Stop()
		log.Warn("connection refused", "reason", err.Text[0].Value)
		s.refuse(conn, direct, err)
		return
	}
	// The context bounds what SASL waits for (the account store, the
	// throttle's delay); the timer above bounds the reads.
	ctx, cancel := context.WithTimeout(s.baseCtx, s.Limits.HandshakeTimeout+5*time.Second)
	defer cancel()

	max := int64(s.Limits.MaxStanzaBytes)
	raw := conn
	if direct {
		tc := tls.Server(conn, s.directTLS)
		// Handshake, not HandshakeContext: a context that can end costs
		// a goroutine per handshake, and the deadline above and Shutdown
		// (which closes pending connections) already bound it.
		if err := tc.Handshake(); err != nil {
			deadline.Stop()
			log.Debug("TLS handshake failed", "err", err)
			conn.Close()
			return
		}
		raw = tc
	}
	g := newGuardConn(raw, max)
	// The session exists before negotiation ends so that binding puts it
	// in the router at once: the router's order of binds then matches the
	// order clients learn of them, and a conflicting older session is
	// replaced before the new one hears it is bound. Stanzas routed to it
	// wait in its queue until the writer starts after negotiation.
	sess := &Session{
		srv:        s,
		peer:       net.TCPAddrFromAddrPort(remote),
		limitKey:   limitKey,
		writerDone: make(chan struct{}),
	}
	bound := func(j jid.JID) error {
		sess.jid = j
		// From here on Shutdown treats the connection as a session (it
		// ends it with system-shutdown once its writer runs).
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.sessions[sess] = struct{}{}
			delete(s.pending, conn)
		}
		s.mu.Unlock()
		if closed {
			return withText(stream.SystemShutdown, "the server is shutting down")
		}
		old, err := s.Router.BindAtMost(s.baseCtx, sess, s.Limits.MaxResources)
		if errors.Is(err, router.ErrTooManyResources) {
			s.mu.Lock()
			delete(s.sessions, sess)
			if !s.closed {
				s.pending[conn] = struct{}{}
			}
			s.mu.Unlock()
			log.Info("bind refused: too many resources", "user", j.Bare().String(), "max", s.Limits.MaxResources)
			return &bindRefusal{typ: "wait", cond: "resource-constraint",
				text: "this account has " + strconv.Itoa(s.Limits.MaxResources) + " sessions already; close one first"}
		}
		if old != nil {
			old.Close(withText(stream.Conflict, "replaced by a new connection with the same resource"))
		}
		return nil
	}
	domain := s.Router.Domain()
	n := &negotiation{
		srv:      s,
		raw:      conn,
		g:        g,
		domain:   domain,
		secure:   direct || ext != nil && ext.Secure,
		offerTLS: !direct && ext == nil && s.TLS != nil,
		bound:    bound,
		sasl: saslConfig{
			Domain:         domain,
			Store:          s.Store,
			Throttle:       s.throttle,
			RemoteIP:       remote.Addr().String(),
			StoreLog:       s.storeLog,
			AllowInsecure:  s.AllowInsecureAuth || !s.RequireTLS,
			Log:            log,
			FakeSaltKey:    s.fakeKey,
			EndPoint:       s.endPoint,
			FakeIterations: s.SCRAMIterations,
			LegacySCRAM:    s.LegacySCRAM,
		},
	}
	if direct {
		n.tlsState = raw.(*tls.Conn).ConnectionState()
	} else if ext != nil && ext.Secure && ext.TLS != nil {
		n.tlsState = *ext.TLS
	}
	err = n.run(ctx)
	if !deadline.Stop() && err == nil {
		err = withText(stream.ConnectionTimeout, "negotiation took too long")
	}
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		if timedOut.Load() {
			err = withText(stream.ConnectionTimeout, "negotiation took too long")
		}
		if n.full.Localpart() != "" {
			s.Router.Unbind(s.baseCtx, sess)
			sess.closeWith(CloseReadError, nil, true)
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}
		s.negotiationFailed(log, n, err)
		return
	}
	cur := n.g
	cur.Reset()
	// The session reads with its own parser from here on (readLoop).
	// Nothing is lost: the negotiation's decoder read through the guard's
	// ReadByte and no byte beyond the end of the bind IQ (or the resume
	// element), so whatever the client sent after it is in the guard's
	// buffer.
	s.keepalive(cur, sess)
	if old := n.resumed; old != nil {
		// This connection now carries an older session (XEP-0198
		// resumption): it takes the connection and its limit slot; this
		// goroutine's WaitGroup slot ends here, the session has its own.
		old.attach(cur, net.TCPAddrFromAddrPort(remote), limitKey)
		limitKey = ""
		cur.onIdle = old.ping
		go old.serveResumed()
		return
	}
	sess.mu.Lock()
	sess.conn = cur
	sess.mu.Unlock()
	started = true // the session's goroutine now owns the WaitGroup slot and limitKey
	// A fresh goroutine keeps the handshake's grown stack out of the
	// long-lived read loop.
	go sess.run()
}

// keepalive sets the keepalive and read rate of a connection carrying
// sess.
func (s *Server) keepalive(g *guardConn, sess *Session) {
	if s.Limits.PingInterval > 0 {
		g.idle, g.pingTimeout, g.onIdle = s.Limits.PingInterval, s.Limits.PingTimeout, sess.ping
	}
	if s.Limits.ReadRate > 0 {
		g.shape = ratelimit.New(s.Limits.ReadRate, 2*s.Limits.MaxStanzaBytes)
	}
}

// run starts a bound session: its writer and its read loop.
func (sess *Session) run() {
	sess.addr = newAddrCache(sess.jid, &sess.srv.jids)
	sess.sock = newSendRoom(sess.conn.Conn)
	sess.start()
	sess.debug("session bound")
	sess.serve(nil)
}

// wake goes on with the read loop of a session that was parked.
func (sess *Session) wake() { sess.serve(nil) }

// idleOut ends a parked session whose client did not answer the keepalive.
func (sess *Session) idleOut() { sess.serve(errIdle) }

// serve runs the read loop until the session ends or parks, and cleans up
// after a session that ended.
func (sess *Session) serve(why error) {
	s := sess.srv
	ctx := s.baseCtx
	// keep: the session lives on without this goroutine (parked, or
	// detached waiting for a resumption).
	keep := false
	defer func() {
		if p := recover(); p != nil {
			sess.logger().Error("panic in session", "panic", p, "stack", string(debug.Stack()))
			sess.closeWith(CloseStreamError, streamError(stream.InternalServerError, ""), false)
			keep = false
		}
		if !keep {
			sess.finish()
		}
	}()
	if why != nil {
		keep = sess.readFailed(why)
		return
	}
	keep = sess.readLoop(ctx)
}

// finish waits for the writer of an ended session and lets it go.
func (sess *Session) finish() {
	sess.srv.Router.Unbind(sess.srv.baseCtx, sess)
	<-sess.writerDone
	sess.end()
}

// end lets a session go once nothing writes to it any more: what the
// client did not acknowledge is settled, and the session leaves the
// router and the server, giving back its WaitGroup slot. It runs once.
func (sess *Session) end() {
	s := sess.srv
	sess.mu.Lock()
	if sess.ended {
		sess.mu.Unlock()
		return
	}
	sess.ended = true
	reason := sess.reason
	var held []outItem
	if c := sess.csi; c != nil {
		held, sess.csi = c.take(), nil
	}
	unacked := sess.takeUnackedLocked()
	limitKey := sess.limitKey
	var id string
	if sess.sm != nil {
		id = sess.sm.id
	}
	sess.mu.Unlock()
	defer s.wg.Done()
	if limitKey != "" {
		defer s.conns.release(limitKey)
	}
	s.Router.Unbind(s.baseCtx, sess)
	// What the client did not acknowledge may not have reached it: its
	// messages go to offline storage, offline's own deliveries stay
	// stored (a duplicate is better than a loss).
	s.notWritten(unacked)
	s.notWritten(held)
	sess.debug("session ended", "reason", reason.String())
	s.mu.Lock()
	delete(s.sessions, sess)
	if id != "" {
		delete(s.resumable, id)
	}
	s.mu.Unlock()
}

// errUntrustedProxy refuses a PROXY protocol header from a peer that may
// not send one.
var errUntrustedProxy = errors.New("c2s: PROXY protocol header from an address not in c2s.proxy_networks")

// clientAddr returns the client's address: the connection's, or with the
// PROXY protocol the one its header gives. A trusted proxy must send a
// header; anyone else must not.
func (s *Server) clientAddr(conn net.Conn) (netip.AddrPort, error) {
	peer := addrPortOf(conn.RemoteAddr())
	if s.ProxyNetworks == nil {
		return peer, nil
	}
	for _, p := range s.ProxyNetworks {
		if p.Contains(peer.Addr()) {
			h, err := proxyproto.Read(conn)
			if err != nil {
				return peer, err
			}
			if h.Source.IsValid() {
				return netip.AddrPortFrom(h.Source.Addr().Unmap(), h.Source.Port()), nil
			}
			return peer, nil // the proxy's own connection (a health check)
		}
	}
	// XMPP clients speak first, with '<' or a TLS record; a header
	// starts otherwise.
	if b, ok, err := peekByte(conn); ok && err == nil && proxyproto.MayStart(b) {
		return peer, errUntrustedProxy
	}
	return peer, nil
}

// addrPortOf returns a TCP address as a netip.AddrPort, IPv4-mapped IPv6
// as IPv4.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// admit applies the connection limits to a new connection from addr. It
// records in *key the address that release must be given once the
// connection ends; it returns the stream error of a refusal, with a text.
func (s *Server) admit(addr netip.Addr, key *string) *stream.Error {
	if m := s.Limits.MaxConnections; m > 0 {
		s.mu.Lock()
		n := len(s.pending) + len(s.sessions) // this connection included
		s.mu.Unlock()
		if n > m {
			e := withText(stream.PolicyViolation, "the server has as many connections as it takes; try again later")
			return &e
		}
	}
	if s.conns == nil {
		return nil
	}
	k := addrKey(addr)
	if e := s.conns.admit(k); e != nil {
		return e
	}
	*key = k
	return nil
}

// refuse answers a connection that is not served with a stream header and
// the stream error se (after the TLS handshake on a direct TLS listener,
// bounded by a deadline of its own), and closes it.
func (s *Server) refuse(conn net.Conn, direct bool, se *stream.Error) {
	c := conn
	if direct {
		tc := tls.Server(conn, s.directTLS)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return
		}
		c = tc
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(append(streamHeader(s.Router.Domain().String()), streamErrorFrom(*se)...))
	lingerClose(c)
}

// negotiationFailed sends the stream error that matches err (a header
// first when none was sent) and closes the connection.
func (s *Server) negotiationFailed(log *slog.Logger, n *negotiation, err error) {
	g := n.g
	var final []byte
	var se stream.Error
	switch {
	case errors.Is(err, errStreamEnd):
		log.Debug("client closed the stream during negotiation")
		final = closeTag
	case errors.Is(err, errPeerStreamError):
		log.Debug("client sent a stream error during negotiation")
		final = closeTag
	case errors.As(err, &se):
		final = streamErrorFrom(se)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errIdle):
		final = streamError(stream.ConnectionTimeout, "negotiation took too long")
	default:
		var reason CloseReason
		reason, final = classifyReadError(err, s.Limits.MaxStanzaBytes)
		if reason == CloseReadError || reason == CloseClient {
			log.Debug("connection ended during negotiation", "err", err)
			g.Close()
			return
		}
	}
	log.Debug("negotiation failed", "err", err)
	if !n.headerSent {
		final = append(streamHeader(s.Router.Domain().String()), final...)
	}
	g.SetWriteDeadline(time.Now().Add(5 * time.Second))
	g.Write(final)
	lingerClose(g)
}

// lingerClose half-closes a connection and waits briefly for the peer to
// close, so that the last bytes are read rather than reset.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else if g, ok := c.(*guardConn); ok {
		if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	c.Close()
}

// notWritten settles queued stanzas that will not be written: a
// DeliverThen owner is told, and messages are handed to the router's
// undeliverable path (offline storage).
func (s *Server) notWritten(items []outItem) {
	for _, it := range items {
		if it.done != nil {
			it.done(false)
			continue
		}
		b := it.b
		if len(b) < 8 || string(b[:8]) != "<message" {
			continue
		}
		st, err := router.Parse(b)
		if err != nil {
			continue
		}
		s.Router.Undeliverable(s.baseCtx, st)
	}
}

// Shutdown stops accepting, ends every stream with <system-shutdown/>,
// and waits for the sessions' writers to flush and their goroutines to
// end, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	pending := make([]net.Conn, 0, len(s.pending))
	for c := range s.pending {
		pending = append(pending, c)
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, c := range pending {
		c.Close()
	}
	for _, sess := range sessions {
		sess.Close(withText(stream.SystemShutdown, "the server is shutting down"))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancelCtx()
		if s.lot != nil {
			s.lot.close()
		}
		if s.logins != nil {
			s.logins.stop(ctx)
		}
		return nil
	case <-ctx.Done():
		s.cancelCtx()
		for _, sess := range sessions {
			sess.mu.Lock()
			open := sess.conn != nil
			sess.mu.Unlock()
			if open {
				sess.closeConn()
			}
		}
		if s.lot != nil {
			s.lot.close()
		}
		if s.logins != nil {
			s.logins.stop(ctx)
		}
		return ctx.Err()
	}
}
