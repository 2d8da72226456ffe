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
//
// Asking the kernel costs a system call per delivery (4 % of the server's
// CPU at its maximum message rate), so it keeps an upper bound of what the
// kernel holds instead: the send queue only shrinks, except by this
// session's own writes, which the writer adds with wrote. While the bound
// leaves room, room answers without asking; when it does not, room asks
// and starts the bound afresh from the answer.
type sendRoom struct {
	raw    syscall.RawConn // nil: never
	sndbuf int
	bound  int // at least the bytes the kernel still holds; -1: unknown
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
	return sendRoom{raw: raw, sndbuf: size, bound: -1}
}

// room reports whether n more bytes fit in the send buffer now. Only the
// session's single writer writes to the socket, so the answer holds until
// that writer writes; it must then call wrote.
func (r *sendRoom) room(n int) bool {
	if r.raw == nil {
		return false
	}
	if r.bound >= 0 && r.bound+sendCost(n) <= r.sndbuf/2 {
		return true
	}
	var queued int
	var err error
	if cerr := r.raw.Control(func(fd uintptr) {
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); cerr != nil || err != nil {
		r.bound = -1
		return false
	}
	r.bound = queued
	return queued+sendCost(n) <= r.sndbuf/2
}

// wrote adds n bytes of stanzas written to the socket to the bound.
func (r *sendRoom) wrote(n int) {
	if r.bound >= 0 {
		r.bound += sendCost(n)
	}
}

// sendCost is what n bytes of stanzas may take in the send queue: with TLS
// framing (22 bytes per record of at most 16 KiB) and the kernel's own
// accounting, generously.
func sendCost(n int) int { return n + n/8 + 256 }
