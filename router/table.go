package router

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// ErrQueueFull is returned by Session.Deliver when the session's send queue
// is full; the session closes itself and the stanza takes the undeliverable
// path.
var ErrQueueFull = errors.New("router: send queue full")

// ErrClosed is returned by Session.Deliver after the session has closed.
var ErrClosed = errors.New("router: session closed")

// ErrTooManyResources is returned (wrapped) by BindAtMost when the account
// has as many sessions as it may.
var ErrTooManyResources = errors.New("router: too many resources")

// Session is the router's handle on a bound client stream. c2s implements
// it; everything outside c2s reaches a session only through this handle.
type Session interface {
	// JID is the full JID bound to the session; immutable.
	JID() jid.JID
	// Deliver queues a serialised stanza for writing and returns at once.
	// It returns ErrQueueFull (and closes the session) when the queue is
	// full, ErrClosed when the session has ended.
	Deliver(b []byte) error
	// DeliverThen is Deliver, and calls done(true) once b is written to
	// the connection or done(false) if it never will be. Such a stanza is
	// not handed to the undeliverable path: its owner keeps it until
	// done(true) (offline messages are deleted only then).
	DeliverThen(b []byte, done func(written bool)) error
	// Close ends the stream with the stream error e.
	Close(e stream.Error)
}

// Detachable is implemented by sessions that can outlive their connection
// (c2s with XEP-0198 stream management): Detached reports whether the
// connection is gone and the session waits, still bound and available,
// for the client to resume it. What it is delivered meanwhile is kept for
// the resumption.
type Detachable interface {
	Detached() bool
}

// Detached reports whether s is a Detachable session waiting for a
// resumption.
func Detached(s Session) bool {
	d, ok := s.(Detachable)
	return ok && d.Detached()
}

// Acknowledger is implemented by sessions that can have stream management
// (XEP-0198) on: a feature can learn whether the client acknowledged what
// it was sent, and ask it to (push notifications for a phone whose
// connection went half-open while it slept).
type Acknowledger interface {
	// AckState returns how many stanzas were sent to the client and how
	// many it acknowledged, modulo 2^32; ok is false without stream
	// management, and while the session waits for a resumption.
	AckState() (sent, acked uint32, ok bool)
	// RequestAck asks the client for an acknowledgement (<r/>) unless
	// one is outstanding.
	RequestAck()
}

// resource is one bound session of an account and its presence state.
// All fields but sess are guarded by the shard's mutex.
type resource struct {
	sess      Session // immutable
	available bool    // has sent initial presence and not unavailable
	priority  int     // from its last broadcast presence
	presence  []byte  // its last broadcast presence, for probes
	directed  []jid.JID
}

// account is the set of bound resources of one bare JID.
type account struct {
	resources []*resource
}

func (a *account) find(res string) *resource {
	for _, r := range a.resources {
		if r.sess.JID().Resourcepart() == res {
			return r
		}
	}
	return nil
}

const shardCount = 64

// shard is one slice of the session table; sessions of different accounts
// rarely share a lock, so routing scales with cores.
type shard struct {
	mu       sync.RWMutex
	accounts map[string]*account // by bare JID; guarded by mu
}

type table struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

func newTable() *table {
	t := &table{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].accounts = map[string]*account{}
	}
	return t
}

func (t *table) shard(bare string) *shard {
	return &t.shards[maphash.String(t.seed, bare)%shardCount]
}

// bind adds s to the table and returns the session it replaces (same full
// JID), if any. When the account has max sessions already (max > 0) and s
// replaces none of them, s is not added and the error wraps
// ErrTooManyResources.
func (t *table) bind(s Session, max int) (old *resource, err error) {
	j := s.JID()
	bare := j.Bare().String()
	sh := t.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.accounts[bare]
	if a == nil {
		a = &account{}
		sh.accounts[bare] = a
	}
	nr := &resource{sess: s}
	for i, r := range a.resources {
		if r.sess.JID().Resourcepart() == j.Resourcepart() {
			a.resources[i] = nr
			return r, nil
		}
	}
	if max > 0 && len(a.resources) >= max {
		return nil, fmt.Errorf("router: bind %s: %d sessions: %w", j, len(a.resources), ErrTooManyResources)
	}
	a.resources = append(a.resources, nr)
	return nil, nil
}

// unbind removes s (and only s: a session that replaced it stays) and
// returns its state as it was.
func (t *table) unbind(s Session) (r *resource, ok bool) {
	j := s.JID()
	bare := j.Bare().String()
	sh := t.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.accounts[bare]
	if a == nil {
		return nil, false
	}
	for i, r := range a.resources {
		if r.sess == s {
			a.resources = append(a.resources[:i], a.resources[i+1:]...)
			if len(a.resources) == 0 {
				delete(sh.accounts, bare)
			}
			return r, true
		}
	}
	return nil, false
}

// snapshot is a copy of what routing needs about one resource, taken under
// the shard's read lock so that no lock is held while delivering.
type snapshot struct {
	sess      Session
	available bool
	priority  int
}

// lookup appends a snapshot of every bound resource of bare to dst.
func (t *table) lookup(dst []snapshot, bare string) []snapshot {
	sh := t.shard(bare)
	sh.mu.RLock()
	if a := sh.accounts[bare]; a != nil {
		for _, r := range a.resources {
			dst = append(dst, snapshot{r.sess, r.available, r.priority})
		}
	}
	sh.mu.RUnlock()
	return dst
}

// update runs fn with the resource bound to the full JID j under the
// shard's write lock. fn is not called when j is not bound.
func (t *table) update(j jid.JID, fn func(r *resource)) bool {
	bare := j.Bare().String()
	sh := t.shard(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.accounts[bare]
	if a == nil {
		return false
	}
	if r := a.find(j.Resourcepart()); r != nil {
		fn(r)
		return true
	}
	return false
}

// count returns the number of bound sessions.
func (t *table) count() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, a := range sh.accounts {
			n += len(a.resources)
		}
		sh.mu.RUnlock()
	}
	return n
}

// presences returns the last presence of every available resource of the
// account of j other than j itself.
func (t *table) presences(j jid.JID) [][]byte {
	bare := j.Bare().String()
	sh := t.shard(bare)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	var out [][]byte
	if a := sh.accounts[bare]; a != nil {
		for _, r := range a.resources {
			if r.available && r.presence != nil && r.sess.JID().Resourcepart() != j.Resourcepart() {
				out = append(out, r.presence)
			}
		}
	}
	return out
}

// available returns the bare JIDs of the accounts with an available
// resource.
func (t *table) available() []jid.JID {
	var out []jid.JID
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, a := range sh.accounts {
			for _, r := range a.resources {
				if r.available {
					out = append(out, r.sess.JID().Bare())
					break
				}
			}
		}
		sh.mu.RUnlock()
	}
	return out
}
