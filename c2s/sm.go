package c2s

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/router"
)

// Namespaces of stream management (XEP-0198) and client state indication
// (XEP-0352): stream features of every session, which the server lists
// in its disco#info too (StreamFeatures).
const (
	nsSM  = "urn:xmpp:sm:3"
	nsCSI = "urn:xmpp:csi:0"
)

// StreamFeatures are the namespaces of what every client session offers
// after authentication beyond binding: stream management and client state
// indication. The server lists them in its disco#info.
var StreamFeatures = []string{nsSM, nsCSI}

// errStreamEndTag is the client's </stream:stream>: the stream ended on
// purpose, so a stream-managed session ends rather than waits for a
// resumption (XEP-0198 §5). It is an io.EOF for everything else.
var errStreamEndTag = fmt.Errorf("c2s: the client closed its stream: %w", io.EOF)

// smAskAt is how many unacknowledged stanzas make the server ask for an
// acknowledgement (<r/>), when it has not asked since the last one. The
// request rides in the same write as the stanza that triggered it.
const smAskAt = 5

// Stream management elements the server sends.
var (
	smRequest = []byte("<r xmlns='" + nsSM + "'/>")
)

// smState is the stream management of one session: created when the client
// enables it, then guarded by Session.mu.
type smState struct {
	id        string // resumption id; "" when not resumable
	resumable bool

	// sent counts the stanzas queued for the client (XEP-0198's h of the
	// server's side), modulo 2^32; acked is the client's last h.
	sent, acked uint32
	// unacked holds the stanzas from acked+1 to sent, oldest first, with
	// their DeliverThen callbacks, which are called only once the client
	// acknowledges them (or they are given up).
	unacked      []outItem
	unackedBytes int
	asked        bool // an <r/> went out since the last <a/>
}

// smElement is a stream management or client state element the client
// sent, parsed by the read loop's slow path; it travels as an error so that
// the loop's stanza path stays as it is.
type smElement struct {
	local  string // enable, r, a, resume, active, inactive
	space  string
	h      uint32
	hasH   bool
	resume bool   // enable: resume='true'
	max    int    // enable: the client's preferred resumption time, seconds; 0: none
	previd string // resume
}

func (e *smElement) Error() string { return "c2s: " + e.local + " element" }

// parseSMElement reads a stream management or client state element whose
// start tag is start. Unknown elements of those namespaces are an error.
func parseSMElement(d *xml.Decoder, start xml.StartElement) (*smElement, error) {
	e := &smElement{local: start.Name.Local, space: start.Name.Space}
	known := false
	switch start.Name.Space {
	case nsSM:
		switch e.local {
		case "enable", "r", "a", "resume":
			known = true
		}
	case nsCSI:
		known = e.local == "active" || e.local == "inactive"
	}
	if !known {
		return nil, withText(stream.UnsupportedStanzaType, "<"+e.local+" xmlns='"+start.Name.Space+"'/> is not supported")
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "h":
			if e.local != "a" && e.local != "resume" {
				continue
			}
			n, err := strconv.ParseUint(a.Value, 10, 32)
			if err != nil {
				return nil, withText(stream.BadFormat, "h must be an unsigned 32-bit integer")
			}
			e.h, e.hasH = uint32(n), true
		case "resume":
			e.resume = a.Value == "true" || a.Value == "1"
		case "max":
			if n, err := strconv.ParseUint(a.Value, 10, 31); err == nil {
				e.max = int(n)
			}
		case "previd":
			e.previd = a.Value
		}
	}
	if (e.local == "a" || e.local == "resume") && !e.hasH {
		return nil, withText(stream.BadFormat, "<"+e.local+"/> needs an h attribute")
	}
	if err := d.Skip(); err != nil {
		return nil, err
	}
	return e, nil
}

// appendAck appends <a h='h'/>.
func appendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+nsSM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// smFailed is <failed/> with a stanza error condition and, when known, the
// count of stanzas the server handled (XEP-0198 §4, §5).
func smFailed(cond string, h uint32, withH bool) []byte {
	b := []byte("<failed xmlns='" + nsSM + "'")
	if withH {
		b = append(b, " h='"...)
		b = strconv.AppendUint(b, uint64(h), 10)
		b = append(b, '\'')
	}
	return append(b, "><"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"...)
}

// push records a stanza queued for the client; called with Session.mu
// held. It reports whether the server should ask for an acknowledgement
// now.
func (m *smState) push(it outItem) (ask bool) {
	m.sent++
	m.unacked = append(m.unacked, it)
	m.unackedBytes += len(it.b)
	if !m.asked && len(m.unacked) >= smAskAt {
		m.asked = true
		return true
	}
	return false
}

// ack takes the client's h: the stanzas it acknowledges leave unacked,
// and the callbacks among them are returned, to be called without the
// lock. ok is false for an h that acknowledges more than was sent
// (XEP-0198 §4: handled-count-too-high).
func (m *smState) ack(h uint32) (done []func(bool), ok bool) {
	n := int64(h - m.acked) // modulo 2^32
	if n > int64(len(m.unacked)) {
		return nil, false
	}
	for i := range m.unacked[:n] {
		it := &m.unacked[i]
		if it.done != nil {
			done = append(done, it.done)
		}
		m.unackedBytes -= len(it.b)
	}
	// Moved down rather than resliced, so that the array is reused: a
	// session acknowledged every few stanzas keeps one small array.
	rest := copy(m.unacked, m.unacked[n:])
	clear(m.unacked[rest:])
	m.unacked = m.unacked[:rest]
	if rest == 0 && cap(m.unacked) > 256 {
		m.unacked = nil // let a burst's array go
	}
	m.acked = h
	m.asked = false
	return done, true
}

// handledTooHigh is the stream error for an acknowledgement of stanzas
// never sent, with XEP-0198's application-specific condition.
func handledTooHigh(h, sent uint32) []byte {
	b := []byte("<stream:error><undefined-condition xmlns='" + nsStreams + "'/><text xmlns='" + nsStreams +
		"' xml:lang='en'>you acknowledged more stanzas than were sent</text>")
	b = fmt.Appendf(b, "<handled-count-too-high xmlns='%s' h='%d' send-count='%d'/>", nsSM, h, sent)
	return append(b, "</stream:error></stream:stream>"...)
}

// since returns the unacknowledged stanzas after the client's h, for a
// resumption, or ok false when h is not within what was sent.
func (m *smState) since(h uint32) (items []outItem, ok bool) {
	n := h - m.acked
	if int64(n) > int64(len(m.unacked)) {
		return nil, false
	}
	return m.unacked[n:], true
}

// takeUnackedLocked takes the stanzas the client has not acknowledged,
// for settling as undelivered; called with Session.mu held.
func (s *Session) takeUnackedLocked() []outItem {
	m := s.sm
	if m == nil || len(m.unacked) == 0 {
		return nil
	}
	items := m.unacked
	m.acked += uint32(len(items)) // the client cannot acknowledge them any more
	m.unacked, m.unackedBytes = nil, 0
	return items
}

// handleSM acts on a stream management or client state element from the
// read loop. A non-nil result is the stream error that ends the session.
func (s *Session) handleSM(e *smElement) (final []byte) {
	switch e.space + " " + e.local {
	case nsSM + " enable":
		m := &smState{}
		enabled := []byte("<enabled xmlns='" + nsSM + "'")
		if timeout := s.srv.Limits.ResumeTimeout; e.resume && timeout > 0 {
			max := int(timeout / time.Second)
			if e.max > 0 && e.max < max {
				max = e.max
			}
			m.id, m.resumable = randomID()+randomID(), true
			enabled = append(enabled, " id='"+m.id+"' resume='true' max='"...)
			enabled = strconv.AppendInt(enabled, int64(max), 10)
			enabled = append(enabled, '\'')
		}
		enabled = append(enabled, "/>"...)
		s.mu.Lock()
		if s.sm != nil {
			s.sendNonzaLocked(smFailed("unexpected-request", 0, false))
		} else {
			s.sm = m
			s.handled = 0
			s.sendNonzaLocked(enabled)
			if m.resumable {
				srv := s.srv
				srv.mu.Lock()
				srv.resumable[m.id] = s
				srv.mu.Unlock()
			}
		}
		inline := s.kickLocked(true)
		s.mu.Unlock()
		if inline {
			s.flushOnce()
		}
	case nsSM + " r":
		s.mu.Lock()
		on := s.sm != nil
		s.mu.Unlock()
		if on {
			s.sendNonza(appendAck(nil, s.handled))
		}
	case nsSM + " a":
		s.mu.Lock()
		m := s.sm
		if m == nil || s.closing {
			s.mu.Unlock()
			return nil // nothing to acknowledge, or settled already: ignored
		}
		done, ok := m.ack(e.h)
		sent := m.sent
		s.mu.Unlock()
		if !ok {
			s.logger().Warn("client acknowledged stanzas never sent", "h", e.h, "sent", sent)
			return handledTooHigh(e.h, sent)
		}
		for _, f := range done {
			f(true)
		}
	case nsSM + " resume":
		// Only instead of binding, on a new stream (negotiation.go).
		s.sendNonza(smFailed("unexpected-request", 0, false))
	case nsCSI + " inactive":
		s.mu.Lock()
		if s.csi == nil {
			s.csi = &csiBuffer{}
		}
		s.mu.Unlock()
	case nsCSI + " active":
		s.mu.Lock()
		if c := s.csi; c != nil {
			s.csi = nil
			for _, it := range c.take() {
				s.enqueueLocked(it)
			}
		}
		inline := s.kickLocked(true)
		s.mu.Unlock()
		if inline {
			s.flushOnce()
		}
	}
	return nil
}

// detach keeps a resumable stream-managed session bound after its
// connection was lost (err), to wait for a resumption. It reports false,
// doing nothing, when the session is not resumable or the stream ended on
// purpose: the client closed it, or the server did for an error.
func (s *Session) detach(err error) bool {
	var se stream.Error
	if errors.Is(err, errStreamEndTag) || errors.As(err, &se) {
		return false // the client ended its stream: </stream:stream> or a stream error
	}
	if reason, _ := classifyReadError(err, s.srv.Limits.MaxStanzaBytes); reason != CloseReadError && reason != CloseClient && reason != CloseIdle {
		return false
	}
	s.mu.Lock()
	if s.sm == nil || !s.sm.resumable || s.closing {
		s.mu.Unlock()
		return false
	}
	s.detached = true
	s.queue, s.queued = nil, 0 // all of it is unacknowledged, kept there
	if c := s.csi; c != nil {
		// Resent on resumption, after which the client is active
		// (XEP-0352 §5: the state does not survive the stream).
		for _, it := range c.take() {
			s.enqueueLocked(it)
		}
		s.csi = nil
	}
	conn := s.conn
	// Logged while the lock is held: once detached, a resumption may
	// attach a new connection and change the peer the logger names.
	s.debug("connection lost; waiting for a resumption", "err", err, "for", s.srv.Limits.ResumeTimeout.String())
	s.resumeTimer = time.AfterFunc(s.srv.Limits.ResumeTimeout, s.resumeExpired)
	var unacked [][]byte
	if s.srv.Router.WantsDetached() {
		unacked = make([][]byte, len(s.sm.unacked))
		for i, it := range s.sm.unacked {
			unacked[i] = it.b
		}
	}
	s.mu.Unlock()
	conn.Close()
	s.waitWriterIdle()
	// Told once the connection is closed, without the lock (the hooks
	// may send stanzas: push notifications).
	s.srv.Router.SessionDetached(s.srv.baseCtx, s, unacked)
	return true
}

// waitWriterIdle waits until no writer runs on the (closed) connection and
// keeps new ones from starting. Called once the connection is closed, so a
// writer still running fails at once.
func (s *Session) waitWriterIdle() {
	for {
		s.mu.Lock()
		if !s.writing || s.finished {
			if !s.finished {
				s.finished = true
				close(s.writerDone)
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// resumeExpired ends a detached session the client did not resume in time.
func (s *Session) resumeExpired() {
	s.mu.Lock()
	if !s.detached {
		s.mu.Unlock()
		return
	}
	s.detached = false
	s.closing, s.reason = true, CloseIdle
	s.mu.Unlock()
	s.debug("not resumed in time")
	s.end()
}

// resume hands the session a client wants to resume to the negotiation
// of its new connection, authenticated as user. It returns the answer to
// write (<resumed/> or <failed/>) and, on success, the session, which the
// caller attaches to the connection after writing the answer.
func (srv *Server) resume(user jid.JID, e *smElement) ([]byte, *Session) {
	srv.mu.Lock()
	sess := srv.resumable[e.previd]
	srv.mu.Unlock()
	if sess == nil || !sess.jid.Bare().Equal(user.Bare()) {
		return smFailed("item-not-found", 0, false), nil
	}
	// Take over from a connection that is still open (half-open to the
	// client, which has moved on): close it and wait for the detach.
	sess.mu.Lock()
	conn, attached := sess.conn, !sess.detached && !sess.closing
	sess.mu.Unlock()
	if attached {
		conn.Close()
		if l := srv.lot; l != nil {
			l.wake(sess)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			sess.mu.Lock()
			done := sess.detached || sess.closing
			sess.mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	sess.mu.Lock()
	if !sess.detached || sess.closing {
		sess.mu.Unlock()
		return smFailed("item-not-found", 0, false), nil
	}
	acked, ok := sess.sm.ack(e.h)
	if !ok {
		sess.logger().Warn("resumption acknowledged stanzas never sent", "h", e.h, "sent", sess.sm.sent)
		sess.mu.Unlock()
		sess.closeWith(CloseStreamError, nil, false)
		return smFailed("unexpected-request", 0, false), nil
	}
	sess.resumeTimer.Stop()
	sess.detached = false // attached by the caller; meanwhile stanzas are kept
	h := sess.handled     // the old read loop has ended
	id := sess.sm.id
	sess.mu.Unlock()
	for _, f := range acked {
		f(true)
	}
	b := []byte("<resumed xmlns='" + nsSM + "' h='")
	b = strconv.AppendUint(b, uint64(h), 10)
	b = append(b, "' previd='"...)
	b = append(b, id...)
	return append(b, "'/>"...), sess
}

// redetach puts back in waiting a session whose resumption failed before
// the client learnt of it.
func (s *Session) redetach() {
	s.mu.Lock()
	if !s.closing && !s.detached {
		s.detached = true
		s.resumeTimer = time.AfterFunc(s.srv.Limits.ResumeTimeout, s.resumeExpired)
	}
	s.mu.Unlock()
}

// attach makes g the session's connection after a resumption, and queues
// again, first, every stanza the client has not acknowledged.
func (s *Session) attach(g *guardConn, peer net.Addr, limitKey string) {
	s.mu.Lock()
	old := s.limitKey
	s.conn, s.peer, s.limitKey = g, peer, limitKey
	s.writerDone = make(chan struct{})
	s.started, s.writing, s.finished = false, false, false
	s.queue, s.queued = s.queue[:0], 0
	for _, it := range s.sm.unacked {
		s.queue = append(s.queue, outItem{b: it.b})
		s.queued += len(it.b)
	}
	s.sm.asked = false
	s.writeDeadline = time.Time{}
	s.noPark = false
	s.mu.Unlock()
	s.park.mu.Lock()
	s.park.raw, s.park.added, s.park.fd = nil, false, 0
	s.park.mu.Unlock()
	if old != "" {
		s.srv.conns.release(old)
	}
	s.sock = newSendRoom(g.Conn)
}

// serveResumed runs a resumed session on its new connection.
func (s *Session) serveResumed() {
	s.start()
	s.debug("session resumed")
	s.serve(nil)
}

var _ router.Detachable = (*Session)(nil)

// Detached reports whether the session's connection is lost and it waits
// for a resumption (router.Detachable): what it is delivered meanwhile is
// kept for the client (XEP-0357 push notifications are sent for it).
func (s *Session) Detached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detached
}

var _ router.Acknowledger = (*Session)(nil)

// AckState returns stream management's counts of stanzas sent and
// acknowledged (router.Acknowledger); ok is false without stream
// management or while detached.
func (s *Session) AckState() (sent, acked uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sm == nil || s.detached || s.closing {
		return 0, 0, false
	}
	return s.sm.sent, s.sm.acked, true
}

// RequestAck sends <r/> unless one is outstanding (router.Acknowledger).
func (s *Session) RequestAck() {
	s.mu.Lock()
	m := s.sm
	if m == nil || m.asked || s.detached || s.closing {
		s.mu.Unlock()
		return
	}
	m.asked = true
	s.sendNonzaLocked(smRequest)
	inline := s.kickLocked(true)
	s.mu.Unlock()
	if inline {
		s.flushOnce()
	}
}
