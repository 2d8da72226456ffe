package offline

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Store is what offline needs from storage; [storage.Offline] implements
// it. Push returns an error wrapping [storage.ErrLimit] when the message
// would take the account over lim, and only after the row is committed
// otherwise.
type Store interface {
	Push(ctx context.Context, jid string, stamp time.Time, stanza []byte, lim storage.OfflineLimits) (int64, error)
	List(ctx context.Context, jid string, after int64, limit int) ([]storage.OfflineMessage, error)
	Delete(ctx context.Context, ids ...int64) error
	DeleteOlderThan(ctx context.Context, t time.Time) (int64, error)
	// Queues lists the accounts that have messages (Start reads it once).
	Queues(ctx context.Context) ([]storage.OfflineQueue, error)
}

// Presence tells the service the priority of an available resource;
// [router.Router] implements it.
type Presence interface {
	Priority(j jid.JID) (prio int, available bool)
}

// The implementations server wires in.
var (
	_ Store    = (*storage.Offline)(nil)
	_ Presence = (*router.Router)(nil)
)

// Limits bound what the service keeps and how it delivers.
type Limits struct {
	// MaxMessages is the most messages kept per account; 0 turns offline
	// storage off (Register then registers nothing).
	MaxMessages int
	// MaxBytes is the most bytes kept per account, counting the stanzas
	// as stored (without the <delay/> added at delivery); 0 sets no
	// bound.
	MaxBytes int
	// MaxAge is how long a message is kept; older ones are swept.
	MaxAge time.Duration
	// SweepInterval is how often the sweep runs.
	SweepInterval time.Duration
	// BatchStanzas and BatchBytes bound one batch of delivery: what is
	// read from storage at once and queued to the session before waiting
	// for it to be written. Keep them below the session's send queue
	// bounds. A message larger than BatchBytes is sent in a batch of its
	// own. Zero means 100 stanzas and 1 MiB.
	BatchStanzas int
	BatchBytes   int
}

// Service stores undeliverable messages and delivers them at the next
// login. Create it with New, register it, Start it, and Stop it after the
// sessions have ended.
type Service struct {
	store    Store            // immutable
	presence Presence         // immutable
	domain   jid.JID          // immutable
	lim      Limits           // immutable
	log      *slog.Logger     // immutable
	now      func() time.Time // immutable
	// pushLog and readLog log storage failures of storing and of
	// delivering messages once per burst: an outage fails every one.
	pushLog *burstlog.Logger // immutable
	readLog *burstlog.Logger // immutable

	// ctx ends delivery; it is cancelled by Stop when its own ctx runs
	// out before the deliveries finish.
	ctx    context.Context
	cancel context.CancelFunc
	// sweepCtx ends the sweep goroutine; Stop cancels it first.
	sweepCtx    context.Context
	sweepCancel context.CancelFunc

	mu    sync.Mutex
	users map[string]*user // by bare JID: accounts online or being delivered to; guarded by mu
	// waiting holds the accounts that may have stored messages, so that a
	// login of one that has none (nearly every login) costs no query.
	// nil until Start has read it: then every login looks in storage.
	// It assumes this process is the only writer of the table, which
	// xmppd is (one server per database). Guarded by mu.
	waiting map[string]struct{}
	started bool           // Start ran; guarded by mu
	stopped bool           // Stop began: no new goroutine; guarded by mu
	wg      sync.WaitGroup // the sweep and every delivery goroutine
}

// user is the delivery state of one account. All fields are guarded by
// Service.mu.
type user struct {
	// sessions are the account's resources that sent initial presence
	// with a non-negative priority and have not gone unavailable, in that
	// order; the first takes the stored messages.
	sessions []router.Session
	// delivering is set while a goroutine delivers to the account; only
	// that goroutine reads from storage for it.
	delivering bool
	// again asks the delivering goroutine to look at storage once more
	// when it is done: a message was stored, or a resource came online,
	// while it ran.
	again bool
}

// New returns the service. presence is the router (for priorities) and
// domain the server's, which stamps each <delay/>.
func New(store Store, presence Presence, domain jid.JID, lim Limits, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if lim.BatchStanzas <= 0 {
		lim.BatchStanzas = 100
	}
	if lim.BatchBytes <= 0 {
		lim.BatchBytes = 1 << 20
	}
	s := &Service{
		store: store, presence: presence, domain: domain.Domain(), lim: lim, log: log, now: time.Now,
		users:   map[string]*user{},
		pushLog: burstlog.New(log, "offline: message not stored", logPeriod),
		readLog: burstlog.New(log, "offline: stored messages not delivered", logPeriod),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sweepCtx, s.sweepCancel = context.WithCancel(s.ctx)
	return s
}

// Register adds the msgoffline feature and the service's hooks. With
// MaxMessages 0 it adds nothing, and undeliverable messages are refused.
func (s *Service) Register(r *router.Registry) {
	if s.lim.MaxMessages <= 0 {
		return
	}
	r.Feature(Feature)
	r.Undeliverable(s.undeliverable)
	r.OnAvailable(s.available)
	r.OnUnavailable(s.unavailable)
}

// Start learns which accounts have stored messages, then starts the sweep
// of expired messages: one at once, then one every SweepInterval until
// Stop. If storage cannot say, every login looks for messages.
func (s *Service) Start() {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	qs, err := s.store.Queues(ctx)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Error("accounts with offline messages not read; every login will look for them", "err", err)
	} else {
		s.waiting = make(map[string]struct{}, len(qs))
		for _, q := range qs {
			s.waiting[q.JID] = struct{}{}
		}
	}
	if !s.stopped {
		s.wg.Go(s.sweepLoop)
	}
}

// mayHaveLocked reports whether the account bare may have stored messages.
func (s *Service) mayHaveLocked(bare string) bool {
	if s.waiting == nil {
		return true
	}
	_, ok := s.waiting[bare]
	return ok
}

// Stop ends the sweep and waits for deliveries in progress to finish; call
// it after the sessions have been closed, so that each delivery learns its
// fate. When ctx ends first, deliveries are abandoned (their messages stay
// stored) and Stop still waits for the goroutines to return, which they do
// at once. Stop returns ctx's error in that case.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.sweepCancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// logPeriod is how often a burst of storage failures is logged again.
const logPeriod = time.Minute

// undeliverable is the router's Undeliverable hook: it stores st if it is
// worth storing and there is room, and returns Handled once it is
// committed. When storage fails it returns Failed, and the sender is told
// to try again: the message may not be taken for refused, since the
// account exists and the queue may have room.
func (s *Service) undeliverable(ctx context.Context, st *router.Stanza) router.Result {
	if !worthStoring(st) {
		return router.Continue
	}
	to := st.To
	if to.Equal(jid.JID{}) {
		to = st.From // a message without to is for the sender's account
	}
	to = to.Bare()
	if to.Localpart() == "" || to.Domainpart() != s.domain.Domainpart() {
		return router.Continue
	}
	bare := to.String()
	_, err := s.store.Push(ctx, bare, s.now(), st.Raw,
		storage.OfflineLimits{Messages: s.lim.MaxMessages, Bytes: s.lim.MaxBytes})
	if err != nil && (errors.Is(err, storage.ErrLimit) || errors.Is(err, storage.ErrNotFound)) {
		s.pushLog.OK() // storage answered
	}
	switch {
	case errors.Is(err, storage.ErrLimit):
		s.log.Debug("offline queue full; message refused", "to", bare, "max_messages", s.lim.MaxMessages,
			"max_bytes", s.lim.MaxBytes, "size", len(st.Raw))
		return router.Continue
	case errors.Is(err, storage.ErrNotFound):
		return router.Continue // the account was deleted meanwhile
	case err != nil:
		s.pushLog.Fail(err, "to", bare)
		// A commit whose answer was lost may have stored it all the
		// same: the account's next login looks.
		s.mu.Lock()
		if s.waiting != nil {
			s.waiting[bare] = struct{}{}
		}
		s.mu.Unlock()
		return router.Failed
	}
	s.pushLog.OK()
	s.log.Debug("offline message stored", "to", bare)
	// The account may have come online since the router looked; if so,
	// deliver now rather than at its next login.
	s.mu.Lock()
	if s.waiting != nil {
		s.waiting[bare] = struct{}{}
	}
	if u := s.users[bare]; u != nil {
		s.deliverLocked(bare, u)
	}
	s.mu.Unlock()
	return router.Handled
}

// available is the OnAvailable hook: a resource with a non-negative
// priority gets the stored messages.
func (s *Service) available(_ context.Context, sess router.Session) {
	prio, ok := s.presence.Priority(sess.JID())
	if !ok || prio < 0 {
		return
	}
	bare := sess.JID().Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[bare]
	if u == nil {
		u = &user{}
		s.users[bare] = u
	}
	u.sessions = append(u.sessions, sess)
	if s.mayHaveLocked(bare) {
		s.deliverLocked(bare, u)
	}
}

// unavailable is the OnUnavailable hook.
func (s *Service) unavailable(_ context.Context, sess router.Session) {
	bare := sess.JID().Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[bare]; u != nil {
		u.sessions = slices.DeleteFunc(u.sessions, func(x router.Session) bool { return x == sess })
		s.forgetLocked(bare, u)
	}
}

// deliverLocked starts delivery to the account bare, or asks the goroutine
// already delivering to look again.
func (s *Service) deliverLocked(bare string, u *user) {
	if u.delivering {
		u.again = true
		return
	}
	if s.stopped || len(u.sessions) == 0 {
		return
	}
	u.delivering = true
	s.wg.Go(func() { s.deliverLoop(bare, u) })
}

// forgetLocked drops the account's state once nothing needs it.
func (s *Service) forgetLocked(bare string, u *user) {
	if !u.delivering && len(u.sessions) == 0 {
		delete(s.users, bare)
	}
}

// outcome is how one delivery pass ended.
type outcome uint8

const (
	delivered   outcome = iota // storage has nothing more for the account
	sessionGone                // the session closed before all was written
	failed                     // storage failed, or the service is stopping
)

// deliverLoop owns delivery to one account until there is nothing left to
// deliver or no session to deliver to.
func (s *Service) deliverLoop(bare string, u *user) {
	for {
		s.mu.Lock()
		u.again = false
		if len(u.sessions) == 0 || s.ctx.Err() != nil {
			u.delivering = false
			s.forgetLocked(bare, u)
			s.mu.Unlock()
			return
		}
		sess := u.sessions[0]
		s.mu.Unlock()

		res := s.deliver(bare, sess)

		s.mu.Lock()
		if res == sessionGone {
			// The session may not have gone unavailable in the router
			// yet; it is no use either way.
			u.sessions = slices.DeleteFunc(u.sessions, func(x router.Session) bool { return x == sess })
		}
		if res == delivered && !u.again && s.waiting != nil {
			// Nothing stored since this pass looked (a message stored
			// meanwhile sets again).
			delete(s.waiting, bare)
		}
		if res == failed || (res == delivered && !u.again) {
			u.delivering = false
			s.forgetLocked(bare, u)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// ack is a session's word on one message handed to DeliverThen.
type ack struct {
	id      int64
	written bool
}

// deliver sends the account's stored messages to sess, oldest first, batch
// by batch, deleting each once it is written.
func (s *Service) deliver(bare string, sess router.Session) outcome {
	ctx := s.ctx
	var after int64
	total := 0
	defer func() {
		if total > 0 {
			s.log.Debug("delivered offline messages", "jid", sess.JID().String(), "count", total)
		}
	}()
	for {
		msgs, err := s.store.List(ctx, bare, after, s.lim.BatchStanzas)
		if err != nil {
			if ctx.Err() == nil {
				s.readLog.Fail(err, "jid", bare, "op", "read")
			}
			return failed
		}
		s.readLog.OK()
		if len(msgs) == 0 {
			return delivered
		}
		// Buffered for the whole batch: the session's writer calls back
		// and must never block on this goroutine.
		acks := make(chan ack, len(msgs))
		sent, size := 0, 0
		for _, m := range msgs {
			raw := withDelay(m.Stanza, s.domain, m.Stamp)
			if sent > 0 && size+len(raw) > s.lim.BatchBytes {
				break // the rest comes with the next batch
			}
			id := m.ID
			if sess.DeliverThen(raw, func(written bool) { acks <- ack{id, written} }) != nil {
				break
			}
			sent++
			size += len(raw)
		}
		if sent == 0 {
			return sessionGone
		}
		written := make([]int64, 0, sent)
		for range sent {
			select {
			case a := <-acks:
				if a.written {
					written = append(written, a.id)
				}
			case <-ctx.Done():
				return failed // Stop gave up waiting; the rows stay
			}
		}
		if len(written) > 0 {
			if err := s.store.Delete(ctx, written...); err != nil {
				if ctx.Err() == nil {
					s.readLog.Fail(err, "jid", bare, "op", "delete; they will be delivered again")
				}
				return failed
			}
			total += len(written)
		}
		if len(written) < sent {
			return sessionGone
		}
		after = msgs[sent-1].ID
	}
}

// sweepLoop deletes expired messages now and every SweepInterval.
func (s *Service) sweepLoop() {
	t := time.NewTicker(s.lim.SweepInterval)
	defer t.Stop()
	for {
		s.sweep(s.sweepCtx)
		select {
		case <-s.sweepCtx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep deletes the messages older than MaxAge.
func (s *Service) sweep(ctx context.Context) {
	n, err := s.store.DeleteOlderThan(ctx, s.now().Add(-s.lim.MaxAge))
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Error("expired offline messages not deleted", "err", err)
	case n > 0:
		s.log.Info("deleted expired offline messages", "count", n, "max_age", s.lim.MaxAge.String())
	}
}
