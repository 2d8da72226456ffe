package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper waits for the sending goroutines. time.Sleep rounds short
// waits up to the millisecond when the process is otherwise idle (the Go
// runtime's poller waits in whole milliseconds), which put about 1 ms of
// the generator's own lateness into every latency it measured at low
// rates. A timerfd fires with the kernel's timer precision and wakes its
// goroutine through the same poller as the sockets, without holding a
// thread or a P while it waits.
type sleeper struct {
	f   *os.File // nil: fall back to time.Sleep
	fd  int      // f's descriptor (f.Fd would make it blocking)
	buf [8]byte
}

func newSleeper() *sleeper {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return &sleeper{}
	}
	return &sleeper{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}
}

func (s *sleeper) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if s.f != nil {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
		if err := unix.TimerfdSettime(s.fd, 0, &spec, nil); err == nil {
			if _, err := s.f.Read(s.buf[:]); err == nil {
				return
			}
		}
	}
	time.Sleep(d)
}

func (s *sleeper) close() {
	if s.f != nil {
		s.f.Close()
	}
}
