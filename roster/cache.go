package roster

import (
	"context"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// The summary cache keeps, for each account with an available resource,
// what presence handling reads from its roster, so that a login costs one
// load and later presence changes and the disconnect cost none.
//
// Lifetime: a summary is kept only while the account has an
// available resource, and dropped by unbind when a session of the account
// ends leaving none available. The installer looks at the account after
// installing and removes its summary if the account has no available
// resource; unbind looks after the router has removed the session. One of
// the two therefore always sees the other's step, and no summary outlives
// the account's sessions: memory stays bounded by the online accounts
// (each summary by max_items).
//
// Freshness: every write to an account's rows goes through put or del,
// which invalidate that account's summary once the write has returned. A
// load does not take the account's lock, because holding a stripe across
// storage round trips would queue the logins of a sixty-fourth of all
// accounts behind each other and behind every roster write. Instead it
// notes its shard's generation before reading and installs its result
// only if no invalidation happened in the shard meanwhile: a write that
// committed before the generation was read is visible to the load, and one
// that had not yet returned bumps the generation after it. The generation
// is per shard rather than per account so that an account without a
// summary needs no record; an unrelated write in the same shard costs at
// most one uncached load.

// summary is what presence handling reads from one account's roster. It
// is immutable once built and shared by every reader.
type summary struct {
	subscribers   []jid.JID // from or both: they receive the account's presence
	subscriptions []jid.JID // to or both: the account probes them
	pending       [][]byte  // unanswered subscribe stanzas, redelivered on login
	// relations holds the subscription and groups of each visible
	// contact in subscribers or subscriptions, by bare JID, for PEP's
	// access models (pep.go).
	relations map[string]relation
	// everybody: the account is in a shared group shown to everybody,
	// so every online account receives its presence besides subscribers.
	everybody bool
}

// relation is a contact's subscription and groups.
type relation struct {
	subscription string
	groups       []string
}

// cacheShard holds the summaries of the accounts that hash to it.
type cacheShard struct {
	mu  sync.Mutex
	gen uint64              // bumped by every invalidation in the shard; guarded by mu
	m   map[string]*summary // by bare JID; guarded by mu
}

// summary returns the summary of user (a bare JID), from the cache or
// loaded from storage. A failed load is not cached.
func (s *Service) summary(ctx context.Context, user jid.JID) (*summary, error) {
	key := user.String()
	sh := &s.cache[s.stripe(key)]
	sh.mu.Lock()
	if sum := sh.m[key]; sum != nil {
		sh.mu.Unlock()
		return sum, nil
	}
	gen := sh.gen
	sh.mu.Unlock()

	sum, err := s.loadSummary(ctx, user)
	if err != nil {
		return nil, err
	}
	sh.mu.Lock()
	installed := sh.gen == gen
	if installed {
		sh.m[key] = sum
	}
	sh.mu.Unlock()
	// Looking only after installing: the last session's unbind may have
	// run before the install, and then nobody else would drop it.
	if installed && !s.online(user) {
		s.dropSummary(key, sum)
	}
	return sum, nil
}

// loadSummary reads user's summary from storage: every row, visible or
// kept only for a pending request, in one query.
func (s *Service) loadSummary(ctx context.Context, user jid.JID) (*summary, error) {
	rows, err := s.store.All(ctx, user.String())
	if err != nil {
		return nil, storeErr("rows", err)
	}
	sum := &summary{relations: map[string]relation{}}
	add := func(it storage.RosterItem) {
		if !hasTo(it.Subscription) && !hasFrom(it.Subscription) {
			return
		}
		contact, err := jid.Parse(it.Contact)
		if err != nil {
			return // skipped, as every use of a contact skips a malformed one
		}
		if it.Visible {
			sum.relations[contact.String()] = relation{it.Subscription, slices.Clip(it.Groups)}
		}
		if hasFrom(it.Subscription) {
			sum.subscribers = append(sum.subscribers, contact)
		}
		if hasTo(it.Subscription) {
			sum.subscriptions = append(sum.subscriptions, contact)
		}
	}
	sv := s.sharedView()
	for _, it := range rows {
		add(it)
		if !it.PendingIn {
			continue
		}
		if _, _, from := sharedHalves(sv, user.String(), it.Contact); from {
			continue // a shared group gave the contact what it asked for
		}
		contact, err := jid.Parse(it.Contact)
		if err != nil {
			continue
		}
		raw := []byte(it.Request)
		if len(raw) == 0 {
			st, err := router.Build(router.KindPresence, "subscribe", "", contact, user, nil)
			if err != nil {
				continue
			}
			raw = st.Raw
		}
		sum.pending = append(sum.pending, raw)
	}
	addShared(sv, user, sum)
	// Readers share the slices: an append by one of them must copy.
	sum.subscribers = slices.Clip(sum.subscribers)
	sum.subscriptions = slices.Clip(sum.subscriptions)
	return sum, nil
}

// online reports whether user has an available resource, the condition
// for keeping its summary.
func (s *Service) online(user jid.JID) bool {
	return len(s.router.AvailableResources(user)) > 0
}

// invalidate forgets the summary of user (a bare JID string) after a
// write to its rows, and makes loads in flight in its shard discard what
// they read.
func (s *Service) invalidate(user string) {
	sh := &s.cache[s.stripe(user)]
	sh.mu.Lock()
	sh.gen++
	delete(sh.m, user)
	sh.mu.Unlock()
}

// dropSummary removes the summary of user when it is sum, or any summary
// when sum is nil. Unlike invalidate it leaves loads in flight alone: the
// rows have not changed, and an installer checks the account after
// installing.
func (s *Service) dropSummary(user string, sum *summary) {
	sh := &s.cache[s.stripe(user)]
	sh.mu.Lock()
	if cur, ok := sh.m[user]; ok && (sum == nil || cur == sum) {
		delete(sh.m, user)
	}
	sh.mu.Unlock()
}

// put writes one row of user's roster. Every write goes through put or
// del, so that no summary outlives the rows it was built from.
func (s *Service) put(ctx context.Context, user jid.JID, it storage.RosterItem, bump bool) (int64, error) {
	ver, err := s.store.Put(ctx, user.String(), it, bump)
	s.invalidate(user.String()) // after an error too: the write may have committed
	return ver, err
}

// del deletes one row of user's roster; see put.
func (s *Service) del(ctx context.Context, user jid.JID, contact string) (int64, error) {
	ver, err := s.store.Delete(ctx, user.String(), contact)
	s.invalidate(user.String())
	return ver, err
}
