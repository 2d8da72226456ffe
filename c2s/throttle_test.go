package c2s

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	const (
		max     = 3
		window  = time.Minute
		lockout = 5 * time.Minute
		delay   = 100 * time.Millisecond
	)
	type step struct {
		advance   time.Duration // clock moves first
		op        string        // "fail", "ok" (Succeeded) or "check"
		ip, acct  string
		wantDelay time.Duration // for "fail"
		wantOK    bool          // for "check"
		wantAfter time.Duration // for "check"
	}
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "delay grows linearly and the IP locks at max",
		steps: []step{
			{op: "check", ip: "192.0.2.1", wantOK: true},
			{op: "fail", ip: "192.0.2.1", acct: "a@x", wantDelay: delay},
			{op: "fail", ip: "192.0.2.1", acct: "b@x", wantDelay: 2 * delay},
			{op: "check", ip: "192.0.2.1", wantOK: true},
			{op: "fail", ip: "192.0.2.1", acct: "c@x", wantDelay: 3 * delay},
			{op: "check", ip: "192.0.2.1", wantOK: false, wantAfter: lockout},
			{op: "check", ip: "192.0.2.2", acct: "a@x", wantOK: true},
			{advance: time.Minute, op: "check", ip: "192.0.2.1", acct: "z@x", wantOK: false, wantAfter: lockout - time.Minute},
			{advance: 4 * time.Minute, op: "check", ip: "192.0.2.1", wantOK: true},
		},
	}, {
		name: "account locks from many IPs",
		steps: []step{
			{op: "fail", ip: "192.0.2.1", acct: "a@x", wantDelay: delay},
			{op: "fail", ip: "192.0.2.2", acct: "a@x", wantDelay: 2 * delay},
			{op: "fail", ip: "192.0.2.3", acct: "a@x", wantDelay: 3 * delay},
			{op: "check", ip: "192.0.2.4", wantOK: true},
			{op: "check", ip: "192.0.2.4", acct: "a@x", wantOK: false, wantAfter: lockout},
			{op: "check", ip: "", acct: "a@x", wantOK: false, wantAfter: lockout},
		},
	}, {
		name: "failures outside the window are forgotten",
		steps: []step{
			{op: "fail", ip: "192.0.2.1", wantDelay: delay},
			{op: "fail", ip: "192.0.2.1", wantDelay: 2 * delay},
			{advance: window, op: "fail", ip: "192.0.2.1", wantDelay: delay},
			{op: "check", ip: "192.0.2.1", wantOK: true},
		},
	}, {
		name: "after the lockout a key starts from zero",
		steps: []step{
			{op: "fail", ip: "192.0.2.1", wantDelay: delay},
			{op: "fail", ip: "192.0.2.1", wantDelay: 2 * delay},
			{op: "fail", ip: "192.0.2.1", wantDelay: 3 * delay},
			{advance: lockout, op: "check", ip: "192.0.2.1", wantOK: true},
			{op: "fail", ip: "192.0.2.1", wantDelay: delay},
			{op: "check", ip: "192.0.2.1", wantOK: true},
		},
	}, {
		name: "success clears the account, not the IP",
		steps: []step{
			{op: "fail", ip: "192.0.2.1", acct: "a@x", wantDelay: delay},
			{op: "fail", ip: "192.0.2.1", acct: "a@x", wantDelay: 2 * delay},
			{op: "ok", ip: "192.0.2.1", acct: "a@x"},
			{op: "fail", ip: "192.0.2.9", acct: "a@x", wantDelay: delay},
			{op: "fail", ip: "192.0.2.1", acct: "b@x", wantDelay: 3 * delay},
			{op: "check", ip: "192.0.2.1", wantOK: false, wantAfter: lockout},
			{op: "check", ip: "192.0.2.9", acct: "a@x", wantOK: true},
		},
	}, {
		name: "delay is capped at five times the base",
		steps: []step{
			{op: "fail", acct: "a@x", wantDelay: delay},
			{op: "fail", acct: "a@x", wantDelay: 2 * delay},
			{op: "fail", acct: "a@x", wantDelay: 3 * delay},
			{op: "fail", acct: "a@x", wantDelay: 4 * delay},
			{op: "fail", acct: "a@x", wantDelay: 5 * delay},
			{op: "fail", acct: "a@x", wantDelay: 5 * delay},
		},
	}, {
		name: "IPv6 counts per /64, IPv4-mapped as IPv4",
		steps: []step{
			{op: "fail", ip: "2001:db8:0:1::1", wantDelay: delay},
			{op: "fail", ip: "2001:db8:0:1::2", wantDelay: 2 * delay},
			{op: "fail", ip: "2001:db8:0:1:ffff::3", wantDelay: 3 * delay},
			{op: "check", ip: "2001:db8:0:1::99", wantOK: false, wantAfter: lockout},
			{op: "check", ip: "2001:db8:0:2::1", wantOK: true},
			{op: "fail", ip: "::ffff:192.0.2.7", wantDelay: delay},
			{op: "fail", ip: "192.0.2.7", wantDelay: 2 * delay},
		},
	}, {
		name: "nothing tracked for empty keys",
		steps: []step{
			{op: "fail", wantDelay: 0},
			{op: "check", wantOK: true},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			th := newAuthThrottle(max, window, lockout, delay, clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				switch s.op {
				case "fail":
					if got := th.Failed(s.ip, s.acct); got != s.wantDelay {
						t.Errorf("step %d: Failed(%q, %q) = %v, want %v", i, s.ip, s.acct, got, s.wantDelay)
					}
				case "ok":
					th.Succeeded(s.ip, s.acct)
				case "check":
					ok, after := th.Check(s.ip, s.acct)
					if ok != s.wantOK || after != s.wantAfter {
						t.Errorf("step %d: Check(%q, %q) = %v, %v; want %v, %v", i, s.ip, s.acct, ok, after, s.wantOK, s.wantAfter)
					}
				}
			}
		})
	}
}

// TestThrottleBounded checks that the table neither outgrows its cap nor
// keeps expired entries.
func TestThrottleBounded(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := newAuthThrottle(3, time.Minute, 2*time.Minute, 0, clock.Now)
	th.maxEntries = 100
	size := func() int {
		th.mu.Lock()
		defer th.mu.Unlock()
		if len(th.entries) != th.order.Len() {
			t.Fatalf("map has %d entries, list %d", len(th.entries), th.order.Len())
		}
		return len(th.entries)
	}

	// Lock out one IP, then flood the table.
	for range 3 {
		th.Failed("192.0.2.1", "")
	}
	for i := range 1000 {
		th.Failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("u%d@x", i))
		if n := size(); n > th.maxEntries {
			t.Fatalf("after %d failures the table holds %d entries, cap %d", i+1, n, th.maxEntries)
		}
	}
	th.mu.Lock()
	_, newest := th.entries[hashThrottleKey('i', ipPrefix("10.0.3.231"))]
	_, oldest := th.entries[hashThrottleKey('i', ipPrefix("192.0.2.1"))]
	th.mu.Unlock()
	if !newest || oldest {
		t.Errorf("eviction kept the oldest entry (%v) or dropped the newest (%v)", oldest, !newest)
	}

	clock.Advance(2 * time.Minute)
	th.Check("", "") // any access prunes
	if n := size(); n != 0 {
		t.Errorf("%d entries left after everything expired", n)
	}
}

// TestThrottleConcurrent is for the race detector.
func TestThrottleConcurrent(t *testing.T) {
	th := newAuthThrottle(5, time.Minute, time.Minute, 0, nil)
	th.maxEntries = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ip := fmt.Sprintf("192.0.2.%d", (g*31+i)%200)
				acct := fmt.Sprintf("u%d@x", i%70)
				th.Check(ip, acct)
				th.Failed(ip, acct)
				if i%7 == 0 {
					th.Succeeded(ip, acct)
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
