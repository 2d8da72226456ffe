package c2s

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendRoom tells whether a write of a few stanzas would go into the
// socket's send buffer at once. It looks at the bytes the kernel still
// holds (SIOCOUTQ) against the buffer's size, with room to spare for TLS
// framing and the kernel's own accounting.
type sendRoom struct {
	raw    syscall.RawConn // nil: never
	sndbuf int
}

func newSendRoom(c net.Conn) sendRoom {
	raw, ok := rawConn(c)
	if !ok {
		return sendRoom{}
	}
	var size int
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		size, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); cerr != nil || err != nil || size <= 0 {
		return sendRoom{}
	}
	return sendRoom{raw: raw, sndbuf: size}
}

// room reports whether n more bytes fit in the send buffer now. Only the
// session's single writer writes to the socket, so the answer holds until
// that writer writes.
func (r sendRoom) room(n int) bool {
	if r.raw == nil {
		return false
	}
	var queued int
	var err error
	if cerr := r.raw.Control(func(fd uintptr) {
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); cerr != nil || err != nil {
		return false
	}
	return queued+n+n/8+256 <= r.sndbuf/2
}
