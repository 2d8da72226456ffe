package websocket

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"xmppd.dev/xmppd/internal/xmlsplit"

	ws "github.com/gobwas/ws"

	"xmppd.dev/xmppd/c2s"
)

// conn is a WebSocket (RFC 6455) carrying RFC 7395 framing, seen by c2s as
// the byte stream of a TCP client: reads yield a stream header for each
// <open/>, the elements of the messages as they are, and </stream:stream>
// for <close/>; writes are split into top-level elements, one message
// each, the stream header becoming <open/> and </stream:stream> <close/>.
//
// It reads and writes frames on the hijacked connection itself, with no
// goroutine of its own: c2s's reader calls Read, which reads frames,
// answers pings and translates messages; c2s's writer calls Write. Between
// messages it holds no buffer and nothing read from the socket (Buffered),
// and it names its socket (SyscallConn), so that c2s parks an idle session
// as it parks a TCP one (c2s.ParkableConn). Deadlines are the socket's.
type conn struct {
	nc     net.Conn // the hijacked connection: TCP, or TLS over TCP
	local  net.Addr
	remote net.Addr
	max    int // the stanza limit: a longer message is passed on to c2s, which refuses it

	// Owned by Read (c2s's reading goroutine, one at a time).
	rb     *[]byte // bytes read from nc; nil while nothing is in flight
	r0, r1 int     // (*rb)[r0:r1] are read and not parsed yet
	inMsg  bool    // a fragmented message is being received
	msg    []byte  // its fragments so far
	out    []byte  // what Read still has to return of the last message
	opened bool    // an <open/> (or what c2s takes for a stream start) came
	rerr   error   // what ended reading, returned once out is drained

	wmu       sync.Mutex // serialises writes: c2s's writer, Read's pongs, Close
	wpending  []byte     // an incomplete element, waiting for the rest; guarded by wmu
	closeSent bool       // guarded by wmu: no data frame may follow

	// dmu guards wDeadline, the write deadline c2s set: a pong must not
	// be written under it (it expires while c2s has nothing to send, and
	// a timed-out write breaks a TLS connection for good), so writeControl
	// writes under its own and puts c2s's back. Not wmu: c2s may move the
	// deadline to end a write that holds wmu.
	dmu       sync.Mutex
	wDeadline time.Time
	closeOnce sync.Once
}

// rbSize is the size of a pooled read buffer; a frame longer than that
// gets a buffer of its own, up to the stanza limit.
const rbSize = 4096

var (
	readBufs  = sync.Pool{New: func() any { b := make([]byte, rbSize); return &b }}
	writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, rbSize); return &b }}
)

// closeTimeout bounds the write of a close frame: a peer that reads
// nothing does not hold the connection open.
const closeTimeout = 500 * time.Millisecond

// newConn adapts nc, just upgraded; pending are bytes the HTTP server had
// read past the handshake.
func newConn(nc net.Conn, pending []byte, local, remote net.Addr, limit int) *conn {
	c := &conn{nc: nc, local: local, remote: remote, max: limit}
	if len(pending) > 0 {
		b := make([]byte, max(rbSize, len(pending)))
		c.r1 = copy(b, pending)
		c.rb = &b
	}
	return c
}

// Read serves the translated messages.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.rerr != nil {
			c.release()
			return 0, c.rerr
		}
		if err := c.readMessage(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.release() // a deadline: what is in flight stays
				return 0, err
			}
			c.rerr = err // after what readMessage left in out
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
		c.release()
	}
	return n, nil
}

// Buffered reports whether bytes read from the socket wait here: the
// session must not park then (c2s.ParkableConn).
func (c *conn) Buffered() bool {
	return c.r0 < c.r1 || c.inMsg || len(c.out) > 0
}

// release gives the read buffer back when nothing is in flight.
func (c *conn) release() {
	if c.rb == nil || c.r0 < c.r1 || len(c.out) > 0 {
		return
	}
	if len(*c.rb) == rbSize {
		readBufs.Put(c.rb)
	}
	c.rb, c.r0, c.r1 = nil, 0, 0
}

// fill makes the read buffer hold at least n unparsed bytes. Called only
// with out empty, since it may move what the buffer holds.
func (c *conn) fill(n int) error {
	if c.rb == nil {
		c.rb = readBufs.Get().(*[]byte)
	}
	for c.r1-c.r0 < n {
		b := *c.rb
		switch {
		case n > len(b):
			nb := make([]byte, max(n, 2*len(b)))
			c.r1 = copy(nb, b[c.r0:c.r1])
			c.r0 = 0
			if len(b) == rbSize {
				readBufs.Put(c.rb)
			}
			c.rb = &nb
			b = nb
		case c.r0+n > len(b):
			c.r1 = copy(b, b[c.r0:c.r1])
			c.r0 = 0
		}
		m, err := c.nc.Read(b[c.r1:])
		c.r1 += m
		if err != nil && c.r1-c.r0 < n {
			if err == io.EOF && c.r1 > c.r0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// header is a frame's header as read.
type header struct {
	fin    bool
	rsv    byte
	op     ws.OpCode
	masked bool
	mask   [4]byte
	length int64
	size   int // of the header itself
}

// readHeader parses the header at the start of the read buffer, reading
// more as needed.
func (c *conn) readHeader() (header, error) {
	if err := c.fill(2); err != nil {
		return header{}, err
	}
	b := (*c.rb)[c.r0:c.r1]
	h := header{
		fin:    b[0]&0x80 != 0,
		rsv:    b[0] & 0x70,
		op:     ws.OpCode(b[0] & 0x0f),
		masked: b[1]&0x80 != 0,
		size:   2,
	}
	l := int64(b[1] & 0x7f)
	switch l {
	case 126:
		h.size += 2
	case 127:
		h.size += 8
	}
	if h.masked {
		h.size += 4
	}
	if err := c.fill(h.size); err != nil {
		return header{}, err
	}
	b = (*c.rb)[c.r0:c.r1]
	i := 2
	switch l {
	case 126:
		l = int64(binary.BigEndian.Uint16(b[2:]))
		i += 2
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return header{}, c.protocolError("frame length with its top bit set")
		}
		l = int64(u)
		i += 8
	}
	h.length = l
	if h.masked {
		copy(h.mask[:], b[i:i+4])
	}
	return h, nil
}

// readMessage reads frames until a message is complete, answering control
// frames, and leaves its translation in out (nothing for an empty
// message).
func (c *conn) readMessage() error {
	for {
		h, err := c.readHeader()
		if err != nil {
			return err
		}
		switch {
		case h.rsv != 0:
			return c.protocolError("reserved bits set without an extension")
		case !h.masked:
			return c.protocolError("client frames must be masked (RFC 6455 §5.1)")
		case h.op.IsReserved():
			return c.protocolError("reserved opcode")
		case h.op.IsControl():
			if !h.fin || h.length > 125 {
				return c.protocolError("control frames are at most 125 bytes and not fragmented")
			}
			if err := c.control(h); err != nil {
				return err
			}
			continue
		case h.op == ws.OpBinary:
			return framingError("binary WebSocket messages are not allowed (RFC 7395 §3.2)")
		case h.op == ws.OpText && c.inMsg:
			return c.protocolError("a new message before the last one's final fragment")
		case h.op == ws.OpContinuation && !c.inMsg:
			return c.protocolError("a continuation frame without a message")
		}
		if h.length > int64(c.max) || h.length+int64(len(c.msg)) > int64(c.max) {
			// c2s counts the bytes and ends the stream with
			// <policy-violation/>, as over TCP: it gets just past its
			// limit, never the whole message.
			want := c.max + 1 - len(c.msg)
			if err := c.fill(h.size + want); err != nil {
				return err
			}
			p := c.payload(h, want)
			c.out = append(c.msg, p...)
			c.msg, c.inMsg = nil, false
			return errors.New("websocket: message exceeds the stanza limit")
		}
		if err := c.fill(h.size + int(h.length)); err != nil {
			return err
		}
		p := c.payload(h, int(h.length))
		var msg []byte
		switch {
		case !h.fin:
			c.msg, c.inMsg = append(c.msg, p...), true
			continue
		case c.inMsg:
			msg = append(c.msg, p...)
			c.msg, c.inMsg = nil, false
		default:
			msg = p
		}
		out, err := c.translate(msg)
		if err != nil || len(out) > 0 {
			c.out = out
			return err
		}
	}
}

// payload unmasks the first n bytes of the payload of the frame at the
// start of the read buffer and takes the frame off the buffer; they stay
// valid until the next fill.
func (c *conn) payload(h header, n int) []byte {
	p := (*c.rb)[c.r0+h.size : c.r0+h.size+n]
	ws.Cipher(p, h.mask, 0)
	c.r0 += h.size + n
	return p
}

// control handles a ping, pong or close frame.
func (c *conn) control(h header) error {
	if err := c.fill(h.size + int(h.length)); err != nil {
		return err
	}
	p := c.payload(h, int(h.length))
	switch h.op {
	case ws.OpPing:
		// An error here shows up on the next read or write.
		c.writeControl(ws.OpPong, p, 0)
		return nil
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameDataUnsafe(p)
		if code.Empty() {
			code = ws.StatusNormalClosure
		}
		c.writeControl(ws.OpClose, closeBody(code), closeTimeout)
		return io.EOF // the client ended the stream, with or without <close/>
	}
	return nil // a pong
}

func closeBody(code ws.StatusCode) []byte {
	return binary.BigEndian.AppendUint16(nil, uint16(code))
}

// protocolError closes the WebSocket with 1002 for a frame that breaks
// RFC 6455 and returns what Read reports; no XMPP error can follow.
func (c *conn) protocolError(why string) error {
	c.writeControl(ws.OpClose, closeBody(ws.StatusProtocolError), closeTimeout)
	return &protocolError{why}
}

// protocolError is what Read returns after a frame that breaks RFC 6455:
// the WebSocket is closed (with 1002, RFC 6455 §7.4.1), so c2s ends the
// stream as a lost connection, with nothing more to write.
type protocolError struct{ why string }

func (e *protocolError) Error() string { return "websocket: protocol error: " + e.why }
func (e *protocolError) Unwrap() error { return net.ErrClosed }

// translate checks RFC 7395's framing of a message and returns what c2s
// reads for it.
func (c *conn) translate(msg []byte) ([]byte, error) {
	msg = bytes.TrimSpace(msg)
	f, isFraming, err := parseFraming(msg)
	if err != nil {
		return nil, err
	}
	switch {
	case isFraming && !f.close:
		c.opened = true
		return appendHeader(nil, f.attrs), nil
	case isFraming:
		if !c.opened {
			return nil, framingError("the first message must be <open/> (RFC 7395 §3.4)")
		}
		return streamEnd, nil
	case !c.opened:
		if len(msg) == 0 {
			return nil, nil
		}
		// c2s answers it as a TCP stream that does not start with a
		// stream header.
		c.opened = true
		return msg, nil
	}
	if len(msg) == 0 {
		return nil, nil // a keepalive, of a sort
	}
	if msg[0] != '<' {
		return nil, framingError("a message must hold one XML element (RFC 7395 §3.3.3)")
	}
	n := xmlsplit.ElementEnd(msg)
	if n < 0 {
		return nil, framingError("a message must hold one complete XML element (RFC 7395 §3.3.3)")
	}
	if n < len(msg) {
		return nil, framingError("a message must hold exactly one XML element (RFC 7395 §3.3.3)")
	}
	return msg, nil
}

// writeControl sends a control frame, unless a close frame went before,
// within timeout (closeTimeout when zero); c2s's write deadline is put
// back after it, but for a close frame, after which nothing is written.
func (c *conn) writeControl(op ws.OpCode, payload []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if op == ws.OpClose {
		c.closeSent = true
	}
	var buf [2 + 125]byte
	buf[0] = 0x80 | byte(op)
	buf[1] = byte(len(payload))
	n := 2 + copy(buf[2:], payload)
	if timeout <= 0 {
		timeout = closeTimeout
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(buf[:n])
	if op != ws.OpClose {
		c.dmu.Lock()
		c.nc.SetWriteDeadline(c.wDeadline)
		c.dmu.Unlock()
	}
	return err
}

// Write sends what c2s wrote, one message per top-level element, all of
// them in one write.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return 0, net.ErrClosed
	}
	b := p
	if len(c.wpending) > 0 {
		b = append(c.wpending, p...)
		c.wpending = nil
	}
	bp := writeBufs.Get().(*[]byte)
	out := (*bp)[:0]
	for {
		// White space between elements has no message of its own
		// (RFC 7395 §3.3.3).
		i := 0
		for i < len(b) && xmlsplit.IsSpace(b[i]) {
			i++
		}
		b = b[i:]
		if len(b) == 0 {
			break
		}
		start := len(out)
		out = append(out, make([]byte, maxServerHeader)...)
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			out = out[:start]
			j := bytes.Index(b, []byte("?>"))
			if j < 0 {
				c.wpending = append([]byte(nil), b...)
				b = nil
				continue
			}
			b = b[j+2:]
			continue
		case bytes.HasPrefix(b, []byte("<stream:stream")):
			n, _ := xmlsplit.TagEnd(b)
			if n < 0 {
				out = out[:start]
				c.wpending = append([]byte(nil), b...)
				b = nil
				continue
			}
			out = appendOpen(out, b[:n])
			b = b[n:]
		case bytes.HasPrefix(b, streamEnd):
			out = append(out, closeFrame...)
			b = b[len(streamEnd):]
		default:
			n := xmlsplit.ElementEnd(b)
			if n < 0 {
				out = out[:start]
				c.wpending = append([]byte(nil), b...)
				b = nil
				continue
			}
			out = xmlsplit.AppendQualified(out, b[:n])
			b = b[n:]
		}
		out = frameText(out, start)
	}
	var err error
	if len(out) > 0 {
		_, err = c.nc.Write(out)
	}
	if cap(out) <= 64<<10 {
		*bp = out[:0]
		writeBufs.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// maxServerHeader is the longest header of an unmasked frame.
const maxServerHeader = 10

// frameText puts the header of a final text frame before the payload
// that follows maxServerHeader reserved bytes at out[start:], closing the
// gap when the header is shorter.
func frameText(out []byte, start int) []byte {
	payload := len(out) - start - maxServerHeader
	var h [maxServerHeader]byte
	h[0] = 0x80 | byte(ws.OpText)
	hs := 2
	switch {
	case payload < 126:
		h[1] = byte(payload)
	case payload <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(payload))
		hs = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(payload))
		hs = 10
	}
	copy(out[start:], h[:hs])
	if hs < maxServerHeader {
		copy(out[start+hs:], out[start+maxServerHeader:])
		out = out[:len(out)-(maxServerHeader-hs)]
	}
	return out
}

// CloseWrite ends the WebSocket from the server's side with a normal
// closure (after the <close/> c2s wrote, where it did); the connection
// stays open for the client's answering close frame, which ends the read
// side (RFC 6455 §7.1.1).
func (c *conn) CloseWrite() error {
	return c.writeControl(ws.OpClose, closeBody(ws.StatusNormalClosure), closeTimeout)
}

// Close sends a close frame if none went yet, bounded by closeTimeout,
// and closes the socket.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		// A write under way that the peer does not read fails now, so
		// that the close frame does not wait for it.
		c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
		c.writeControl(ws.OpClose, closeBody(ws.StatusNormalClosure), closeTimeout)
		err = c.nc.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// SyscallConn returns the socket under the WebSocket (and its TLS), for
// c2s to watch while the session is parked.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("websocket: not over a socket")
	}
	return sc.SyscallConn()
}

func (c *conn) LocalAddr() net.Addr               { return c.local }
func (c *conn) RemoteAddr() net.Addr              { return c.remote }
func (c *conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

func (c *conn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wDeadline = t
	return c.nc.SetDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wDeadline = t
	return c.nc.SetWriteDeadline(t)
}

var _ c2s.ParkableConn = (*conn)(nil)
