package c2s

import (
	"net"
	"testing"
	"time"
)

// TestSendRoom: a socket whose peer reads has room for a stanza; once the
// peer stops reading and the buffers fill, it has none, so a delivering
// goroutine would hand the write to a flush worker rather than block.
func TestSendRoom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	defer peer.Close() // never read: the buffers fill

	r := newSendRoom(c)
	if r.raw == nil || r.sndbuf <= 0 {
		t.Fatalf("newSendRoom on a TCP socket: %+v", r)
	}
	if !r.room(500) {
		t.Fatal("no room for 500 bytes on a fresh socket")
	}
	if r.room(r.sndbuf) {
		t.Fatal("room for a whole send buffer's worth at once")
	}
	// Fill until a write would block, telling r of every write as the
	// session's writer does.
	buf := make([]byte, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Write(buf)
		r.wrote(n)
		if err != nil {
			break
		}
	}
	if r.room(100) {
		t.Fatal("room for 100 bytes on a socket whose peer has not read anything")
	}
	// Once the peer has read everything, the kernel is asked again and
	// there is room.
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for !r.room(500) {
		if _, err := peer.Read(buf); err != nil {
			t.Fatalf("no room for 500 bytes while the peer reads: %v", err)
		}
	}

	// Within the bound of what the kernel may still hold, room answers
	// without a system call: it still answers after the socket is closed.
	r.wrote(500)
	c.Close()
	if !r.room(500) {
		t.Fatal("a check within the bound asked the kernel (the closed socket said no)")
	}
	// Past the bound it asks, and a socket it cannot ask has no room.
	if r.room(r.sndbuf / 2) {
		t.Fatal("room past the bound on a closed socket")
	}
	if r.bound != -1 {
		t.Fatalf("bound %d after a failed check, want -1 (unknown)", r.bound)
	}

	var none sendRoom
	if none.room(1) {
		t.Fatal("the zero sendRoom has room")
	}
}
