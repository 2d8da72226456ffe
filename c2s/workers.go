package c2s

import (
	"sync"
	"time"
)

// workers runs the short tasks of sessions (a flush of the send queue, the
// read loop of a session waking from the parking lot) on goroutines that
// stay for a while after their task. A new goroutine starts with a small
// stack and grows it, copying, on the way down the TLS and XML code; a
// kept one has grown it already. Idle workers wait at most workerIdle for
// the next task, so a burst leaves no goroutines behind.
type workers struct {
	tasks  chan func() // unbuffered: a send succeeds only if a worker waits
	timers sync.Pool   // *time.Timer, for the idle wait
}

const workerIdle = 2 * time.Second

func newWorkers() *workers { return &workers{tasks: make(chan func())} }

// run starts f on an idle worker, or on a new one if none waits.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	t, _ := w.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(workerIdle)
	} else {
		t.Reset(workerIdle)
	}
	defer func() {
		t.Stop()
		w.timers.Put(t)
	}()
	for {
		f()
		t.Reset(workerIdle)
		select {
		case f = <-w.tasks:
		case <-t.C:
			return
		}
	}
}
