package c2s

import (
	"log/slog"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// poller is the parking lot's watcher on Linux: one epoll instance over
// the sockets of every parked session. A session's socket is armed
// one-shot, so each parking produces at most one event.
//
// The socket stays registered with Go's own netpoller too; epoll allows a
// descriptor in several instances, and ours only reports readiness.
//
// Our epoll descriptor is itself registered with Go's netpoller (an epoll
// instance is readable while it has events), and run drains it with
// epoll_wait(0) when the runtime says it is readable. Blocking a thread in
// epoll_wait instead cost a thread wake-up and a hand-off of the P for
// every wave of waking sessions, and kept sysmon polling every 20 µs
// while the thread sat in the system call (10 % of the server's CPU while
// 10,000 sessions woke at 500 a second).
type poller struct {
	epfd int
	f    *os.File // epfd, in Go's netpoller
	raw  syscall.RawConn
	log  *slog.Logger

	mu     sync.RWMutex // held for reading while arming, for writing while closing
	closed bool         // guarded by mu
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller(log *slog.Logger) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile puts it in the netpoller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "c2s-parking-epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{epfd: epfd, f: f, raw: raw, log: log}, nil
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
		err := epollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
		if err != syscall.ENOENT {
			return err
		}
		// The descriptor was closed and its number reused: register anew.
	}
	return epollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// epollCtl is syscall.EpollCtl without entering the scheduler's system
// call state: epoll_ctl does not block.
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// epollPoll collects the events ready now, without waiting.
func epollPoll(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// run reports the id of every session whose socket became ready to ready,
// until close.
func (p *poller) run(ready func(id uint64)) {
	events := make([]syscall.EpollEvent, 256)
	var pollErr error
	err := p.raw.Read(func(fd uintptr) bool {
		for {
			n, err := epollPoll(int(fd), events)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				pollErr = err
				return true
			}
			if n == 0 {
				return false // wait until the runtime sees it readable
			}
			for _, ev := range events[:n] {
				ready(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
			}
		}
	})
	if err == nil {
		err = pollErr
	}
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	if !closed {
		p.log.Error("epoll_wait failed; parked sessions will wake only by their timers", "err", err)
	}
}

// close stops run and closes the epoll descriptor; os.File's close waits
// for run's last epoll_wait, so none ever sees a closed descriptor.
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.f.Close()
}
