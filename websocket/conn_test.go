package websocket

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	ws "github.com/gobwas/ws"
)

// frameConn is a socket that takes every write and reads in one frame each
// time.
type frameConn struct {
	net.Conn
	in []byte
}

func (*frameConn) Write(p []byte) (int, error)  { return len(p), nil }
func (f *frameConn) Read(p []byte) (int, error) { return copy(p, f.in), nil }

// TestConnAllocs: reading a stanza's message and writing a stanza's frame
// allocate nothing (the buffers are pooled, the frames built in place).
func TestConnAllocs(t *testing.T) {
	msg := []byte("<message from='a@localhost/r' to='b@localhost/x' type='chat' id='abc'><body>hello there</body></message>")
	f := &frameConn{in: ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame(msg)))}
	c := &conn{nc: f, max: 1 << 20, opened: true}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Write, want 0", n)
	}
	var p [512]byte
	if n := testing.AllocsPerRun(1000, func() {
		if n, err := c.Read(p[:]); err != nil || string(p[:n]) != string(msg) {
			t.Fatalf("Read: %q, %v", p[:n], err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Read, want 0", n)
	}
}

// readerConn is a socket that reads what r holds, then EOF.
type readerConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *readerConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (*readerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (*readerConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConnRead: whatever a client sends, Read returns bytes or an error,
// never panics, and never returns more than the stanza limit and one byte
// of a message.
func FuzzConnRead(f *testing.F) {
	frame := func(op ws.OpCode, fin bool, p string) []byte {
		return ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, fin, []byte(p))))
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	f.Add(frame(ws.OpText, true, open))
	f.Add(cat(frame(ws.OpText, true, open), frame(ws.OpText, false, "<message><bo"), frame(ws.OpPing, true, "x"), frame(ws.OpContinuation, true, "dy/></message>")))
	f.Add(cat(frame(ws.OpText, true, open), frame(ws.OpClose, true, "\x03\xe8")))
	f.Add(cat(frame(ws.OpText, true, open), frame(ws.OpText, true, "<message>"+strings.Repeat("x", 300)+"</message>")))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 200, 1, 2, 3, 4, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 256
		c := newConn(&readerConn{r: bytes.NewReader(in)}, nil, nil, nil, limit)
		var p [64]byte
		total := 0
		for range 10000 {
			n, err := c.Read(p[:])
			total += n
			if err != nil {
				return
			}
			if n == 0 {
				t.Fatal("Read returned nothing and no error")
			}
		}
		if total > len(in)*4+1000 {
			t.Fatalf("%d bytes read from %d", total, len(in))
		}
	})
}
