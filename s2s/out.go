package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

var (
	errFull   = errors.New("s2s: queue full")
	errClosed = errors.New("s2s: stream closed")
)

// out is the outgoing stream of one domain pair. Stanzas queue while it is
// set up and go out in order; its goroutine (run) owns the connection.
type out struct {
	s    *Service
	p    pair
	log  *slog.Logger
	wake chan struct{}

	mu     sync.Mutex
	queue  []*router.Stanza
	closed bool // no more stanzas: a new out takes them
	up     bool // authenticated and writing
	auth   string
}

func newOut(s *Service, p pair) *out {
	return &out{s: s, p: p, log: s.log.With("local", p.local, "remote", p.remote, "dir", "out"), wake: make(chan struct{}, 1)}
}

func (o *out) enqueue(st *router.Stanza) error {
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return errClosed
	case len(o.queue) >= o.s.opts.QueueStanzas:
		o.mu.Unlock()
		return errFull
	}
	o.queue = append(o.queue, st)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// upWith returns how the stream authenticated, "" while it is not up.
func (o *out) upWith() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.up || o.closed {
		return ""
	}
	return o.auth
}

func (o *out) take() []*router.Stanza {
	o.mu.Lock()
	q := o.queue
	o.queue = nil
	o.mu.Unlock()
	return q
}

// closeIfEmpty ends the out when nothing waits; it reports whether it did.
func (o *out) closeIfEmpty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 {
		return false
	}
	o.closed, o.up = true, false
	return true
}

// run sets up the stream, writes what is queued until the stream is idle,
// lost or the service shuts down, and sets it up again while stanzas wait.
// When it cannot be set up, the waiting stanzas are bounced; messages
// with a body first wait RetryDelay for one more attempt.
func (o *out) run() {
	defer o.s.wg.Done()
	defer o.s.dropOut(o.p, o)
	retried := false
	for {
		ctx, cancel := context.WithTimeout(o.s.ctx, o.s.opts.ConnectTimeout)
		w, err := o.s.connect(ctx, o.p)
		cancel()
		if err != nil {
			cond, text := failure(err)
			if o.s.ctx.Err() != nil {
				cond, text = stanza.RemoteServerTimeout, "the server is shutting down"
			}
			o.log.Info("no stream to the peer", "err", err)
			keep := !retried && o.s.opts.RetryDelay > 0 && o.s.ctx.Err() == nil
			if !o.fail(cond, text, keep) {
				return
			}
			retried = true
			select {
			case <-time.After(o.s.opts.RetryDelay):
			case <-o.s.ctx.Done():
			}
			continue
		}
		retried = false
		o.log.Info("stream to the peer is up", "auth", w.auth, "tls", w.tls)
		o.mu.Lock()
		o.up, o.auth = true, w.auth
		o.mu.Unlock()
		if err := o.serve(w); err == nil {
			return
		}
		o.mu.Lock()
		o.up = false
		o.mu.Unlock()
		if o.closeIfEmpty() {
			return
		}
	}
}

// failure maps why a stream could not be set up to the condition the
// senders get.
func failure(err error) (stanza.Condition, string) {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return stanza.RemoteServerTimeout, "the remote server did not answer in time"
	}
	return stanza.RemoteServerNotFound, "the remote server could not be reached or authenticated"
}

// fail bounces what waits, keeping messages with a body when keep is set;
// it reports whether any were kept (the out lives on), else it closes.
func (o *out) fail(cond stanza.Condition, text string, keep bool) bool {
	o.mu.Lock()
	var bounce, kept []*router.Stanza
	for _, st := range o.queue {
		if keep && st.Kind == router.KindMessage && hasBody(st) {
			kept = append(kept, st)
		} else {
			bounce = append(bounce, st)
		}
	}
	o.queue = kept
	if len(kept) == 0 {
		o.closed = true
	}
	o.mu.Unlock()
	for _, st := range bounce {
		o.s.bounce(o.s.ctx, st, cond, text)
	}
	return len(kept) > 0
}

func hasBody(st *router.Stanza) bool {
	d := st.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "body" {
				return true
			}
		case xml.EndElement:
			depth--
		}
	}
}

// serve writes queued stanzas until the stream ends: nil when the out is
// finished (idle, shut down), an error when the stream was lost (what was
// being written is bounced; what waits goes on a new stream).
func (o *out) serve(w *wire) error {
	dead := make(chan error, 1)
	go func() {
		for {
			t, err := w.r.next()
			if err == nil {
				_, err = w.r.element(t) // nothing is expected here
			}
			if err != nil {
				dead <- err
				return
			}
		}
	}()
	defer func() {
		w.nc.Close()
		<-dead
	}()
	idle := time.NewTimer(o.s.opts.IdleTimeout)
	defer idle.Stop()
	// What waited while the stream was set up goes out first.
	select {
	case o.wake <- struct{}{}:
	default:
	}
	buf := make([]byte, 0, 4096)
	write := func(b []byte) error {
		w.nc.SetWriteDeadline(time.Now().Add(o.s.opts.WriteTimeout))
		_, err := w.nc.Write(b)
		return err
	}
	for {
		select {
		case <-o.wake:
			batch := o.take()
			if len(batch) == 0 {
				continue
			}
			buf = buf[:0]
			for _, st := range batch {
				buf = append(buf, st.Raw...)
			}
			if err := write(buf); err != nil {
				o.log.Info("stream to the peer failed", "err", err)
				for _, st := range batch {
					o.s.bounce(o.s.ctx, st, stanza.RemoteServerTimeout, "the stream to the remote server failed")
				}
				return err
			}
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(o.s.opts.IdleTimeout)
		case <-idle.C:
			if o.closeIfEmpty() {
				o.log.Debug("closing an idle stream")
				write([]byte("</stream:stream>"))
				return nil
			}
			idle.Reset(o.s.opts.IdleTimeout)
		case err := <-dead:
			dead <- err // for the deferred wait
			var pe peerError
			if errors.As(err, &pe) && pe.cond != "system-shutdown" {
				o.log.Warn("the peer ended the stream with an error", "condition", pe.cond, "text", pe.text)
			} else {
				o.log.Info("the peer closed the stream", "err", err)
			}
			write([]byte("</stream:stream>"))
			return fmt.Errorf("s2s: stream lost: %w", err)
		case <-o.s.ctx.Done():
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			buf = buf[:0]
			for _, st := range o.take() {
				buf = append(buf, st.Raw...)
			}
			write(append(buf, "</stream:stream>"...))
			return nil
		}
	}
}

// wire is an outgoing stream, authenticated.
type wire struct {
	nc   net.Conn
	r    *reader
	id   string // the peer's stream id
	tls  bool
	auth string // "external" or "dialback"
}

// connect sets up the stream of p: the peer's addresses tried in order.
func (s *Service) connect(ctx context.Context, p pair) (*wire, error) {
	ts, err := targets(ctx, s.opts.Resolver, s.opts.Routes, p.remote)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range ts {
		w, err := s.negotiate(ctx, p, t)
		if err == nil {
			return w, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// opened is a stream opened to a peer, its features read.
type opened struct {
	nc      net.Conn
	r       *reader
	id      string
	feats   elem
	tls     bool
	certErr error // why the peer's certificate does not verify; nil: it does
}

// open dials t and opens a stream from local to remote, with STARTTLS
// when the peer offers it (or direct TLS).
func (s *Service) open(ctx context.Context, local, remote string, t target) (*opened, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	o := &opened{nc: nc, certErr: errors.New("s2s: no TLS")}
	ok := false
	defer func() {
		stop()
		if !ok {
			nc.Close()
		} else {
			nc.SetDeadline(time.Time{})
		}
	}()
	if dl, has := ctx.Deadline(); has {
		nc.SetDeadline(dl)
	}
	if t.directTLS {
		if err := o.startTLS(ctx, s, remote, true); err != nil {
			return nil, err
		}
	}
	for {
		if _, err := o.nc.Write(header(local, remote, "")); err != nil {
			return nil, err
		}
		o.r = newReader(o.nc, s.opts.MaxStanzaBytes)
		h, err := o.r.header()
		if err != nil {
			return nil, err
		}
		o.id = h["id"]
		start, err := o.r.next()
		if err != nil {
			return nil, err
		}
		if start.Name.Space != nsStreams || start.Name.Local != "features" {
			return nil, fmt.Errorf("s2s: the peer sent <%s> instead of stream features", start.Name.Local)
		}
		if o.feats, err = o.r.element(start); err != nil {
			return nil, err
		}
		if _, has := o.feats.child(nsTLS, "starttls"); o.tls || !has || s.opts.TLS == nil {
			ok = true
			return o, nil
		}
		if _, err := o.nc.Write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
			return nil, err
		}
		start, err = o.r.next()
		if err != nil {
			return nil, err
		}
		if start.Name.Local != "proceed" {
			return nil, errors.New("s2s: the peer refused STARTTLS")
		}
		if err := o.startTLS(ctx, s, remote, false); err != nil {
			return nil, err
		}
	}
}

func (o *opened) startTLS(ctx context.Context, s *Service, remote string, direct bool) error {
	cfg := &tls.Config{
		ServerName: remote, MinVersion: tls.VersionTLS12,
		// Verified below, so that a certificate that does not verify
		// leaves dialback, not a failed handshake.
		InsecureSkipVerify: true,
	}
	if s.opts.TLS != nil {
		cfg.Certificates = s.opts.TLS.Certificates
	}
	if direct {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	tc := tls.Client(o.nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("s2s: TLS: %w", err)
	}
	o.nc, o.tls = tc, true
	o.certErr = verifyCert(tc.ConnectionState().PeerCertificates, s.opts.Roots, remote)
	return nil
}

// negotiate opens a stream to t and authenticates p.local on it: SASL
// EXTERNAL when the peer's certificate verifies and it offers it, dialback
// otherwise where allowed.
func (s *Service) negotiate(ctx context.Context, p pair, t target) (*wire, error) {
	o, err := s.open(ctx, p.local, p.remote, t)
	if err != nil {
		return nil, err
	}
	ok := false
	stop := context.AfterFunc(ctx, func() { o.nc.SetDeadline(time.Now()) })
	defer func() {
		stop()
		if !ok {
			o.nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		o.nc.SetDeadline(dl)
	}
	insecure := s.insecure(p.remote)
	if !o.tls && s.mustTLS(p.remote) {
		return nil, errors.New("s2s: the peer offers no TLS and TLS is required")
	}
	if o.certErr != nil && !insecure && !s.opts.Dialback {
		return nil, fmt.Errorf("s2s: dialback is off and the peer's certificate does not verify: %w", o.certErr)
	}
	w := &wire{tls: o.tls}
	if mechs, has := o.feats.child(nsSASL, "mechanisms"); has && o.certErr == nil && hasMech(mechs, "EXTERNAL") {
		authz := base64.StdEncoding.EncodeToString([]byte(p.local))
		if _, err := o.nc.Write([]byte("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + authz + "</auth>")); err != nil {
			return nil, err
		}
		start, err := o.r.next()
		if err != nil {
			return nil, err
		}
		if _, err := o.r.element(start); err != nil {
			return nil, err
		}
		if start.Name.Local == "success" {
			// Restart the stream (RFC 6120 §6.4.6).
			if _, err := o.nc.Write(header(p.local, p.remote, "")); err != nil {
				return nil, err
			}
			o.r = newReader(o.nc, s.opts.MaxStanzaBytes)
			h, err := o.r.header()
			if err != nil {
				return nil, err
			}
			start, err := o.r.next()
			if err == nil {
				_, err = o.r.element(start)
			}
			if err != nil {
				return nil, err
			}
			w.nc, w.r, w.id, w.auth = o.nc, o.r, h["id"], "external"
			ok = true
			o.nc.SetDeadline(time.Time{})
			return w, nil
		}
		s.log.Info("SASL EXTERNAL refused; trying dialback", "local", p.local, "remote", p.remote)
	}
	if !s.opts.Dialback && !insecure {
		return nil, errors.New("s2s: the peer did not accept our certificate and dialback is off")
	}
	if _, has := o.feats.child(nsDBFeature, "dialback"); !has && !insecure {
		return nil, errors.New("s2s: the peer offers neither SASL EXTERNAL for us nor dialback")
	}
	key := dialbackKey(s.opts.Secret, p.remote, p.local, o.id)
	b := []byte("<db:result")
	b = xmlenc.AppendAttr(b, "from", p.local)
	b = xmlenc.AppendAttr(b, "to", p.remote)
	b = append(append(append(b, '>'), key...), "</db:result>"...)
	if _, err := o.nc.Write(b); err != nil {
		return nil, err
	}
	for {
		start, err := o.r.next()
		if err != nil {
			return nil, err
		}
		e, err := o.r.element(start)
		if err != nil {
			return nil, err
		}
		if e.name.Space != NSDialback || e.name.Local != "result" {
			continue
		}
		if e.attrs["type"] != "valid" {
			return nil, fmt.Errorf("s2s: dialback refused (%s)", e.attrs["type"])
		}
		w.nc, w.r, w.id, w.auth = o.nc, o.r, o.id, "dialback"
		ok = true
		o.nc.SetDeadline(time.Time{})
		return w, nil
	}
}

func hasMech(mechs elem, name string) bool {
	for _, m := range mechs.kids {
		if m.name.Local == "mechanism" && m.text == name {
			return true
		}
	}
	return false
}

// verifyDialback asks the authoritative server of originating whether key
// is the one it made for the stream id it opened to receiving (XEP-0220
// §2.3), over a stream of its own.
func (s *Service) verifyDialback(ctx context.Context, receiving, originating, id, key string) (bool, error) {
	ts, err := targets(ctx, s.opts.Resolver, s.opts.Routes, originating)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, t := range ts {
		valid, err := s.verifyAt(ctx, t, receiving, originating, id, key)
		if err == nil {
			return valid, nil
		}
		errs = append(errs, err)
	}
	return false, errors.Join(errs...)
}

func (s *Service) verifyAt(ctx context.Context, t target, receiving, originating, id, key string) (bool, error) {
	o, err := s.open(ctx, receiving, originating, t)
	if err != nil {
		return false, err
	}
	defer o.nc.Close()
	stop := context.AfterFunc(ctx, func() { o.nc.SetDeadline(time.Now()) })
	defer stop()
	b := []byte("<db:verify")
	b = xmlenc.AppendAttr(b, "from", receiving)
	b = xmlenc.AppendAttr(b, "to", originating)
	b = xmlenc.AppendAttr(b, "id", id)
	b = append(append(append(b, '>'), key...), "</db:verify>"...)
	if _, err := o.nc.Write(b); err != nil {
		return false, err
	}
	for {
		start, err := o.r.next()
		if err != nil {
			return false, err
		}
		e, err := o.r.element(start)
		if err != nil {
			return false, err
		}
		if e.name.Space == NSDialback && e.name.Local == "verify" && e.attrs["id"] == id {
			o.nc.Write([]byte("</stream:stream>"))
			return e.attrs["type"] == "valid", nil
		}
	}
}
