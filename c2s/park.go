package c2s

import (
	"crypto/tls"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// Parking. Most clients of an XMPP server are silent most of the time, and a
// goroutine blocked in Read holds a stack of 8 KiB or more for each of them,
// which the collector's heap target then counts again. A session whose client
// has sent nothing for Limits.ParkAfter therefore "parks": at a stanza
// boundary, with nothing buffered, its read goroutine hands the socket to
// the poller and returns. When the socket becomes readable (or is closed, or
// the keepalive is due) a worker (workers.go) picks the read loop up where
// it stopped. The TLS state stays in the session meanwhile; the decoder and
// the guard's read buffer do not (see readLoop), since at a stanza boundary
// they hold nothing a new decoder lacks.

var errPollerClosed = errors.New("c2s: poller closed")

// parkingLot holds the parked sessions of one Server.
type parkingLot struct {
	poll *poller

	mem memRelease // returns the memory parked sessions free to the OS

	mu     sync.Mutex
	closed bool                // guarded by mu
	next   uint64              // last id given out; guarded by mu
	parked map[uint64]*Session // guarded by mu
}

// parkState is a session's part in the lot.
type parkState struct {
	id     uint64      // guarded by lot.mu; 0 until first parked
	parked bool        // guarded by lot.mu: no goroutine reads the session
	timer  *time.Timer // keepalive while parked; guarded by lot.mu

	mu    sync.Mutex      // serialises arming
	raw   syscall.RawConn // the socket under TLS; owned by the reader
	fd    int             // guarded by mu
	added bool            // guarded by mu: fd is in the epoll set
}

func newParkingLot(p *poller) *parkingLot {
	l := &parkingLot{poll: p, parked: map[uint64]*Session{}}
	l.mem = memRelease{after: releaseAfterParks, interval: releaseInterval, delay: releaseDelay, release: debug.FreeOSMemory}
	go p.run(l.ready)
	return l
}

// park hands s's socket to the poller, to go on with s's read loop on a
// goroutine when the client sends something. keepalive, when not zero, is
// when the keepalive must act if the client stays silent. It reports
// whether the caller must stop reading: false means s could not park and
// the caller goes on reading with its own goroutine.
func (l *parkingLot) park(s *Session, keepalive time.Time) bool {
	ps := &s.park
	if ps.raw == nil {
		raw, ok := rawConn(s.conn.Conn)
		if !ok {
			return false
		}
		ps.raw = raw
	}
	if pc, ok := s.conn.Conn.(ParkableConn); ok && pc.Buffered() {
		return false // part of a frame came: the rest is on its way
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	if ps.id == 0 {
		l.next++
		ps.id = l.next
	}
	ps.parked = true
	l.parked[ps.id] = s
	if !keepalive.IsZero() {
		d := time.Until(keepalive)
		if ps.timer == nil {
			ps.timer = time.AfterFunc(d, func() { l.keepalive(s) })
		} else {
			ps.timer.Reset(d)
		}
	}
	l.mu.Unlock()

	// From here another goroutine may own the session: only the arming
	// below is left to do, under the session's own lock.
	ps.mu.Lock()
	var armErr error
	err := ps.raw.Control(func(fd uintptr) {
		armErr = l.poll.arm(int(fd), ps.id, ps.added && ps.fd == int(fd))
		if armErr == nil {
			ps.fd, ps.added = int(fd), true
		}
	})
	ps.mu.Unlock()
	if err == nil {
		err = armErr
	}
	if err == nil {
		l.mem.parked()
		return true
	}
	// Not armed (the socket is closing, or the poller is): unless something
	// woke the session meanwhile, its goroutine goes on reading and will
	// see why.
	return !l.take(s)
}

// rawConn finds the socket under c: a TCP connection, one under TLS, or
// a ParkableConn's.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

// take unparks s if it is parked; the caller then owns its read loop.
func (l *parkingLot) take(s *Session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.takeLocked(s)
}

func (l *parkingLot) takeLocked(s *Session) bool {
	ps := &s.park
	if !ps.parked {
		return false
	}
	ps.parked = false
	delete(l.parked, ps.id)
	if ps.timer != nil {
		ps.timer.Stop()
	}
	return true
}

// ready is called by the poller for a session whose socket is readable.
func (l *parkingLot) ready(id uint64) {
	l.mu.Lock()
	s := l.parked[id]
	ok := s != nil && l.takeLocked(s)
	l.mu.Unlock()
	if ok {
		s.srv.workers.run(s.wake)
	}
}

// wake resumes s if it is parked, so that its read loop sees its closed
// connection.
func (l *parkingLot) wake(s *Session) {
	if l.take(s) {
		s.srv.workers.run(s.wake)
	}
}

// keepalive runs the keepalive of a parked session: a ping after the
// client's silence, and the end of the session when that is not answered.
// The guard's keepalive fields belong to the lot while the session is
// parked.
func (l *parkingLot) keepalive(s *Session) {
	l.mu.Lock()
	if !s.park.parked {
		l.mu.Unlock()
		return
	}
	g := s.conn
	if !g.pinged {
		g.pinged = true
		s.park.timer.Reset(g.pingTimeout)
		l.mu.Unlock()
		s.ping()
		return
	}
	l.takeLocked(s)
	l.mu.Unlock()
	s.srv.workers.run(s.idleOut)
}

// close stops the poller; sessions still parked are woken when their
// connections close.
func (l *parkingLot) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.poll.close()
}
