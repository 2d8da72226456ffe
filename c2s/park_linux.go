package c2s

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"
)

// poller is the parking lot's watcher on Linux: one epoll instance over
// the sockets of every parked session, read by one goroutine. A session's
// socket is armed one-shot, so each parking produces at most one event.
//
// The socket stays registered with Go's own netpoller too; epoll allows a
// descriptor in several instances, and ours only reports readiness.
type poller struct {
	epfd int
	wake [2]int // a pipe: a byte on it ends wait
	log  *slog.Logger

	mu     sync.RWMutex // held for reading while arming, for writing while closing
	closed bool         // guarded by mu
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// wakeID is the epoll data of the pipe that stops the loop; session ids
// start at 1.
const wakeID = 0

func newPoller(log *slog.Logger) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, log: log}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	return p, nil
}

// arm asks for one event on fd, tagged id, when it is readable, closed or
// failed. Readiness present when arming is reported at once.
func (p *poller) arm(fd int, id uint64, added bool) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	if added {
		err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
		if !errors.Is(err, syscall.ENOENT) {
			return err
		}
		// The descriptor was closed and its number reused: register anew.
	}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// run reports the id of every session whose socket became ready to ready,
// until close. It blocks an OS thread in epoll_wait, as a cgo call would.
func (p *poller) run(ready func(id uint64)) {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.log.Error("epoll_wait failed; parked sessions will wake only by their timers", "err", err)
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == wakeID {
				p.mu.Lock()
				p.closeFDs()
				p.mu.Unlock()
				return
			}
			ready(id)
		}
	}
}

// close stops run; the descriptors are closed by run itself, so that
// epoll_wait never waits on a closed descriptor.
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	syscall.Write(p.wake[1], []byte{0})
}

func (p *poller) closeFDs() {
	syscall.Close(p.epfd)
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}
