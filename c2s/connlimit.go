package c2s

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/stream"
)

// connLimitSweepAt is the table size at which admitting a connection first
// drops the addresses that have no connection open and a full bucket; the
// next sweep waits until the table has doubled, so that sweeps cost O(1)
// per connection however many addresses are busy.
const connLimitSweepAt = 10_000

// connLimits counts the connections open from each address and the rate at
// which each address opens them (a token bucket). It is safe for concurrent
// use.
type connLimits struct {
	perAddress int              // immutable; 0: no bound
	rate       float64          // immutable; tokens per second, 0: no limit
	burst      float64          // immutable; bucket size
	now        func() time.Time // immutable

	mu      sync.Mutex
	addrs   map[string]*addrConns // by addrKey; guarded by mu
	sweepAt int                   // table size of the next sweep; guarded by mu
}

// addrConns is what connLimits knows of one address; guarded by
// connLimits.mu.
type addrConns struct {
	open   int       // connections open
	tokens float64   // connections it may open now
	at     time.Time // when tokens was computed
}

// newConnLimits returns the limits of lim, or nil when there are none per
// address.
func newConnLimits(lim Limits, now func() time.Time) *connLimits {
	if lim.MaxConnectionsPerAddress <= 0 && lim.ConnectionRate <= 0 {
		return nil
	}
	return &connLimits{
		perAddress: lim.MaxConnectionsPerAddress,
		rate:       lim.ConnectionRate,
		burst:      float64(max(lim.ConnectionBurst, 1)),
		now:        now,
		addrs:      map[string]*addrConns{},
		sweepAt:    connLimitSweepAt,
	}
}

// admit counts a new connection from the address key, or returns the
// stream error that refuses it. An admitted connection must be released.
func (l *connLimits) admit(key string) *stream.Error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.addrs) >= l.sweepAt {
		l.sweepLocked(now)
		l.sweepAt = max(connLimitSweepAt, 2*len(l.addrs))
	}
	a := l.addrs[key]
	if a == nil {
		a = &addrConns{tokens: l.burst, at: now}
		l.addrs[key] = a
	}
	if l.perAddress > 0 && a.open >= l.perAddress {
		e := withText(stream.PolicyViolation, "too many connections from your address (at most "+strconv.Itoa(l.perAddress)+" at once)")
		return &e
	}
	if l.rate > 0 {
		a.tokens = min(l.burst, a.tokens+now.Sub(a.at).Seconds()*l.rate)
		a.at = now
		if a.tokens < 1 {
			e := withText(stream.PolicyViolation, "too many new connections from your address; wait a moment before reconnecting")
			return &e
		}
		a.tokens--
	}
	a.open++
	return nil
}

// release ends a connection admit counted.
func (l *connLimits) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.addrs[key]; a != nil {
		a.open--
		if a.open <= 0 && l.idle(a, l.now()) {
			delete(l.addrs, key)
		}
	}
}

// sweepLocked drops the addresses that have nothing to remember: no
// connection open and a bucket that has filled up again.
func (l *connLimits) sweepLocked(now time.Time) {
	for k, a := range l.addrs {
		if a.open <= 0 && l.idle(a, now) {
			delete(l.addrs, k)
		}
	}
}

// idle reports whether a's bucket is full again at now: the address is then
// as if it had never connected.
func (l *connLimits) idle(a *addrConns, now time.Time) bool {
	return l.rate <= 0 || a.tokens+now.Sub(a.at).Seconds()*l.rate >= l.burst
}

// addrKey is the connection-limit and throttle key of addr: the address for
// IPv4, its /64 for IPv6.
func addrKey(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}
