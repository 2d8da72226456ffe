package c2s

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns a sockConn and the other end of a loopback connection.
func tcpPair(t *testing.T) (*sockConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := newSockConn(c).(*sockConn)
	if !ok {
		t.Fatalf("newSockConn(%T) did not wrap it", c)
	}
	t.Cleanup(func() { sc.Close(); peer.Close() })
	return sc, peer
}

// TestSockConn checks that the raw reads and writes behave as net.TCPConn's
// do where the server depends on it: data both ways, a write larger than
// the socket's buffers finishing once the peer reads, deadlines, the end
// of the stream and errors the read loop classifies as network errors.
func TestSockConn(t *testing.T) {
	t.Run("data", func(t *testing.T) {
		sc, peer := tcpPair(t)
		if _, err := peer.Write([]byte("<presence/>")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := sc.Read(buf)
		if err != nil || string(buf[:n]) != "<presence/>" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		// 8 MiB is far beyond loopback's socket buffers: the write must
		// wait for the peer in the netpoller and then finish.
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19)
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
			got <- b
		}()
		if n, err := sc.Write(big); err != nil || n != len(big) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if b := <-got; !bytes.Equal(b, big) {
			t.Fatalf("peer read %d bytes, not what was written", len(b))
		}
	})
	t.Run("deadline", func(t *testing.T) {
		sc, _ := tcpPair(t)
		sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := sc.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past the deadline = %v, want a timeout", err)
		}
		sc.SetReadDeadline(time.Time{})
	})
	t.Run("eof", func(t *testing.T) {
		sc, peer := tcpPair(t)
		peer.Close()
		if _, err := sc.Read(make([]byte, 8)); err != io.EOF {
			t.Fatalf("Read after the peer closed = %v, want io.EOF", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		sc, peer := tcpPair(t)
		peer.(*net.TCPConn).SetLinger(0) // close with RST
		peer.Close()
		time.Sleep(20 * time.Millisecond)
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = sc.Write([]byte("<message/>"))
		}
		if err == nil || !isNetError(err) {
			t.Fatalf("Write after a reset = %v, want a network error", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		sc, _ := tcpPair(t)
		done := make(chan error)
		go func() {
			_, err := sc.Read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		sc.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) || !isNetError(err) {
			t.Fatalf("Read when closed = %v, want net.ErrClosed", err)
		}
	})
}
