package c2s

import (
	"container/list"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// throttleMaxEntries bounds how many remote addresses and accounts an
// authThrottle tracks at once. At roughly 200 bytes per entry this caps the
// table near 20 MB, whatever a botnet throws at it.
const throttleMaxEntries = 100_000

// throttleDelayCap is how many multiples of the base delay the answer to a
// failed attempt may be held back at most. Beyond a few seconds a longer delay
// only ties up our connection slots; the lockout does the rest.
const throttleDelayCap = 5

// authThrottle slows and then refuses repeated SASL failures per remote IP and
// per account (RFC 6120 §6.4.5 leaves the policy to the server; this is the
// usual one). Failures are counted in a fixed window per key; when a key
// reaches maxFailures inside its window it is locked out for the lockout
// period, after which it starts from zero.
//
// Both kinds of key share one limit: an IP that fails maxFailures times is
// refused whichever account it tries next, and an account that fails
// maxFailures times is refused from every IP, which stops a distributed guess
// at one password at the price of letting an attacker lock a victim out for
// the lockout period.
//
// IPv6 addresses are counted per /64, since a single host usually owns a whole
// /64 and could otherwise rotate addresses to dodge the limit or to flood the
// table and evict the entries that lock it out.
//
// It is safe for concurrent use. It has no goroutine: expired entries are
// dropped lazily whenever it is used, and when the table is full the entry
// whose last failure is oldest is evicted.
type authThrottle struct {
	maxFailures int              // immutable; < 1 disables the lockout
	window      time.Duration    // immutable; how long failures are remembered
	lockout     time.Duration    // immutable; how long a locked key is refused
	delay       time.Duration    // immutable; base delay per recent failure
	now         func() time.Time // immutable; never nil
	maxEntries  int              // immutable after construction (tests lower it)

	mu sync.Mutex
	// entries maps a hashed key to its element in order; guarded by mu.
	// Hashing bounds the memory per entry: an account key may be a kilobyte
	// long.
	entries map[throttleKey]*list.Element
	// order holds *throttleEntry values, the least recent failure first;
	// guarded by mu.
	order *list.List
}

// throttleKey identifies one IP prefix or one account: the first 16 bytes of
// SHA-256 over a kind byte and the value.
type throttleKey [16]byte

// throttleEntry is the failure record of one key. All fields are guarded by
// authThrottle.mu.
type throttleEntry struct {
	key         throttleKey
	failures    int       // failures since windowStart
	windowStart time.Time // first failure of the current window
	last        time.Time // most recent failure; orders eviction
	lockedUntil time.Time // zero, or when the lockout ends
}

// newAuthThrottle returns a throttle that locks an IP or account out for
// lockout once it has failed maxFailures times within window, and delays each
// failure answer by delay times the number of recent failures (at most
// 5×delay). now is the clock; nil means time.Now.
func newAuthThrottle(maxFailures int, window, lockout, delay time.Duration, now func() time.Time) *authThrottle {
	if now == nil {
		now = time.Now
	}
	return &authThrottle{
		maxFailures: maxFailures,
		window:      window,
		lockout:     lockout,
		delay:       delay,
		now:         now,
		maxEntries:  throttleMaxEntries,
		entries:     make(map[throttleKey]*list.Element),
		order:       list.New(),
	}
}

// Check reports whether an attempt from ip for account (bare JID string; ""
// when not known yet) may go ahead now; when refused, retryAfter says how
// long.
func (t *authThrottle) Check(ip, account string) (ok bool, retryAfter time.Duration) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	for _, k := range t.keys(ip, account) {
		el, found := t.entries[k]
		if !found {
			continue
		}
		e := el.Value.(*throttleEntry)
		if wait := e.lockedUntil.Sub(now); wait > 0 && wait > retryAfter {
			retryAfter = wait
		}
	}
	return retryAfter == 0, retryAfter
}

// Failed records a failure and returns how long to delay the <failure/>
// answer (delay grows linearly with recent failures, capped at 5×delay).
func (t *authThrottle) Failed(ip, account string) time.Duration {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	worst := 0
	for _, k := range t.keys(ip, account) {
		e := t.entryLocked(k, now)
		if !e.lockedUntil.IsZero() && !now.Before(e.lockedUntil) {
			// The lockout is over: start afresh rather than re-locking on
			// the next single failure.
			e.failures, e.lockedUntil = 0, time.Time{}
		}
		if e.failures == 0 || now.Sub(e.windowStart) >= t.window {
			e.failures, e.windowStart = 0, now
		}
		e.failures++
		// A failure that races with a lockout set by a concurrent stream
		// does not extend it; otherwise a steady trickle could keep an
		// account locked for ever.
		if t.maxFailures > 0 && e.failures >= t.maxFailures && e.lockedUntil.IsZero() {
			e.lockedUntil = now.Add(t.lockout)
		}
		worst = max(worst, e.failures)
	}
	return min(time.Duration(worst)*t.delay, throttleDelayCap*t.delay)
}

// Succeeded clears the account's failures (not the IP's): a user who finally
// typed the right password should not carry earlier typos into the next
// login, but an IP that guessed one account right may still be guessing
// others.
func (t *authThrottle) Succeeded(ip, account string) {
	if account == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := hashThrottleKey('a', account)
	if el, ok := t.entries[k]; ok {
		t.order.Remove(el)
		delete(t.entries, k)
	}
}

// keys returns the table keys that an attempt from ip for account touches.
// An empty ip or account is not tracked.
func (t *authThrottle) keys(ip, account string) []throttleKey {
	ks := make([]throttleKey, 0, 2)
	if ip != "" {
		ks = append(ks, hashThrottleKey('i', ipPrefix(ip)))
	}
	if account != "" {
		ks = append(ks, hashThrottleKey('a', account))
	}
	return ks
}

// entryLocked returns the entry for k, creating it (and evicting the oldest
// entry when the table is full), and marks it as the most recent failure.
func (t *authThrottle) entryLocked(k throttleKey, now time.Time) *throttleEntry {
	if el, ok := t.entries[k]; ok {
		e := el.Value.(*throttleEntry)
		e.last = now
		t.order.MoveToBack(el)
		return e
	}
	for t.order.Len() >= max(t.maxEntries, 1) {
		oldest := t.order.Front()
		t.order.Remove(oldest)
		delete(t.entries, oldest.Value.(*throttleEntry).key)
	}
	e := &throttleEntry{key: k, last: now}
	t.entries[k] = t.order.PushBack(e)
	return e
}

// pruneLocked drops entries that can no longer affect any answer. An entry's
// window and lockout both end at most max(window, lockout) after its last
// failure, and order is sorted by last failure, so the scan stops at the
// first entry still alive.
func (t *authThrottle) pruneLocked(now time.Time) {
	ttl := max(t.window, t.lockout)
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		e := el.Value.(*throttleEntry)
		if now.Sub(e.last) < ttl {
			return
		}
		t.order.Remove(el)
		delete(t.entries, e.key)
	}
}

// hashThrottleKey derives the table key of value; kind keeps an IP and an
// account with the same spelling apart.
func hashThrottleKey(kind byte, value string) throttleKey {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write([]byte(value))
	var k throttleKey
	copy(k[:], h.Sum(nil))
	return k
}

// ipPrefix returns the part of ip that identifies one client: the address
// itself for IPv4, its /64 for IPv6. A string that is not an address is used
// as it is.
func ipPrefix(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
