package bosh

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"time"

	"xmppd.dev/xmppd/internal/xmlsplit"
)

// reply is what a request is answered with.
type reply struct {
	status int
	body   []byte
}

// kept is a response kept for a retransmission (XEP-0124 §14.3).
type kept struct {
	reply
	sent time.Time
}

// maxKept bounds the responses kept for a client that acknowledges
// responses (§9.2) but stops advancing its acks.
const maxKept = 16

// request is a request of a session, from its arrival to its answer.
type request struct {
	b     *body
	rep   chan reply  // buffered: the answer is never blocked on
	timer *time.Timer // answers it empty after wait; set when held
	// create: the session creation request, answered with the
	// session's attributes. needFeatures: it waits for the stream
	// features (creation, restart) rather than being answered empty.
	create, needFeatures bool
	now                  bool  // answer at once (pause, report)
	report, reportMS     int64 // §9.2: a response the client seems to lack, and its age
	empty                bool  // no payload, restart or pause: a poll
}

// session is one BOSH session. Everything below mu is guarded by it; the
// HTTP handlers, the timers and the conn (c2s's reader and writer) all
// take it, never while blocking.
type session struct {
	h          *Handler
	sid        string
	wait       time.Duration
	hold       int
	requests   int  // the window: hold+1
	legacy     bool // created without ver: errors as HTTP codes (XEP-0124 §17.1)
	acks       bool // the client asked for acknowledgements (§9)
	inactivity time.Duration
	outMax     int // output waiting beyond this makes c2s's writes wait
	conn       *conn

	mu        sync.Mutex
	last      int64              // the highest rid processed; all below it were
	gap       map[int64]*request // requests ahead of a missing rid
	held      []*request         // processed, unanswered, oldest first
	cache     map[int64]kept     // answers kept: the last `requests`, or those not acknowledged (§14.3)
	answered  int64              // the highest rid answered
	clientAck int64              // the highest response the client acknowledged (§9.2)
	reported  int64              // the last rid reported missing (§9.2), reported once
	out       [][]byte           // c2s's elements to send, qualified
	outBytes  int
	drained   chan struct{} // signalled when out is taken
	from      string        // of c2s's stream header
	authid    string        // its id
	features  bool          // features written since the last header
	ended     bool          // c2s ended the stream or closed the conn
	errored   bool          // with a stream error
	broken    bool          // by closing the conn without ending the stream
	closed    bool          // the session is over: no more requests
	idle      *time.Timer   // inactivity; runs while nothing is held
	pause     time.Duration // the next inactivity, when paused
	lastPoll  time.Time     // last empty request answered empty, for polling
}

// status is code for a legacy client and 200 for others (XEP-0124 §17.1).
func (s *session) status(code int) int {
	if s.legacy {
		return code
	}
	return http.StatusOK
}

// start feeds c2s the stream header of the creation request and returns
// where its answer comes.
func (s *session) start(b *body) <-chan reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.push(streamHeader(b.to, b.lang))
	r := &request{b: b, rep: make(chan reply, 1), create: true, needFeatures: true}
	s.last = b.rid
	s.feed(r)
	s.deliver()
	return r.rep
}

// request takes a request of the session in rid order (XEP-0124 §14)
// and returns where its answer comes.
func (s *session) request(b *body) <-chan reply {
	r := &request{b: b, rep: make(chan reply, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		r.rep <- reply{s.status(http.StatusNotFound), terminal("item-not-found")}
		return r.rep
	}
	if s.idle != nil {
		s.idle.Stop()
	}
	rid := b.rid
	switch {
	case rid <= s.last:
		if c, ok := s.cache[rid]; ok {
			r.rep <- c.reply // a retransmission (§14.3)
			s.deliver()
			return r.rep
		}
		for i, o := range s.held {
			if o.b.rid == rid {
				// Sent again before its answer: the new connection
				// takes over; the old one's is probably gone.
				o.timer.Stop()
				o.rep <- reply{http.StatusOK, emptyBody}
				r.create, r.needFeatures, r.now = o.create, o.needFeatures, o.now
				r.b = o.b
				s.held[i] = r
				r.timer = time.AfterFunc(s.wait, func() { s.expire(r) })
				return r.rep
			}
		}
		s.terminateLocked("item-not-found", http.StatusNotFound, r)
		return r.rep
	case rid > s.last+int64(s.requests):
		s.terminateLocked("item-not-found", http.StatusNotFound, r)
		return r.rep
	case rid > s.last+1:
		if o := s.gap[rid]; o != nil {
			o.rep <- reply{http.StatusOK, emptyBody}
		}
		s.gap[rid] = r
		s.deliver() // the inactivity timer, if nothing is held
		return r.rep
	}
	s.last = rid
	if !s.process(r) {
		return r.rep
	}
	for {
		n := s.gap[s.last+1]
		if n == nil {
			break
		}
		delete(s.gap, s.last+1)
		s.last++
		if !s.process(n) {
			break
		}
	}
	s.deliver()
	return r.rep
}

// process acts on a request whose turn it is; false when it ended the
// session.
func (s *session) process(r *request) bool {
	b := r.b
	if b.typ == "terminate" {
		// The client's last payload, then the end of the stream (§13).
		for _, c := range b.children {
			s.conn.push(c)
		}
		s.conn.push(xmlsplit.StreamEnd)
		s.conn.pushEOF()
		rep := reply{http.StatusOK, s.bodyLocked(r, "terminate", "", s.takeOut())}
		s.endLocked(rep, r)
		return false
	}
	if s.acks {
		// §9.2: a request without ack says every earlier response
		// arrived. One acknowledging less than was answered is told,
		// at once and once, which response it seems to lack, which it
		// may ask again by repeating its rid.
		ack := b.ack
		if ack == 0 {
			ack = b.rid - 1
		}
		if b.ack > 0 && b.ack < s.answered && b.ack+1 > s.reported {
			if k, ok := s.cache[b.ack+1]; ok {
				r.report, r.reportMS, r.now = b.ack+1, time.Since(k.sent).Milliseconds(), true
				s.reported = b.ack + 1
			}
		}
		s.clientAck = max(s.clientAck, ack)
	}
	if b.pause > 0 {
		if b.pause > s.h.opts.MaxPause {
			s.terminateLocked("policy-violation", http.StatusForbidden, r)
			return false
		}
		// §10: all held requests are answered now; the next
		// inactivity may last the pause.
		s.pause = b.pause
		r.now = true
		for _, o := range s.held {
			o.now = true
		}
	}
	if s.conn.backlog() > s.h.maxBacklog() {
		// The client sends faster than c2s reads (its read rate, a
		// slow store): over TCP the socket's buffers would push back;
		// here answering held requests frees the window at once, so
		// the input is bounded instead, and what waits is dropped.
		s.conn.abort()
		s.terminateLocked("policy-violation", http.StatusForbidden, r)
		return false
	}
	if b.restart {
		s.conn.push(streamHeader(b.to, b.lang))
		s.features = false
		r.needFeatures = true
	}
	for _, c := range b.children {
		s.conn.push(c)
	}
	empty := len(b.children) == 0 && !b.restart && b.pause == 0
	r.empty = empty
	if empty && s.hold == 0 && s.h.opts.Polling > 0 && !s.lastPoll.IsZero() && time.Since(s.lastPoll) < s.h.opts.Polling {
		// §12: polling faster than the session allows.
		s.terminateLocked("policy-violation", http.StatusForbidden, r)
		return false
	}
	s.feed(r)
	return true
}

// feed holds r until something is sent or its wait ends.
func (s *session) feed(r *request) {
	s.held = append(s.held, r)
	r.timer = time.AfterFunc(s.wait, func() { s.expire(r) })
}

// expire answers r empty when its wait is over.
func (s *session) expire(r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.held {
		if o == r {
			if r.needFeatures && !s.ended && !s.closed {
				// The features are late (c2s is slow): answer
				// what the client waits for when it comes.
				r.timer.Reset(s.wait)
				return
			}
			s.answer(r, nil)
			s.deliver()
			return
		}
	}
}

// deliver answers the held requests it can: the oldest with what c2s
// wrote, then those beyond hold with nothing. With nothing held, the
// inactivity timer runs.
func (s *session) deliver() {
	if s.closed {
		return
	}
	if s.ended {
		cond := ""
		switch {
		case s.errored:
			cond = "remote-stream-error"
		case s.broken:
			// c2s dropped the connection (a write timed out, say):
			// no condition of XEP-0124 §17.2 says more.
			cond = "undefined-condition"
		}
		if len(s.held) == 0 {
			// The next request gets it; a client that sends none
			// is forgotten after the inactivity.
			s.armIdle()
			return
		}
		r := s.held[0]
		rep := reply{http.StatusOK, s.bodyLocked(r, "terminate", cond, s.takeOut())}
		s.endLocked(rep, r)
		return
	}
	for len(s.held) > 0 {
		r := s.held[0]
		if r.needFeatures && !s.features {
			break
		}
		if len(s.out) == 0 && !r.now {
			break
		}
		s.answer(r, s.takeOut())
	}
	for i := 0; i < len(s.held) && len(s.held) > s.hold; {
		r := s.held[i]
		if r.needFeatures {
			i++
			continue
		}
		s.answer(r, s.takeOut())
	}
	for i := 0; i < len(s.held); {
		if r := s.held[i]; r.now && !r.needFeatures {
			s.answer(r, s.takeOut())
			continue
		}
		i++
	}
	if len(s.held) == 0 {
		s.armIdle()
	}
}

// armIdle starts the inactivity timer: the session's inactivity, or the
// pause asked for, once.
func (s *session) armIdle() {
	d := s.inactivity
	if s.pause > 0 {
		d, s.pause = s.pause, 0
	}
	if s.idle == nil {
		s.idle = time.AfterFunc(d, s.inactive)
	} else {
		s.idle.Reset(d)
	}
}

// inactive ends the transport of a session that went without requests
// for its inactivity: c2s sees the connection drop, as a TCP client's
// (with stream management the session waits to be resumed).
func (s *session) inactive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.held) > 0 && !s.ended {
		return
	}
	s.h.log.Debug("BOSH session inactive", "sid", s.sid)
	s.conn.pushEOF()
	s.endLocked(reply{}, nil)
}

// takeOut returns the elements waiting and empties the queue.
func (s *session) takeOut() [][]byte {
	out := s.out
	s.out, s.outBytes = nil, 0
	if len(out) > 0 {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	return out
}

// answer sends r its body with els, remembering it for a retransmission.
func (s *session) answer(r *request, els [][]byte) {
	rep := reply{http.StatusOK, s.bodyLocked(r, "", "", els)}
	s.unhold(r)
	if len(els) == 0 && s.hold == 0 && r.empty {
		s.lastPoll = time.Now()
	} else {
		s.lastPoll = time.Time{}
	}
	s.send(r, rep)
}

func (s *session) send(r *request, rep reply) {
	rid := r.b.rid
	s.cache[rid] = kept{rep, time.Now()}
	s.answered = max(s.answered, rid)
	oldest := s.last - int64(s.requests)
	if s.acks {
		oldest = max(s.clientAck, s.last-maxKept)
	}
	for k := range s.cache {
		if k <= oldest {
			delete(s.cache, k)
		}
	}
	r.rep <- rep
}

func (s *session) unhold(r *request) {
	if r.timer != nil {
		r.timer.Stop()
	}
	for i, o := range s.held {
		if o == r {
			s.held = append(s.held[:i], s.held[i+1:]...)
			return
		}
	}
}

// bodyLocked builds r's answer holding els, with typ and condition when
// not empty.
func (s *session) bodyLocked(r *request, typ, cond string, els [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("<body xmlns='" + NSHTTPBind + "'")
	if len(els) > 0 {
		b.WriteString(" xmlns:stream='" + xmlsplit.NSStream + "'")
	}
	if r.create {
		b.WriteString(" xmlns:xmpp='" + NSXBOSH + "' sid='" + s.sid + "'")
		b.WriteString(" wait='" + strconv.Itoa(int(s.wait/time.Second)) + "'")
		b.WriteString(" requests='" + strconv.Itoa(s.requests) + "' hold='" + strconv.Itoa(s.hold) + "'")
		b.WriteString(" polling='" + strconv.Itoa(int(s.h.opts.Polling/time.Second)) + "'")
		b.WriteString(" inactivity='" + strconv.Itoa(int(s.inactivity/time.Second)) + "'")
		b.WriteString(" maxpause='" + strconv.Itoa(int(s.h.opts.MaxPause/time.Second)) + "'")
		b.WriteString(" ver='" + version + "' xmpp:version='1.0' xmpp:restartlogic='true'")
		if s.from != "" {
			b.WriteString(" from='" + s.from + "'")
		}
		if s.authid != "" {
			b.WriteString(" authid='" + s.authid + "'")
		}
		if s.acks {
			// §9.1: the creation response acknowledges its rid.
			b.WriteString(" ack='" + strconv.FormatInt(r.b.rid, 10) + "'")
		}
	} else if s.acks && s.last > r.b.rid {
		// §9.1: requests up to last arrived while r was held.
		b.WriteString(" ack='" + strconv.FormatInt(s.last, 10) + "'")
	}
	if r.report > 0 {
		b.WriteString(" report='" + strconv.FormatInt(r.report, 10) + "' time='" + strconv.FormatInt(r.reportMS, 10) + "'")
	}
	if typ != "" {
		b.WriteString(" type='" + typ + "'")
	}
	if cond != "" {
		b.WriteString(" condition='" + cond + "'")
	}
	if len(els) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteByte('>')
	for _, e := range els {
		b.Write(e)
	}
	b.WriteString("</body>")
	return b.Bytes()
}

var emptyBody = []byte("<body xmlns='" + NSHTTPBind + "'/>")

// fail ends the session with a terminal condition (no request to answer).
func (s *session) fail(cond string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.pushEOF()
	s.endLocked(reply{http.StatusOK, terminal(cond)}, nil)
}

// terminateLocked ends the session with cond: r gets the terminal body
// (with HTTP status code for a legacy client), as do the others waiting,
// and c2s sees the connection drop.
func (s *session) terminateLocked(cond string, code int, r *request) {
	s.h.log.Debug("BOSH session terminated", "sid", s.sid, "condition", cond)
	s.conn.pushEOF()
	s.endLocked(reply{s.status(code), terminal(cond)}, r)
}

// endLocked closes the session: r (if any) gets rep, every other request
// held or waiting gets rep's body too (or a plain terminate), and later
// requests get item-not-found.
func (s *session) endLocked(rep reply, r *request) {
	if s.closed {
		return
	}
	s.closed = true
	s.h.remove(s)
	if s.idle != nil {
		s.idle.Stop()
	}
	if r != nil {
		s.unhold(r)
		s.send(r, rep)
	}
	rest := reply{http.StatusOK, []byte("<body xmlns='" + NSHTTPBind + "' type='terminate'/>")}
	if rep.body != nil && bytes.Contains(rep.body, []byte("condition=")) && !bytes.Contains(rep.body, []byte("remote-stream-error")) {
		rest = rep
	}
	for _, o := range s.held {
		o.timer.Stop()
		o.rep <- rest
	}
	s.held = nil
	for _, o := range s.gap {
		o.rep <- rest
	}
	s.gap = nil
	select {
	case s.drained <- struct{}{}: // wake a writer waiting for room
	default:
	}
}
