package c2s

import (
	"container/list"
	"context"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// throttleMaxEntries bounds how many (address, account) pairs, addresses
// and accounts an authThrottle tracks at once. At roughly 200 bytes per
// entry this caps the table near 20 MB, whatever a botnet throws at it.
const throttleMaxEntries = 100_000

// throttleDelayCap is how many multiples of the base delay the answer to a
// failed attempt may be held back at most. Beyond a few seconds a longer delay
// only ties up our connection slots; the lockout does the rest.
const throttleDelayCap = 5

// addressWindow is the period of AuthLimits.AddressFailuresPerMinute.
const addressWindow = time.Minute

// AuthLimits throttle wrong credentials (RFC 6120 §6.4.5 leaves the policy
// to the server). The throttle aims at the guesser, not at whoever shares
// its address or its target:
//
//   - One address guessing one account is slowed (a growing delay before
//     each <failure/>), then refused for that account alone: someone else
//     behind the same NAT logs in to their own account as usual.
//   - One account guessed at from many addresses is refused, except from
//     the networks (the /24 or /64) it logged in from within
//     RememberLogins: an attacker elsewhere cannot lock its owner out of
//     their usual devices.
//   - One address guessing at many accounts is capped per minute, except
//     for accounts that logged in from its network before.
//
// Only wrong credentials count (a bad password or an unknown user); a
// refused mechanism, channel-binding type or malformed message is a client
// limitation, not a guess.
type AuthLimits struct {
	// MaxFailures is how many wrong credentials one address may send for
	// one account within FailureWindow before that address is refused for
	// that account for Lockout. 0 turns throttling off altogether.
	MaxFailures   int
	FailureWindow time.Duration
	Lockout       time.Duration
	// FailureDelay is the delay before a <failure/> answer, times the
	// address's recent failures for that account, at most 5 times over.
	FailureDelay time.Duration
	// AccountMaxFailures is how many wrong credentials for one account,
	// from all addresses within FailureWindow, refuse it for Lockout
	// outside its remembered networks; 0 sets no such limit.
	AccountMaxFailures int
	// AddressFailuresPerMinute is how many wrong credentials one address
	// may send for all accounts in a minute before it is refused for a
	// minute, except for accounts remembered on its network; 0 sets no cap.
	AddressFailuresPerMinute int
	// RememberLogins is how long a network an account logged in from
	// exempts it; with 0 or no Logins nothing is remembered.
	RememberLogins time.Duration
	// TrustedNetworks are never throttled (monitoring, a web front end
	// that logs users in, …).
	TrustedNetworks []netip.Prefix
	// Logins keeps the remembered networks; nil remembers none.
	Logins LoginNetworks
}

// authThrottle counts wrong credentials per (address, account) pair, per
// address and per account, each in a fixed window, and refuses keys that
// reached their limit until their lockout ends (see AuthLimits).
//
// Addresses are counted per IPv4 address and per IPv6 /64, since a single
// host usually owns a whole /64 and could otherwise rotate addresses to
// dodge the limit or to flood the table and evict the entries that lock it
// out.
//
// It is safe for concurrent use. Its table has no goroutine: expired
// entries are dropped lazily whenever it is used, and when the table is
// full the entry whose last failure is oldest is evicted.
type authThrottle struct {
	lim        AuthLimits       // immutable
	now        func() time.Time // immutable; never nil
	logins     *loginMemory     // immutable; nil remembers nothing
	maxEntries int              // immutable after construction (tests lower it)

	mu sync.Mutex
	// entries maps a hashed key to its element in order; guarded by mu.
	// Hashing bounds the memory per entry: an account key may be a kilobyte
	// long.
	entries map[throttleKey]*list.Element
	// order holds *throttleEntry values, the least recent failure first;
	// guarded by mu.
	order *list.List
}

// throttleKey identifies one pair, address or account: the first 16 bytes
// of SHA-256 over a kind byte and the value.
type throttleKey [16]byte

// Kinds of throttle key.
const (
	keyPair    = 'p'
	keyAddress = 'i'
	keyAccount = 'a'
)

// throttleEntry is the failure record of one key. All fields are guarded by
// authThrottle.mu.
type throttleEntry struct {
	key         throttleKey
	failures    int       // failures since windowStart
	windowStart time.Time // first failure of the current window
	last        time.Time // most recent failure; orders eviction
	lockedUntil time.Time // zero, or when the lockout ends
}

// newAuthThrottle returns the throttle for lim, or nil when lim turns
// throttling off. now is the clock; nil means time.Now.
func newAuthThrottle(lim AuthLimits, logins *loginMemory, now func() time.Time) *authThrottle {
	if lim.MaxFailures < 1 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &authThrottle{
		lim:        lim,
		now:        now,
		logins:     logins,
		maxEntries: throttleMaxEntries,
		entries:    make(map[throttleKey]*list.Element),
		order:      list.New(),
	}
}

// attempt is one throttle question: an address (as the connection gives
// it) and the bare JID tried, "" when the name is not a valid localpart.
type attempt struct {
	ip      string
	account string
}

// Check reports how long an attempt must wait before it may go ahead; 0
// lets it go now. It asks the remembered logins (storage) only when the
// account or the address is over its limit; an error from them refuses
// the attempt, as the login could not finish anyway.
func (t *authThrottle) Check(ctx context.Context, a attempt) (retryAfter time.Duration, err error) {
	addr, ok := parseAddr(a.ip)
	if ok && t.trusted(addr) {
		return 0, nil
	}
	now := t.now()
	pair, exemptable := t.lockedFor(now, a)
	if pair > 0 {
		return pair, nil
	}
	if exemptable == 0 {
		return 0, nil
	}
	if ok && a.account != "" && t.logins != nil {
		known, err := t.logins.known(ctx, a.account, loginNetwork(addr), now)
		if err != nil {
			return exemptable, err
		}
		if known {
			return 0, nil
		}
	}
	return exemptable, nil
}

// lockedFor returns how long the pair of a is still locked, and how long
// its account or address is, which remembered logins may exempt.
func (t *authThrottle) lockedFor(now time.Time, a attempt) (pair, exemptable time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	wait := func(k throttleKey) time.Duration {
		if el, ok := t.entries[k]; ok {
			return max(el.Value.(*throttleEntry).lockedUntil.Sub(now), 0)
		}
		return 0
	}
	prefix := ipPrefix(a.ip)
	pair = wait(pairKey(prefix, a.account))
	if a.ip != "" {
		exemptable = wait(hashThrottleKey(keyAddress, prefix))
	}
	if a.account != "" {
		exemptable = max(exemptable, wait(hashThrottleKey(keyAccount, a.account)))
	}
	return pair, exemptable
}

// Failed records wrong credentials and returns how long to delay the
// <failure/> answer: FailureDelay times the pair's failures in its window,
// at most throttleDelayCap times over.
func (t *authThrottle) Failed(a attempt) time.Duration {
	if addr, ok := parseAddr(a.ip); ok && t.trusted(addr) {
		return 0
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
	prefix := ipPrefix(a.ip)
	n := t.countLocked(pairKey(prefix, a.account), now, t.lim.MaxFailures, t.lim.FailureWindow, t.lim.Lockout)
	if a.ip != "" {
		t.countLocked(hashThrottleKey(keyAddress, prefix), now, t.lim.AddressFailuresPerMinute, addressWindow, addressWindow)
	}
	if a.account != "" {
		t.countLocked(hashThrottleKey(keyAccount, a.account), now, t.lim.AccountMaxFailures, t.lim.FailureWindow, t.lim.Lockout)
	}
	return min(time.Duration(n)*t.lim.FailureDelay, t.MaxDelay())
}

// MaxDelay is the longest delay Failed returns.
func (t *authThrottle) MaxDelay() time.Duration { return throttleDelayCap * t.lim.FailureDelay }

// countLocked adds a failure to the key k, locks it for lockout when it
// reaches limit (0: never) within window, and returns its failures.
func (t *authThrottle) countLocked(k throttleKey, now time.Time, limit int, window, lockout time.Duration) int {
	e := t.entryLocked(k, now)
	if !e.lockedUntil.IsZero() && !now.Before(e.lockedUntil) {
		// The lockout is over: start afresh rather than re-locking on
		// the next single failure.
		e.failures, e.lockedUntil = 0, time.Time{}
	}
	if e.failures == 0 || now.Sub(e.windowStart) >= window {
		e.failures, e.windowStart = 0, now
	}
	e.failures++
	// A failure that races with a lockout set by a concurrent stream
	// does not extend it; otherwise a steady trickle could keep a key
	// locked for ever.
	if limit > 0 && e.failures >= limit && e.lockedUntil.IsZero() {
		e.lockedUntil = now.Add(lockout)
	}
	return e.failures
}

// Succeeded forgets the pair's failures, so that a user who finally typed
// the right password does not carry the typos into the next login, and
// remembers the network the account logged in from. The address's and the
// account's counts stay: the address may still be guessing at others, and
// others may still be guessing at the account.
func (t *authThrottle) Succeeded(a attempt) {
	if a.account == "" {
		return
	}
	k := pairKey(ipPrefix(a.ip), a.account)
	t.mu.Lock()
	if el, ok := t.entries[k]; ok {
		t.order.Remove(el)
		delete(t.entries, k)
	}
	t.mu.Unlock()
	if addr, ok := parseAddr(a.ip); ok && t.logins != nil {
		t.logins.add(a.account, loginNetwork(addr), t.now())
	}
}

// trusted reports whether addr is in a trusted network.
func (t *authThrottle) trusted(addr netip.Addr) bool {
	for _, p := range t.lim.TrustedNetworks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
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

// pruneLocked drops entries that can no longer affect any answer. Every
// key's window and lockout end at most ttl after its last failure, and
// order is sorted by last failure, so the scan stops at the first entry
// still alive.
func (t *authThrottle) pruneLocked(now time.Time) {
	ttl := max(t.lim.FailureWindow, t.lim.Lockout, addressWindow)
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		e := el.Value.(*throttleEntry)
		if now.Sub(e.last) < ttl {
			return
		}
		t.order.Remove(el)
		delete(t.entries, e.key)
	}
}

// pairKey is the key of one address prefix guessing one account.
func pairKey(prefix, account string) throttleKey {
	return hashThrottleKey(keyPair, prefix+"\x00"+account)
}

// hashThrottleKey derives the table key of value; kind keeps a pair, an
// address and an account with the same spelling apart.
func hashThrottleKey(kind byte, value string) throttleKey {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write([]byte(value))
	var k throttleKey
	copy(k[:], h.Sum(nil))
	return k
}

// parseAddr parses an address as the connection reports it, IPv4-mapped
// IPv6 as IPv4.
func parseAddr(ip string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// ipPrefix returns the part of ip that identifies one client: the address
// itself for IPv4, its /64 for IPv6. A string that is not an address is used
// as it is.
func ipPrefix(ip string) string {
	a, ok := parseAddr(ip)
	if !ok {
		return ip
	}
	return addrKey(a)
}

// loginNetwork is the network remembered for a login from addr: its /24
// for IPv4 (a home or office network, a carrier's pool), its /64 for IPv6.
func loginNetwork(addr netip.Addr) string {
	bits := 64
	if addr.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(addr, bits).Masked().String()
}
