package mam

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/storage"
)

// writer takes archived messages off the delivery path: the hooks hand
// them over in memory and one goroutine writes them in batches, every
// interval or as soon as a batch is full. A crash loses at most what
// waits here: one interval's messages. A failed write is retried, with the
// batch kept, until it succeeds or the queue reaches its limit; past the
// limit new messages are not archived (and counted), so an outage of the
// database costs the archive, never the delivery.
type writer struct {
	store    *storage.Archive
	interval time.Duration
	batch    int
	limit    int
	log      *slog.Logger
	failLog  *burstlog.Logger

	mu      sync.Mutex
	pending []storage.ArchivedMessage
	spare   []storage.ArchivedMessage // a written queue's array, for the next; guarded by mu
	writing int                       // messages flush took and has not written; guarded by mu
	added   uint64                    // messages ever handed over; guarded by mu
	settled uint64                    // of those, written or given up; guarded by mu
	dropped uint64                    // not archived: the queue was full; guarded by mu
	written sync.Cond

	kick chan struct{} // a full batch waits
	quit chan struct{}
	done chan struct{}
}

func newWriter(store *storage.Archive, interval time.Duration, batch, limit int, log *slog.Logger) *writer {
	w := &writer{
		store: store, interval: interval, batch: batch, limit: limit, log: log,
		failLog: burstlog.New(log, "mam: archive write failed; messages wait in memory", time.Minute),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	w.written.L = &w.mu
	return w
}

// add queues m for writing. It never blocks on storage.
func (w *writer) add(m storage.ArchivedMessage) {
	w.mu.Lock()
	if len(w.pending)+w.writing >= w.limit {
		w.dropped++
		n := w.dropped
		w.mu.Unlock()
		if n&(n-1) == 0 { // 1, 2, 4, 8…: counted in the log without a line per message
			w.log.Error("mam: archive queue full; messages not archived", "not_archived", n, "queue", w.limit)
		}
		return
	}
	w.pending = append(w.pending, m)
	w.added++
	full := len(w.pending) >= w.batch
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// run writes batches until stop.
func (w *writer) run() {
	defer close(w.done)
	t := time.NewTimer(w.interval)
	defer t.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-w.quit:
			return
		case <-w.kick:
		case <-t.C:
		}
		if err := w.flush(context.Background()); err != nil {
			backoff = min(max(2*backoff, w.interval), 5*time.Second)
		} else {
			backoff = 0
		}
		t.Reset(max(backoff, w.interval))
	}
}

// flush writes what is pending, a batch at a time. It takes the whole
// queue at once, so that adds meanwhile go to a fresh one and nothing
// is copied per batch; what a failure leaves unwritten goes back in
// front, in order.
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	todo := w.pending
	// The adds meanwhile go to the array the last flush wrote, so that
	// the queue does not grow from nothing after every flush.
	w.pending, w.spare = w.spare[:0], nil
	w.writing = len(todo)
	w.mu.Unlock()
	all := todo
	for len(todo) > 0 {
		n := min(len(todo), w.batch)
		if err := w.store.Append(ctx, todo[:n]); err != nil {
			w.mu.Lock()
			w.pending = append(todo, w.pending...)
			w.writing = 0
			waiting := len(w.pending)
			w.mu.Unlock()
			w.failLog.Fail(err, "waiting", waiting)
			return err
		}
		w.failLog.OK()
		todo = todo[n:]
		w.mu.Lock()
		w.settled += uint64(n)
		w.writing -= n
		w.written.Broadcast()
		w.mu.Unlock()
	}
	clear(all) // the stanzas are written: let them go
	w.mu.Lock()
	if w.spare == nil && cap(all) <= 4*w.batch {
		w.spare = all[:0]
	}
	w.mu.Unlock()
	return nil
}

// sync waits until everything added before the call is written, so that
// a query sees the messages its user just exchanged; it gives up after
// wait (the database is down: the query answers with what is stored).
func (w *writer) sync(wait time.Duration) {
	w.mu.Lock()
	target := w.added
	if w.settled >= target {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	timer := time.AfterFunc(wait, func() {
		w.mu.Lock()
		w.written.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(wait)
	w.mu.Lock()
	for w.settled < target && time.Now().Before(deadline) {
		w.written.Wait()
	}
	w.mu.Unlock()
}

// stop ends the writer and writes what is still pending, trying until ctx
// ends; what cannot be written is logged as lost.
func (w *writer) stop(ctx context.Context) error {
	close(w.quit)
	<-w.done
	for {
		err := w.flush(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			w.mu.Lock()
			lost := len(w.pending)
			w.mu.Unlock()
			w.log.Error("mam: archive not written at shutdown; messages lost from the archive", "lost", lost, "err", err)
			return fmt.Errorf("mam: %d archived messages not written: %w", lost, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
