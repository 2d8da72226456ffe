package websocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	ws "github.com/coder/websocket"
)

// conn is a WebSocket carrying RFC 7395 framing, seen by c2s as the byte
// stream of a TCP client: reads yield a stream header for each <open/>,
// the elements of the messages as they are, and </stream:stream> for
// <close/>; writes are split into top-level elements, one message each,
// the stream header becoming <open/> and </stream:stream> <close/>.
//
// A goroutine of its own (readFrames) reads messages, since the
// library closes the connection when a read's context ends: c2s's read
// deadlines (handshake, keepalive) bound the wait for that goroutine's
// next message instead.
type conn struct {
	ws     *ws.Conn
	local  net.Addr
	remote net.Addr
	max    int // the stanza limit: a longer message is passed on to c2s, which refuses it

	in     chan []byte   // translated messages, from readFrames
	inErr  error         // why readFrames stopped; set before done closes
	done   chan struct{} // closed when readFrames stops
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
	wpending []byte // an incomplete element, waiting for the rest
	frame    []byte
}

func newConn(c *ws.Conn, local, remote net.Addr, max int) *conn {
	cn := &conn{
		ws:       c,
		local:    local,
		remote:   remote,
		max:      max,
		in:       make(chan []byte),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
		rChanged: make(chan struct{}, 1),
	}
	// The library's own limit is off: readFrames bounds what it reads.
	c.SetReadLimit(-1)
	go cn.readFrames()
	return cn
}

// readFrames reads messages, checks their framing and hands them to Read
// translated, until the connection ends or breaks RFC 7395's framing (the
// error then goes to c2s as a syntax error after what came before it).
func (c *conn) readFrames() {
	defer close(c.done)
	first := true
	for {
		err := c.readFrame(&first)
		if err != nil {
			c.inErr = err
			return
		}
	}
}

func (c *conn) readFrame(first *bool) error {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		if s := ws.CloseStatus(err); s == ws.StatusNormalClosure || s == ws.StatusGoingAway {
			return io.EOF
		}
		return err
	}
	if typ != ws.MessageText {
		return framingError("binary WebSocket messages are not allowed (RFC 7395 §3.2)")
	}
	msg, err := io.ReadAll(io.LimitReader(r, int64(c.max)+1))
	if err != nil {
		return err
	}
	if len(msg) > c.max {
		// c2s counts the bytes and ends the stream with
		// <policy-violation/>, as over TCP.
		c.send(msg)
		return errors.New("websocket: message exceeds the stanza limit")
	}
	msg = bytes.TrimSpace(msg)
	f, isFraming, err := parseFraming(msg)
	if err != nil {
		return err
	}
	switch {
	case isFraming && !f.close:
		*first = false
		return c.send(appendHeader(nil, f.attrs))
	case isFraming:
		if *first {
			return framingError("the first message must be <open/> (RFC 7395 §3.4)")
		}
		return c.send(streamEnd)
	case *first:
		if len(msg) == 0 {
			return nil
		}
		// c2s answers it as a TCP stream that does not start with a
		// stream header.
		*first = false
		return c.send(msg)
	}
	if len(msg) == 0 {
		return nil // a keepalive, of a sort
	}
	if msg[0] != '<' {
		return framingError("a message must hold one XML element (RFC 7395 §3.3.3)")
	}
	n := elementEnd(msg)
	if n < 0 {
		return framingError("a message must hold one complete XML element (RFC 7395 §3.3.3)")
	}
	if n < len(msg) {
		return framingError("a message must hold exactly one XML element (RFC 7395 §3.3.3)")
	}
	return c.send(msg)
}

// send hands b to Read; it fails once the connection is closed.
func (c *conn) send(b []byte) error {
	select {
	case c.in <- b:
		return nil
	case <-c.closed:
		return net.ErrClosed
	}
}

// Read serves the translated messages, waiting no longer than the read
// deadline.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
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
		case b := <-c.in:
			c.pending = b
		case <-c.done:
			// What readFrames sent before it stopped was taken by the
			// case above (the channel is unbuffered).
			if c.inErr != nil {
				return 0, c.inErr
			}
			return 0, io.EOF
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

// Write sends what c2s wrote, one message per top-level element.
func (c *conn) Write(p []byte) (int, error) {
	ctx := context.Background()
	c.dmu.Lock()
	d := c.wDeadline
	c.dmu.Unlock()
	if !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	b := p
	if len(c.wpending) > 0 {
		b = append(c.wpending, p...)
		c.wpending = nil
	}
	for {
		// White space between elements has no message of its own
		// (RFC 7395 §3.3.3).
		i := 0
		for i < len(b) && isTagSpace(b[i]) {
			i++
		}
		b = b[i:]
		if len(b) == 0 {
			return len(p), nil
		}
		var err error
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			j := bytes.Index(b, []byte("?>"))
			if j < 0 {
				c.wpending = append([]byte(nil), b...)
				return len(p), nil
			}
			b = b[j+2:]
			continue
		case bytes.HasPrefix(b, []byte("<stream:stream")):
			n, _ := tagEnd(b)
			if n < 0 {
				c.wpending = append([]byte(nil), b...)
				return len(p), nil
			}
			c.frame = appendOpen(c.frame[:0], b[:n])
			b = b[n:]
		case bytes.HasPrefix(b, streamEnd):
			c.frame = append(c.frame[:0], closeFrame...)
			b = b[len(streamEnd):]
		default:
			n := elementEnd(b)
			if n < 0 {
				c.wpending = append([]byte(nil), b...)
				return len(p), nil
			}
			c.frame = appendQualified(c.frame[:0], b[:n])
			b = b[n:]
		}
		if err = c.ws.Write(ctx, ws.MessageText, c.frame); err != nil {
			if ctx.Err() != nil {
				return 0, os.ErrDeadlineExceeded
			}
			return 0, err
		}
	}
}

// Close ends the WebSocket with a normal closure (after the <close/> c2s
// had written, where it had).
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		err = c.ws.Close(ws.StatusNormalClosure, "")
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
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
