package c2s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/router"
)

// CloseReason records why a session ended, for logs and tests.
type CloseReason uint8

// Close reasons.
const (
	CloseClient       CloseReason = iota + 1 // the client closed its stream
	CloseReadError                           // the connection failed or was reset
	CloseStreamError                         // the client broke a rule; a stream error was sent
	CloseSlowConsumer                        // the send queue filled up
	CloseWriteError                          // writing failed or timed out
	CloseConflict                            // another session bound the same full JID
	CloseShutdown                            // the server is shutting down
	CloseIdle                                // no answer to the keepalive ping
)

var closeReasons = [...]string{"", "client closed", "read error", "stream error", "slow consumer",
	"write error", "conflict", "shutdown", "idle"}

// String names the reason for logs.
func (r CloseReason) String() string {
	if int(r) < len(closeReasons) {
		return closeReasons[r]
	}
	return "unknown"
}

// Session is one bound client stream. The read goroutine (readLoop) owns
// the guard's read side; the writer goroutine alone writes to the
// connection; other goroutines reach the session only through Deliver and
// Close.
type Session struct {
	srv  *Server    // immutable
	conn *guardConn // immutable; writes owned by the writer
	jid  jid.JID    // immutable after bind
	peer net.Addr   // immutable: the client's address, for logs
	// limitKey is the address the connection limits counted, released
	// when the session ends; "" when none did. Immutable.
	limitKey string

	mu       sync.Mutex
	queue    []outItem   // guarded by mu
	queued   int         // bytes in queue; guarded by mu
	closing  bool        // guarded by mu: no more Deliver
	closeErr []byte      // guarded by mu: final bytes to write (stream error, close tag)
	reason   CloseReason // guarded by mu
	started  bool        // guarded by mu: the connection may be written to
	writing  bool        // guarded by mu: a flush goroutine is running
	finished bool        // guarded by mu: the final bytes are written
	// sm is the session's stream management (XEP-0198), nil until the
	// client enables it; guarded by mu.
	sm *smState
	// csi holds what waits while the client says it is inactive
	// (XEP-0352); nil while it is active. Guarded by mu.
	csi *csiBuffer
	// handled counts the stanzas read from the client since stream
	// management was enabled (its h), modulo 2^32; owned by the read loop
	// (of whichever connection carries the session).
	handled uint32
	// detached: the connection is gone and the session waits, still
	// bound, for the client to resume it; resumeTimer ends the wait.
	// Guarded by mu.
	detached    bool
	resumeTimer *time.Timer
	ended       bool // guarded by mu: end has run

	writerDone chan struct{} // closed when the last flush has finished
	pingID     atomic.Value  // string: id of the outstanding keepalive ping

	addr          *addrCache // owned by the read loop
	sock          sendRoom   // set before start, then owned by the writer: can the socket take a write now?
	writeDeadline time.Time  // owned by the writer: the connection's write deadline
	park          parkState  // see parkingLot
	noPark        bool       // owned by the read loop: the connection cannot park
}

// JID is the full JID bound to the session.
func (s *Session) JID() jid.JID { return s.jid }

// outItem is one queued stanza and, for DeliverThen, who to tell when it
// has been written.
type outItem struct {
	b    []byte
	done func(written bool)
}

// Deliver queues b for writing. It never blocks: when the queue is over its
// stanza or byte bound the session closes with <resource-constraint/> and
// Deliver returns router.ErrQueueFull.
func (s *Session) Deliver(b []byte) error { return s.DeliverThen(b, nil) }

// DeliverThen is Deliver, and calls done(true) once b has been flushed to
// the connection (with stream management: once the client has acknowledged
// it), or done(false) if it never will be (the session closed first).
// Stanzas delivered this way are not handed to the undeliverable path:
// their owner (the offline store) keeps them until done(true).
func (s *Session) DeliverThen(b []byte, done func(written bool)) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return router.ErrClosed
	}
	lim := &s.srv.Limits
	if len(s.queue) >= lim.SendQueueStanzas || s.queued+len(b) > lim.SendQueueBytes {
		s.mu.Unlock()
		s.logger().Warn("send queue full; closing slow consumer", "stanzas", lim.SendQueueStanzas, "bytes", lim.SendQueueBytes)
		s.closeWith(CloseSlowConsumer, streamError(stream.ResourceConstraint, "your client is not reading fast enough"), true)
		return router.ErrQueueFull
	}
	if m := s.sm; m != nil {
		if len(m.unacked) >= lim.MaxUnacked || m.unackedBytes+len(b) > lim.SendQueueBytes {
			s.mu.Unlock()
			s.logger().Warn("too many unacknowledged stanzas; closing", "stanzas", lim.MaxUnacked)
			s.closeWith(CloseSlowConsumer, streamError(stream.ResourceConstraint, "your client does not acknowledge what it receives (XEP-0198)"), true)
			return router.ErrQueueFull
		}
	}
	if c := s.csi; c != nil {
		// An inactive client (XEP-0352): what may wait waits; anything
		// else goes out after what waited, in order.
		if c.offer(outItem{b, done}) {
			s.mu.Unlock()
			return nil
		}
		for _, it := range c.take() {
			s.enqueueLocked(it)
		}
	}
	s.enqueueLocked(outItem{b, done})
	inline := s.kickLocked(true)
	s.mu.Unlock()
	if inline {
		s.flushOnce()
	}
	return nil
}

// enqueueLocked queues it for the writer. With stream management it is
// counted and kept, with its callback, until the client acknowledges it
// (the writer's copy has none); a detached session only keeps it, for the
// resumption. Called with mu held.
func (s *Session) enqueueLocked(it outItem) {
	m := s.sm
	if m == nil {
		s.queue = append(s.queue, it)
		s.queued += len(it.b)
		return
	}
	ask := m.push(it)
	if s.detached {
		return
	}
	s.queue = append(s.queue, outItem{b: it.b})
	s.queued += len(it.b)
	if ask {
		s.queue = append(s.queue, outItem{b: smRequest})
	}
}

// sendNonza queues b, an element that is no stanza (stream management's
// answers): not counted, not kept for acknowledgement.
func (s *Session) sendNonza(b []byte) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.sendNonzaLocked(b)
	inline := s.kickLocked(true)
	s.mu.Unlock()
	if inline {
		s.flushOnce()
	}
}

func (s *Session) sendNonzaLocked(b []byte) {
	s.queue = append(s.queue, outItem{b: b})
	s.queued += len(b)
}

// kickLocked starts a flush goroutine when there is something to write
// and none is running. An idle session has no writer goroutine at all,
// which keeps its memory small; under load one flush drains many stanzas.
// With mayInline, it reports instead that the caller should write the
// queue itself (flushOnce) when the socket can take it without blocking:
// handing a single stanza to another goroutine costs more (a thread
// woken, then put to sleep again) than writing it.
func (s *Session) kickLocked(mayInline bool) (inline bool) {
	if s.started && !s.writing && !s.finished && (len(s.queue) > 0 || s.closing) {
		s.writing = true
		if mayInline && !s.closing && s.sock.room(s.queued) {
			return true
		}
		s.srv.workers.run(s.flush)
	}
	return false
}

// start allows writing once negotiation is over.
func (s *Session) start() {
	s.mu.Lock()
	s.started = true
	s.kickLocked(false)
	s.mu.Unlock()
}

// Close ends the stream with the stream error e; queued stanzas are written
// first.
func (s *Session) Close(e stream.Error) {
	reason := CloseStreamError
	switch e.Err {
	case stream.Conflict.Err:
		reason = CloseConflict
	case stream.SystemShutdown.Err:
		reason = CloseShutdown
	}
	s.closeWith(reason, streamErrorFrom(e), false)
}

// closeWith marks the session closing and hands the writer its last bytes.
// With drop set, what is still queued is not written (the client is not
// reading) but handed to the undeliverable path.
func (s *Session) closeWith(reason CloseReason, final []byte, drop bool) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.reason = reason
	s.closeErr = final
	var held []outItem
	if c := s.csi; c != nil {
		held, s.csi = c.take(), nil
		if !drop && !s.detached {
			for _, it := range held { // written before the final bytes
				s.enqueueLocked(it)
			}
			held = nil
		}
	}
	var dropped []outItem
	if drop {
		dropped, s.queue, s.queued = s.queue, nil, 0
		if s.sm != nil {
			dropped = nil // they are unacknowledged: settled below
		}
	}
	unacked := s.takeUnackedLocked()
	detached := s.detached
	if detached {
		s.detached = false
		s.resumeTimer.Stop()
	}
	s.kickLocked(false)
	s.mu.Unlock()
	s.srv.notWritten(held)
	s.srv.notWritten(dropped)
	// Settled now rather than when the session is gone, so that they are
	// stored before what arrives for the client meanwhile.
	s.srv.notWritten(unacked)
	if detached {
		// No read loop or writer is left to end it.
		s.end()
	}
}

// flush is the only goroutine writing to the connection after
// negotiation while it runs; at most one writer (flush, or a delivering
// goroutine in flushOnce) runs per session, the one that set writing. It
// drains the whole queue into one buffered write and one flush, with a
// write deadline on each flush, and exits when the queue is empty. Only
// after a successful flush are the stanzas of a batch counted as written.
func (s *Session) flush() { s.write(false) }

// flushOnce writes one batch on the caller's goroutine (see kickLocked)
// and leaves whatever is queued meanwhile to a flush goroutine.
func (s *Session) flushOnce() { s.write(true) }

func (s *Session) write(once bool) {
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(s.conn)
	defer func() {
		w.Reset(nil)
		writerPool.Put(w)
	}()
	var batch []outItem
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.queued = 0
		closing, final := s.closing, s.closeErr
		if len(batch) == 0 && !closing {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		s.renewWriteDeadline()
		var err error
		size := 0
		for _, it := range batch {
			if _, err = w.Write(it.b); err != nil {
				break
			}
			size += len(it.b)
		}
		if err == nil {
			err = w.Flush()
		}
		// Counted before the error check: bytes may have reached the
		// socket even if the flush failed, and the bound must not fall
		// short of them.
		s.sock.wrote(size)
		if err != nil {
			s.mu.Lock()
			if m := s.sm; m != nil && m.resumable && !s.closing {
				// The connection is gone, the session may live on:
				// everything written or not is kept unacknowledged, and
				// the read loop, woken by the close, detaches.
				// Once finished, the session may detach and be resumed
				// on a new connection: this writer closes the connection
				// and the done channel it had, not the session's new ones.
				s.queue, s.queued = nil, 0
				conn, done := s.conn, s.writerDone
				s.debug("write failed; waiting for a resumption", "err", err)
				s.finished, s.writing = true, false
				s.mu.Unlock()
				conn.Close()
				if l := s.srv.lot; l != nil {
					l.wake(s)
				}
				close(done)
				return
			}
			s.mu.Unlock()
			// Nothing of this batch is known to have arrived: it goes
			// where undeliverable stanzas go (a duplicate is better than a
			// loss), with whatever was still queued.
			s.mu.Lock()
			if !s.closing {
				s.closing, s.reason = true, CloseWriteError
			}
			rest := s.queue
			s.queue = nil
			s.finished = true
			managed := s.sm != nil
			s.mu.Unlock()
			if !managed { // otherwise they are unacknowledged: the session's end settles them
				s.srv.notWritten(batch)
				s.srv.notWritten(rest)
			}
			s.debug("write failed", "err", err)
			s.closeConn()
			close(s.writerDone)
			return
		}
		for i, it := range batch {
			if it.done != nil {
				it.done(true)
			}
			batch[i] = outItem{}
		}
		if cap(batch) > 64 {
			batch = nil // do not keep a burst's backing array
		}
		if once {
			s.mu.Lock()
			if len(s.queue) == 0 && !s.closing {
				s.writing = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			s.srv.workers.run(s.flush) // writing stays set: the worker goes on
			return
		}
		if !closing {
			continue
		}
		s.mu.Lock()
		more := len(s.queue) > 0
		if !more {
			s.finished = true
		}
		s.mu.Unlock()
		if more {
			continue
		}
		w.Write(final)
		w.Flush()
		// Let the client read the error before the socket goes; the read
		// loop ends when the client closes or the timeout passes.
		if cw, ok := s.conn.Conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		time.AfterFunc(closeGrace, s.closeConn)
		close(s.writerDone)
		return
	}
}

// renewWriteDeadline gives the coming flush write_timeout, give or take an
// eighth: the deadline is set again only once an eighth of it has run,
// since setting it takes a lock and a timer update in the runtime's poller
// (2 % of the server's CPU at its maximum message rate when done for every
// delivery). Called by the session's writer only.
func (s *Session) renewWriteDeadline() {
	wt := s.srv.Limits.WriteTimeout
	now := time.Now()
	if s.writeDeadline.Sub(now) > wt-wt/8 {
		return
	}
	s.writeDeadline = now.Add(wt)
	s.conn.SetWriteDeadline(s.writeDeadline)
}

// writerPool holds the write buffers of sessions between batches.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// encoderPool holds stanza encoders between stanzas, so that an idle
// session keeps no serialisation buffer.
var encoderPool = sync.Pool{New: func() any { return newStanzaEncoder() }}

// closeGrace is how long a closed stream's socket stays open for the
// client to read the last bytes and send its own closing tag.
const closeGrace = 2 * time.Second

// closeConn closes the connection and wakes the session if it is parked,
// so that its read loop ends.
func (s *Session) closeConn() {
	s.conn.Close()
	if l := s.srv.lot; l != nil {
		l.wake(s)
	}
}

// readLoop reads stanzas until the stream ends, stamps from, checks the
// limits and hands each stanza to the router. It returns true when the
// session lives on without this goroutine: it parked (the client went
// silent; the loop goes on in another goroutine once the client sends
// again, see parkingLot), or its connection was lost and it waits for a
// resumption (detach).
func (s *Session) readLoop(ctx context.Context) (parked bool) {
	limit := s.srv.Limits
	addr := s.addr
	lot := s.srv.lot
	for {
		if lot != nil && !s.noPark {
			if ready, keepalive := s.conn.waitStanza(limit.ParkAfter); !ready {
				// A parked session keeps no read buffer: at a stanza
				// boundary it holds nothing.
				s.conn.releaseBuf()
				if lot.park(s, keepalive) {
					return true
				}
				// Not parkable (not a socket, or closing): read on here.
				s.conn.Conn.SetReadDeadline(time.Time{})
				if s.park.raw == nil {
					s.noPark = true
				}
			}
		}
		enc := encoderPool.Get().(*stanzaEncoder)
		st, consumed, err := enc.scan(s.conn, addr, limit.MaxDepth)
		if err == errSlowPath {
			st, err = s.readSlow(enc, consumed)
		}
		if cap(enc.enc.Buf) <= 64<<10 && cap(enc.sc.raw) <= 64<<10 {
			encoderPool.Put(enc) // a huge one is left to the collector
		}
		s.conn.Reset()
		if err != nil {
			if se, ok := err.(stanzaError); ok {
				s.handled++
				if reply := router.ErrorReply(se.st, se.err); reply != nil {
					s.Deliver(reply.Raw)
				}
				continue
			}
			if e, ok := err.(*smElement); ok {
				if final := s.handleSM(e); final != nil {
					s.closeAndUnbind(CloseStreamError, final)
					return false
				}
				continue
			}
			return s.readFailed(err)
		}
		s.handled++
		if s.local(ctx, st) {
			continue
		}
		s.srv.Router.FromClient(ctx, st)
	}
}

// readSlow reads the next element with encoding/xml, for what the fast
// path (stanzaEncoder.scan) leaves to it: consumed is what scan took from
// the guard, read again first.
func (s *Session) readSlow(enc *stanzaEncoder, consumed []byte) (*router.Stanza, error) {
	d, err := newSessionDecoder(s.conn, consumed)
	if err != nil {
		return nil, err // cannot happen: the prefix is well-formed
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Space {
			case nsStream:
				return nil, streamElement(d, t)
			case nsSM, nsCSI:
				e, err := parseSMElement(d, t)
				if err != nil {
					return nil, err
				}
				return nil, e
			}
			return enc.read(d, t, s.addr, s.srv.Limits.MaxDepth)
		case xml.EndElement:
			// The only end element at this level is the stream's own.
			return nil, errStreamEndTag
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
				return nil, errTextAtTop
			}
			// White space: the decoder has read the byte after it, so it
			// reads the element too.
		default:
			return nil, errRestrictedXML // a PI, comment or directive
		}
	}
}

// streamElement reads a stream-level element the client sent: its stream
// error (the client is closing) or anything else, which is not allowed.
func streamElement(d *xml.Decoder, start xml.StartElement) error {
	if start.Name.Local == "error" {
		var e stream.Error
		if err := d.DecodeElement(&e, &start); err != nil {
			return err
		}
		return e
	}
	return errNotStanza
}

// nsStream is the namespace of the stream element and stream errors.
const nsStream = "http://etherx.jabber.org/streams"

// streamPrefix opens, for a decoder of the slow path, the stream the
// client opened during negotiation: the namespaces it declared are in
// scope, and </stream:stream> has its start.
const streamPrefix = "<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>"

// newSessionDecoder returns a decoder positioned after the stream's start
// that reads consumed, then whatever the guard still holds, then the
// connection. It is made for one element and dropped after it: encoding/xml
// reads through the guard's ReadByte and reads no byte beyond the end of
// an element, so nothing after it is lost.
func newSessionDecoder(g *guardConn, consumed []byte) (*xml.Decoder, error) {
	prefix := make([]byte, 0, len(streamPrefix)+len(consumed)+len(g.prefix))
	prefix = append(prefix, streamPrefix...)
	prefix = append(prefix, consumed...)
	g.prefix = append(prefix, g.prefix...)
	d := xml.NewDecoder(g)
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	return d, nil
}

// logger returns the server's logger with the session's address and JID.
// It is made when needed rather than kept: a derived slog.Logger holds half
// a kilobyte per session, and sessions seldom log.
func (s *Session) logger() *slog.Logger {
	remote := ""
	if s.peer != nil {
		remote = s.peer.String()
	}
	return s.srv.Log.With("remote", remote, "jid", s.jid.String())
}

// debug logs at debug level without deriving a logger when that level is
// off.
func (s *Session) debug(msg string, args ...any) {
	if s.srv.Log.Enabled(context.Background(), slog.LevelDebug) {
		s.logger().Debug(msg, args...)
	}
}

// local handles what the session answers itself: the keepalive ping's
// answer and the legacy session IQ (RFC 3921 §3, kept for old clients).
func (s *Session) local(ctx context.Context, st *router.Stanza) bool {
	if st.Kind != router.KindIQ {
		return false
	}
	toServer := st.To.Equal(jid.JID{}) || st.To.Equal(s.srv.Router.Domain())
	if !toServer {
		return false
	}
	if (st.Type == "result" || st.Type == "error") && st.ID != "" {
		if id, _ := s.pingID.Load().(string); id == st.ID {
			s.pingID.Store("")
			return true
		}
	}
	if st.Type == "set" && st.Payload == (xml.Name{Space: nsSession, Local: "session"}) {
		reply, err := router.Build(router.KindIQ, "result", st.ID, st.To, s.jid, nil)
		if err == nil {
			s.Deliver(reply.Raw)
		}
		return true
	}
	return false
}

// ping sends the keepalive IQ (XEP-0199 §4.2); called from the guard when
// the client has been silent.
func (s *Session) ping() {
	id := "keepalive-" + randomID()
	s.pingID.Store(id)
	raw := []byte("<iq type='get' id='" + id + "' from='" + s.srv.Router.Domain().String() + "' to='")
	raw = append(append(raw, xmlAttrEscape(s.jid.String())...), "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
	s.Deliver(raw)
}

func xmlAttrEscape(v string) []byte {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(v))
	return b.Bytes()
}

// readFailed ends the session after the read loop stopped with err. The
// session leaves the router first, so that its unavailable presence is on
// its way before the client sees its stream closed.
func (s *Session) readFailed(err error) (detached bool) {
	if s.detach(err) {
		return true
	}
	reason, final := classifyReadError(err, s.srv.Limits.MaxStanzaBytes)
	switch reason {
	case CloseStreamError:
		s.logger().Warn("closing stream", "reason", string(final), "err", err)
	case CloseIdle:
		s.debug("keepalive timed out")
	default:
		s.debug("stream ended", "err", err)
	}
	s.closeAndUnbind(reason, final)
	return false
}

// closeAndUnbind ends the stream with final and takes the session out of
// the router. Closing comes first: it settles the unacknowledged stanzas
// (to offline storage) while nothing can be delivered to the session any
// more, so that they are neither handed back to it nor stored after what
// arrives once the router has forgotten it.
func (s *Session) closeAndUnbind(reason CloseReason, final []byte) {
	s.closeWith(reason, final, false)
	s.srv.Router.Unbind(s.srv.baseCtx, s)
}

// stanzaError is a stanza the read loop answers with an error rather than
// routing.
type stanzaError struct {
	st  *router.Stanza
	err stanza.Error
}

func (e stanzaError) Error() string { return "c2s: " + string(e.err.Condition) }
