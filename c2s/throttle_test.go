package c2s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
)

// memLogins is an in-memory LoginNetworks.
type memLogins struct {
	mu   sync.Mutex
	last map[string]time.Time // jid + " " + network
	err  error                // returned by Known when set
}

func newMemLogins() *memLogins { return &memLogins{last: map[string]time.Time{}} }

func (m *memLogins) Record(_ context.Context, logins []storage.Login) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range logins {
		if k := g.JID + " " + g.Network; g.At.After(m.last[k]) {
			m.last[k] = g.At
		}
	}
	return nil
}

func (m *memLogins) Known(_ context.Context, jid, network string, since time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	t, ok := m.last[jid+" "+network]
	return ok && !t.Before(since), nil
}

func (m *memLogins) DeleteOlderThan(_ context.Context, t time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for k, v := range m.last {
		if v.Before(t) {
			delete(m.last, k)
			n++
		}
	}
	return n, nil
}

// testLimits are small limits for the throttle's tests.
var testLimits = AuthLimits{
	MaxFailures:              3,
	FailureWindow:            time.Minute,
	Lockout:                  5 * time.Minute,
	FailureDelay:             100 * time.Millisecond,
	AccountMaxFailures:       5,
	AddressFailuresPerMinute: 8,
	RememberLogins:           30 * 24 * time.Hour,
	TrustedNetworks:          []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
}

func TestThrottle(t *testing.T) {
	const (
		window  = time.Minute
		lockout = 5 * time.Minute
		delay   = 100 * time.Millisecond
	)
	type step struct {
		advance   time.Duration // clock moves first
		op        string        // "fail", "ok" (Succeeded) or "check"
		ip, acct  string
		want      time.Duration // "fail": the delay; "check": the wait, 0 to go ahead
		wantCount int           // "fail" several times: how many
	}
	fails := func(n int, ip, acct string, delays ...time.Duration) []step {
		var s []step
		for i := range n {
			s = append(s, step{op: "fail", ip: ip, acct: acct, want: delays[min(i, len(delays)-1)]})
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "one address guessing one account is slowed, then refused for that account only",
		steps: cat(fails(3, "192.0.2.1", "a@x", delay, 2*delay, 3*delay), []step{
			{op: "check", ip: "192.0.2.1", acct: "a@x", want: lockout},
			{op: "check", ip: "192.0.2.1", acct: "b@x"}, // a neighbour behind the same address
			{op: "check", ip: "192.0.2.2", acct: "a@x"}, // the account from elsewhere
			{advance: time.Minute, op: "check", ip: "192.0.2.1", acct: "a@x", want: lockout - time.Minute},
			{advance: 4 * time.Minute, op: "check", ip: "192.0.2.1", acct: "a@x"},
		}),
	}, {
		name: "an account guessed at from many addresses is refused, except from its networks",
		steps: cat([]step{{op: "ok", ip: "192.0.2.10", acct: "a@x"}},
			fails(1, "198.51.100.1", "a@x", delay), fails(1, "198.51.100.2", "a@x", delay),
			fails(1, "198.51.100.3", "a@x", delay), fails(1, "198.51.100.4", "a@x", delay),
			[]step{
				{op: "check", ip: "203.0.113.9", acct: "a@x"},
				{op: "fail", ip: "198.51.100.5", acct: "a@x", want: delay},
				{op: "check", ip: "203.0.113.9", acct: "a@x", want: lockout},
				{op: "check", ip: "192.0.2.77", acct: "a@x"},                // the /24 it logged in from
				{op: "check", ip: "192.0.3.10", acct: "a@x", want: lockout}, // not its /24
				{op: "check", ip: "203.0.113.9", acct: "b@x"},
			}),
	}, {
		name: "one address guessing at many accounts is capped, except for accounts at home there",
		steps: cat([]step{{op: "ok", ip: "192.0.2.1", acct: "home@x"}},
			fails(1, "192.0.2.1", "u1@x", delay), fails(1, "192.0.2.1", "u2@x", delay),
			fails(1, "192.0.2.1", "u3@x", delay), fails(1, "192.0.2.1", "u4@x", delay),
			fails(1, "192.0.2.1", "u5@x", delay), fails(1, "192.0.2.1", "u6@x", delay),
			fails(1, "192.0.2.1", "u7@x", delay),
			[]step{
				{op: "check", ip: "192.0.2.1", acct: "u9@x"},
				{op: "fail", ip: "192.0.2.1", acct: "u8@x", want: delay},
				{op: "check", ip: "192.0.2.1", acct: "u9@x", want: time.Minute},
				{op: "check", ip: "192.0.2.1", acct: "home@x"},
				{op: "check", ip: "192.0.2.2", acct: "u9@x"},
				{advance: time.Minute, op: "check", ip: "192.0.2.1", acct: "u9@x"},
			}),
	}, {
		name: "failures outside the window are forgotten",
		steps: cat(fails(2, "192.0.2.1", "a@x", delay, 2*delay), []step{
			{advance: window, op: "fail", ip: "192.0.2.1", acct: "a@x", want: delay},
			{op: "check", ip: "192.0.2.1", acct: "a@x"},
		}),
	}, {
		name: "after the lockout a pair starts from zero",
		steps: cat(fails(3, "192.0.2.1", "a@x", delay, 2*delay, 3*delay), []step{
			{advance: lockout, op: "check", ip: "192.0.2.1", acct: "a@x"},
			{op: "fail", ip: "192.0.2.1", acct: "a@x", want: delay},
			{op: "check", ip: "192.0.2.1", acct: "a@x"},
		}),
	}, {
		name: "success clears the pair, not the account's count",
		steps: cat(fails(2, "192.0.2.1", "a@x", delay, 2*delay), []step{
			{op: "ok", ip: "192.0.2.1", acct: "a@x"},
			{op: "fail", ip: "192.0.2.1", acct: "a@x", want: delay},
			{op: "fail", ip: "198.51.100.1", acct: "a@x", want: delay},
			{op: "fail", ip: "198.51.100.2", acct: "a@x", want: delay}, // the fifth for a@x
			{op: "check", ip: "198.51.100.3", acct: "a@x", want: lockout},
			{op: "check", ip: "192.0.2.1", acct: "a@x"}, // where it logged in
		}),
	}, {
		name:  "the delay is capped at five times the base",
		steps: fails(7, "192.0.2.1", "a@x", delay, 2*delay, 3*delay, 4*delay, 5*delay, 5*delay),
	}, {
		name: "IPv6 counts per /64, IPv4-mapped as IPv4",
		steps: []step{
			{op: "fail", ip: "2001:db8:0:1::1", acct: "a@x", want: delay},
			{op: "fail", ip: "2001:db8:0:1::2", acct: "a@x", want: 2 * delay},
			{op: "fail", ip: "2001:db8:0:1:ffff::3", acct: "a@x", want: 3 * delay},
			{op: "check", ip: "2001:db8:0:1::99", acct: "a@x", want: lockout},
			{op: "check", ip: "2001:db8:0:2::1", acct: "a@x"},
			{op: "fail", ip: "::ffff:192.0.2.7", acct: "b@x", want: delay},
			{op: "fail", ip: "192.0.2.7", acct: "b@x", want: 2 * delay},
		},
	}, {
		name: "names that are no account are counted per address",
		steps: cat(fails(3, "192.0.2.1", "", delay, 2*delay, 3*delay), []step{
			{op: "check", ip: "192.0.2.1", acct: "", want: lockout},
			{op: "check", ip: "192.0.2.1", acct: "a@x"},
		}),
	}, {
		name: "trusted networks are never throttled and count for nothing",
		steps: cat(fails(10, "10.1.2.3", "a@x", 0), []step{
			{op: "check", ip: "10.1.2.3", acct: "a@x"},
			{op: "check", ip: "192.0.2.1", acct: "a@x"},
		}),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			mem := newLoginMemory(newMemLogins(), testLimits.RememberLogins, slog.New(slog.DiscardHandler))
			t.Cleanup(func() { mem.stop(context.Background()) })
			th := newAuthThrottle(testLimits, mem, clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				a := attempt{ip: s.ip, account: s.acct}
				switch s.op {
				case "fail":
					if got := th.Failed(a); got != s.want {
						t.Errorf("step %d: Failed(%+v) = %v, want %v", i, a, got, s.want)
					}
				case "ok":
					th.Succeeded(a)
				case "check":
					got, err := th.Check(t.Context(), a)
					if got != s.want || err != nil {
						t.Errorf("step %d: Check(%+v) = %v, %v; want %v", i, a, got, err, s.want)
					}
				}
			}
		})
	}
}

// TestThrottleOff: max_failures = 0 turns the throttle off.
func TestThrottleOff(t *testing.T) {
	lim := testLimits
	lim.MaxFailures = 0
	if th := newAuthThrottle(lim, nil, nil); th != nil {
		t.Fatalf("newAuthThrottle with MaxFailures 0 = %v, want nil", th)
	}
}

// TestThrottleRememberedInStorage: a network remembered by an earlier
// process (only in storage) exempts the account; a storage error refuses.
func TestThrottleRememberedInStorage(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := newMemLogins()
	first := newLoginMemory(store, testLimits.RememberLogins, slog.New(slog.DiscardHandler))
	first.add("a@x", "192.0.2.0/24", clock.Now())
	first.stop(t.Context()) // writes what is queued
	if ok, _ := store.Known(t.Context(), "a@x", "192.0.2.0/24", time.Time{}); !ok {
		t.Fatal("stop did not write the queued login")
	}

	mem := newLoginMemory(store, testLimits.RememberLogins, slog.New(slog.DiscardHandler))
	defer mem.stop(context.Background())
	th := newAuthThrottle(testLimits, mem, clock.Now)
	for i := range testLimits.AccountMaxFailures {
		th.Failed(attempt{ip: fmt.Sprintf("198.51.100.%d", i), account: "a@x"})
	}
	check := func(ip string) (time.Duration, error) { return th.Check(t.Context(), attempt{ip: ip, account: "a@x"}) }
	if wait, err := check("192.0.2.5"); wait != 0 || err != nil {
		t.Errorf("from the remembered network: %v, %v; want to go ahead", wait, err)
	}
	if wait, _ := check("203.0.113.1"); wait != testLimits.Lockout {
		t.Errorf("from elsewhere: %v, want %v", wait, testLimits.Lockout)
	}
	// Older than RememberLogins: forgotten.
	clock.Advance(testLimits.RememberLogins + time.Hour)
	for i := range testLimits.AccountMaxFailures {
		th.Failed(attempt{ip: fmt.Sprintf("198.51.100.%d", i), account: "a@x"})
	}
	if wait, _ := check("192.0.2.5"); wait != testLimits.Lockout {
		t.Errorf("a network remembered too long ago: %v, want %v", wait, testLimits.Lockout)
	}
	store.mu.Lock()
	store.err = errors.New("database down")
	store.mu.Unlock()
	if wait, err := check("192.0.2.99"); wait == 0 || err == nil {
		t.Errorf("with storage failing: %v, %v; want a refusal and the error", wait, err)
	}
}

// TestThrottleBounded checks that the table neither outgrows its cap nor
// keeps expired entries.
func TestThrottleBounded(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	lim := testLimits
	lim.FailureWindow, lim.Lockout = time.Minute, 2*time.Minute
	th := newAuthThrottle(lim, nil, clock.Now)
	th.maxEntries = 100
	size := func() int {
		th.mu.Lock()
		defer th.mu.Unlock()
		if len(th.entries) != th.order.Len() {
			t.Fatalf("map has %d entries, list %d", len(th.entries), th.order.Len())
		}
		return len(th.entries)
	}

	// Lock out one pair, then flood the table.
	for range 3 {
		th.Failed(attempt{ip: "192.0.2.1", account: "a@x"})
	}
	for i := range 1000 {
		th.Failed(attempt{ip: fmt.Sprintf("198.18.%d.%d", i/256, i%256), account: fmt.Sprintf("u%d@x", i)})
		if n := size(); n > th.maxEntries {
			t.Fatalf("after %d failures the table holds %d entries, cap %d", i+1, n, th.maxEntries)
		}
	}
	th.mu.Lock()
	_, newest := th.entries[pairKey("198.18.3.231", "u999@x")]
	_, oldest := th.entries[pairKey("192.0.2.1", "a@x")]
	th.mu.Unlock()
	if !newest || oldest {
		t.Errorf("eviction kept the oldest entry (%v) or dropped the newest (%v)", oldest, !newest)
	}

	clock.Advance(2 * time.Minute)
	th.Check(t.Context(), attempt{}) // any access prunes
	if n := size(); n != 0 {
		t.Errorf("%d entries left after everything expired", n)
	}
}

// TestThrottleConcurrent is for the race detector.
func TestThrottleConcurrent(t *testing.T) {
	mem := newLoginMemory(newMemLogins(), time.Hour, slog.New(slog.DiscardHandler))
	defer mem.stop(context.Background())
	lim := testLimits
	lim.FailureDelay = 0
	th := newAuthThrottle(lim, mem, nil)
	th.maxEntries = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				a := attempt{ip: fmt.Sprintf("192.0.2.%d", (g*31+i)%200), account: fmt.Sprintf("u%d@x", i%70)}
				th.Check(context.Background(), a)
				th.Failed(a)
				if i%7 == 0 {
					th.Succeeded(a)
				}
			}
		})
	}
	wg.Wait()
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.entries) > th.maxEntries || len(th.entries) != th.order.Len() {
		t.Errorf("table: %d entries, %d in order, cap %d", len(th.entries), th.order.Len(), th.maxEntries)
	}
}
