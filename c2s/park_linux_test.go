package c2s

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// TestPollerEvents drives the parking lot's epoll watcher directly: an
// armed socket reports its id once per arming, a closed peer counts as
// readable, and close ends run without logging a failure.
func TestPollerEvents(t *testing.T) {
	var logged bytes.Buffer
	p, err := newPoller(slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan uint64, 16)
	done := make(chan struct{})
	go func() {
		p.run(func(id uint64) { ready <- id })
		close(done)
	}()

	sc, peer := tcpPair(t)
	defer sc.Close()
	fd := sockFD(t, sc)
	const id = 1<<40 + 7 // both halves of the epoll data are used
	expect := func(what string) {
		t.Helper()
		select {
		case got := <-ready:
			if got != id {
				t.Fatalf("%s: ready(%d), want %d", what, got, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case got := <-ready:
			t.Fatalf("%s: unexpected ready(%d)", what, got)
		case <-time.After(100 * time.Millisecond):
		}
	}

	if err := p.arm(fd, id, false); err != nil {
		t.Fatal(err)
	}
	quiet("armed, nothing sent")
	peer.Write([]byte("<a/>"))
	expect("data")
	peer.Write([]byte("<b/>"))
	quiet("one-shot: not re-armed")
	if err := p.arm(fd, id, true); err != nil {
		t.Fatal(err)
	}
	expect("re-armed with unread data") // readiness present when arming counts

	buf := make([]byte, 64)
	if _, err := sc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := p.arm(fd, id, true); err != nil {
		t.Fatal(err)
	}
	quiet("re-armed, drained")
	peer.Close()
	expect("peer closed")

	p.close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after close")
	}
	if err := p.arm(fd, id, true); err != errPollerClosed {
		t.Fatalf("arm after close: %v, want errPollerClosed", err)
	}
	if logged.Len() != 0 {
		t.Fatalf("close logged: %s", logged.String())
	}
	p.close() // a second close is harmless
}

func sockFD(t *testing.T, sc *sockConn) int {
	t.Helper()
	raw, ok := rawConn(sc)
	if !ok {
		t.Fatal("no raw conn")
	}
	var fd int
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}
