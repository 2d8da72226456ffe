package websocket

import (
	"net"
	"testing"

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
