package c2s

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockConn is a client's TCP connection whose reads and writes enter the
// kernel without telling Go's scheduler (RawSyscall inside RawConn.Read and
// Write, which still wait in the netpoller, with deadlines, when the
// socket is not ready).
//
// Why: a blocking-capable system call (net.Conn's Read and Write) wakes the
// runtime's sysmon thread whenever it was asleep because every P was idle,
// and sysmon then polls every 20 µs for a millisecond; one that lasts more
// than 20 µs, as a loopback write that runs the receiver's TCP stack does,
// has its P handed to another thread. At a few thousand messages a second
// the server is idle between messages, so each message paid for those
// thread wake-ups (perf at 5,000 msgs/s: sysmon 23 % of the server's
// samples). Socket reads and writes here never block (the socket is
// non-blocking), so the scheduler loses nothing by not knowing.
type sockConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

// newSockConn wraps c when it is a TCP connection.
func newSockConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &sockConn{TCPConn: tc, raw: raw}
}

func (c *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the netpoller
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *sockConn) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // the send buffer is full: wait in the netpoller
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = c.opError("write", errno)
	}
	return n, err
}

// opError is the error net.TCPConn would have returned.
func (c *sockConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// peekByte returns the first byte the peer sent, without taking it off
// the socket; it waits for one like Read. ok is false when c is not a
// socket it can peek at.
func peekByte(c net.Conn) (b byte, ok bool, err error) {
	sc, isSock := c.(syscall.Conn)
	if !isSock {
		return 0, false, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var buf [1]byte
	var n int
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
			switch rerr {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the netpoller
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, true, err
	case rerr != nil:
		return 0, true, os.NewSyscallError("recvfrom", rerr)
	case n == 0:
		return 0, true, io.EOF
	}
	return buf[0], true, nil
}
