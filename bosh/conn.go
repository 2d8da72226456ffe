package bosh

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"xmppd.dev/xmppd/internal/xmlsplit"
)

// conn is a BOSH session seen by c2s as the byte stream of a TCP client:
// reads yield the stream headers and payloads of the session's requests
// in rid order (pushed by the session), and io.EOF once the transport
// ends; writes are split into top-level elements that the session puts
// in its responses, the stream header giving the session's from and
// authid and </stream:stream> ending it.
type conn struct {
	s      *session
	local  net.Addr
	remote net.Addr

	imu    sync.Mutex
	in     [][]byte      // guarded by imu
	queued int           // bytes in in; guarded by imu
	eof    bool          // guarded by imu: nothing more comes after in
	ready  chan struct{} // signalled when in or eof changes
	closed chan struct{} // closed by Close
	once   sync.Once

	// Owned by Read (c2s's reading goroutine).
	pending []byte
	timer   *time.Timer

	dmu       sync.Mutex
	rDeadline time.Time     // guarded by dmu
	rChanged  chan struct{} // signalled when rDeadline changes
	wDeadline time.Time     // guarded by dmu

	// Owned by Write (c2s's single writer at a time).
	wpending []byte
}

func newConn(s *session, local, remote net.Addr) *conn {
	return &conn{
		s:        s,
		local:    local,
		remote:   remote,
		ready:    make(chan struct{}, 1),
		closed:   make(chan struct{}),
		rChanged: make(chan struct{}, 1),
	}
}

// push queues b for c2s to read; it never blocks.
func (c *conn) push(b []byte) {
	c.imu.Lock()
	if !c.eof {
		c.in = append(c.in, b)
		c.queued += len(b)
	}
	c.imu.Unlock()
	c.signal()
}

// backlog is how many bytes wait for c2s to read them (but for the part
// of one payload Read holds, which is Read's own).
func (c *conn) backlog() int {
	c.imu.Lock()
	defer c.imu.Unlock()
	return c.queued
}

// abort ends what c2s reads now, dropping what is queued.
func (c *conn) abort() {
	c.imu.Lock()
	c.in, c.queued, c.eof = nil, 0, true
	c.imu.Unlock()
	c.signal()
}

// pushEOF ends what c2s reads, after what is queued.
func (c *conn) pushEOF() {
	c.imu.Lock()
	c.eof = true
	c.imu.Unlock()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// Read serves the queued payloads, waiting no longer than the read
// deadline.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
		c.imu.Lock()
		if len(c.in) > 0 {
			c.pending = c.in[0]
			c.queued -= len(c.pending)
			c.in[0] = nil
			c.in = c.in[1:]
			c.imu.Unlock()
			continue
		}
		eof := c.eof
		c.imu.Unlock()
		if eof {
			return 0, io.EOF
		}
		c.dmu.Lock()
		d := c.rDeadline
		c.dmu.Unlock()
		var expire <-chan time.Time
		if !d.IsZero() {
			wait := time.Until(d)
			if wait <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			if c.timer == nil {
				c.timer = time.NewTimer(wait)
			} else {
				c.timer.Reset(wait)
			}
			expire = c.timer.C
		}
		select {
		case <-c.ready:
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.rChanged:
		case <-expire:
		}
		if c.timer != nil {
			c.timer.Stop()
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write hands what c2s wrote to the session, element by element. It
// waits while the session has more than outMax bytes unsent (the client
// is not fetching), up to the write deadline, as a full socket buffer
// makes a TCP write wait.
func (c *conn) Write(p []byte) (int, error) {
	if err := c.waitRoom(); err != nil {
		return 0, err
	}
	b := p
	if len(c.wpending) > 0 {
		b = append(c.wpending, p...)
		c.wpending = nil
	}
	var els [][]byte
	s := c.s
	for len(b) > 0 {
		k, n := xmlsplit.Next(b)
		switch k {
		case xmlsplit.Incomplete:
			c.wpending = append([]byte(nil), b...)
			b = nil
			continue
		case xmlsplit.Header:
			_, attrs := xmlsplit.StartTag(b[:n], nil)
			s.mu.Lock()
			for _, a := range attrs {
				switch string(a.Name) {
				case "id":
					s.authid = string(a.Value)
				case "from":
					s.from = string(a.Value)
				}
			}
			s.features = false
			s.mu.Unlock()
		case xmlsplit.End:
			s.mu.Lock()
			s.out = append(s.out, els...)
			els = nil
			s.ended = true
			s.mu.Unlock()
		case xmlsplit.Element:
			el := xmlsplit.AppendQualified(nil, b[:n])
			els = append(els, el)
			s.mu.Lock()
			switch {
			case bytes.HasPrefix(el, []byte("<stream:features")):
				s.features = true
			case bytes.HasPrefix(el, []byte("<stream:error")):
				s.errored = true
			}
			s.mu.Unlock()
		}
		b = b[n:]
	}
	s.mu.Lock()
	closed := s.closed
	for _, e := range els {
		s.out = append(s.out, e)
		s.outBytes += len(e)
	}
	s.deliver()
	s.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

// waitRoom waits until the session has room for more output.
func (c *conn) waitRoom() error {
	s := c.s
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		s.mu.Lock()
		closed, full := s.closed, s.outBytes > s.outMax
		s.mu.Unlock()
		switch {
		case closed:
			return net.ErrClosed
		case !full:
			return nil
		}
		c.dmu.Lock()
		d := c.wDeadline
		c.dmu.Unlock()
		var expire <-chan time.Time
		if !d.IsZero() {
			wait := time.Until(d)
			if wait <= 0 {
				return os.ErrDeadlineExceeded
			}
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			expire = t.C
		}
		select {
		case <-s.drained:
		case <-c.closed:
			return net.ErrClosed
		case <-expire:
		}
	}
}

// Close ends the stream as c2s sees it: the session's next answer is a
// terminal one.
func (c *conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		s := c.s
		s.mu.Lock()
		if !s.ended {
			s.ended, s.broken = true, true
		}
		s.deliver()
		s.mu.Unlock()
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	c.rDeadline = t
	c.dmu.Unlock()
	select {
	case c.rChanged <- struct{}{}:
	default:
	}
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.wDeadline = t
	c.dmu.Unlock()
	return nil
}

var _ net.Conn = (*conn)(nil)
