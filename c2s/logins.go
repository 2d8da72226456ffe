package c2s

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"xmppd.dev/xmppd/storage"
)

// LoginNetworks remembers the networks accounts logged in from
// (storage.LoginNetworks satisfies it).
type LoginNetworks interface {
	// Record remembers logins; those of accounts that no longer exist are
	// skipped.
	Record(ctx context.Context, logins []storage.Login) error
	// Known reports whether account jid logged in from network at since or
	// later.
	Known(ctx context.Context, jid, network string, since time.Time) (bool, error)
	// DeleteOlderThan forgets networks last logged in from before t.
	DeleteOlderThan(ctx context.Context, t time.Time) (int64, error)
}

const (
	// loginQueueLen bounds the logins waiting to be written; past it a
	// login is not remembered (it will be at a later one).
	loginQueueLen = 4096
	// loginBatch is the most logins written in one statement.
	loginBatch = 256
	// loginFlushAfter is how long the first login of a batch waits for
	// others to be written with it.
	loginFlushAfter = time.Second
	// loginRewrite is how old the last write of a (account, network) may
	// get before a login from there is written again: a month-long memory
	// needs no finer time, and a client that reconnects all day writes
	// once.
	loginRewrite = 12 * time.Hour
	// loginRecentMax bounds the in-memory copy; when full it starts afresh
	// (storage has everything).
	loginRecentMax = 100_000
	// loginSweepEvery is how often networks older than the remembered
	// period are deleted.
	loginSweepEvery = time.Hour
	// loginWriteTimeout bounds one batch's write.
	loginWriteTimeout = 10 * time.Second
)

// loginMemory remembers the networks accounts logged in from, for the
// throttle's exemptions. Logins are written to storage by one goroutine,
// in batches, so that a login never waits for the write; the logins of
// this process are also kept in memory, so that one is known at once.
type loginMemory struct {
	store    LoginNetworks // immutable; never nil
	remember time.Duration // immutable; > 0
	log      *slog.Logger  // immutable

	queue chan storage.Login // closed by stop
	done  chan struct{}      // closed when run has returned

	mu sync.Mutex
	// recent maps account + " " + network to the latest login this
	// process wrote or queued for it; guarded by mu.
	recent  map[string]time.Time
	stopped bool // the queue is closed; guarded by mu
}

// newLoginMemory starts remembering logins in store for remember. Call
// stop to end its goroutine.
func newLoginMemory(store LoginNetworks, remember time.Duration, log *slog.Logger) *loginMemory {
	m := &loginMemory{
		store:    store,
		remember: remember,
		log:      log,
		queue:    make(chan storage.Login, loginQueueLen),
		done:     make(chan struct{}),
		recent:   map[string]time.Time{},
	}
	go m.run()
	return m
}

// add remembers a login of account from network at now. It never blocks.
func (m *loginMemory) add(account, network string, now time.Time) {
	k := account + " " + network
	m.mu.Lock()
	if last, ok := m.recent[k]; m.stopped || ok && now.Sub(last) < loginRewrite {
		m.mu.Unlock()
		return
	}
	if len(m.recent) >= loginRecentMax {
		clear(m.recent)
	}
	m.recent[k] = now
	// Sent under mu so that stop, which closes the queue under mu,
	// cannot close it in between.
	select {
	case m.queue <- storage.Login{JID: account, Network: network, At: now}:
	default:
		delete(m.recent, k) // try again at the next login
		m.log.Debug("login not remembered: queue full", "user", account)
	}
	m.mu.Unlock()
}

// known reports whether account logged in from network within the
// remembered period before now.
func (m *loginMemory) known(ctx context.Context, account, network string, now time.Time) (bool, error) {
	since := now.Add(-m.remember)
	m.mu.Lock()
	last, ok := m.recent[account+" "+network]
	m.mu.Unlock()
	if ok && !last.Before(since) {
		return true, nil
	}
	return m.store.Known(ctx, account, network, since)
}

// run writes queued logins in batches, and sweeps old ones, until stop.
// A batch waits up to loginFlushAfter for more logins to join it: one
// statement for many logins costs little more than one for one, and a
// login is known from memory in the meantime.
func (m *loginMemory) run() {
	defer close(m.done)
	sweep := time.NewTicker(loginSweepEvery)
	defer sweep.Stop()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	batch := make([]storage.Login, 0, loginBatch)
	for {
		select {
		case g, ok := <-m.queue:
			if !ok {
				m.write(batch)
				return
			}
			batch = append(batch, g)
			switch len(batch) {
			case 1:
				flush.Reset(loginFlushAfter)
			case loginBatch:
				flush.Stop()
				m.write(batch)
				batch = batch[:0]
			}
		case <-flush.C:
			m.write(batch)
			batch = batch[:0]
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(context.Background(), loginWriteTimeout)
			n, err := m.store.DeleteOlderThan(ctx, time.Now().Add(-m.remember))
			cancel()
			if err != nil {
				m.log.Warn("could not forget old login networks", "err", err)
			} else if n > 0 {
				m.log.Debug("forgot old login networks", "count", n)
			}
		}
	}
}

// write stores one batch. A failure loses it from storage, not from this
// process's memory; the next login after loginRewrite writes again.
func (m *loginMemory) write(batch []storage.Login) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), loginWriteTimeout)
	defer cancel()
	if err := m.store.Record(ctx, batch); err != nil {
		m.log.Warn("could not remember login networks", "logins", len(batch), "err", err)
	}
}

// stop writes what is queued and ends the goroutine, or gives up when ctx
// ends first.
func (m *loginMemory) stop(ctx context.Context) {
	m.mu.Lock()
	if !m.stopped {
		m.stopped = true
		close(m.queue)
	}
	m.mu.Unlock()
	select {
	case <-m.done:
	case <-ctx.Done():
	}
}
