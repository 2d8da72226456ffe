package c2s

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestMemRelease: a release runs once a wave of parks reaches the
// threshold, after the delay, and not again within the interval however
// many sessions park meanwhile; the next one comes once the interval has
// passed.
func TestMemRelease(t *testing.T) {
	var n atomic.Int32
	done := make(chan time.Time, 4)
	r := &memRelease{after: 3, interval: 300 * time.Millisecond, delay: 20 * time.Millisecond,
		release: func() { n.Add(1); done <- time.Now() }}

	r.parked()
	r.parked()
	time.Sleep(60 * time.Millisecond)
	if got := n.Load(); got != 0 {
		t.Fatalf("%d releases after 2 parks, want 0", got)
	}
	start := time.Now()
	r.parked()
	first := waitRelease(t, done, "after 3 parks")
	if d := first.Sub(start); d < 20*time.Millisecond {
		t.Fatalf("released %v after the threshold, want the 20ms delay first", d)
	}

	// A second wave at once: held back until the interval has passed.
	for range 10 {
		r.parked()
	}
	second := waitRelease(t, done, "for the second wave")
	// (The interval counts from just before the first release ran.)
	if d := second.Sub(first); d < 290*time.Millisecond {
		t.Fatalf("second release %v after the first, want about the 300ms interval", d)
	}
	time.Sleep(50 * time.Millisecond)
	if got := n.Load(); got != 2 {
		t.Fatalf("%d releases, want 2", got)
	}
}

// waitRelease returns when the next release ran.
func waitRelease(t *testing.T, done <-chan time.Time, what string) time.Time {
	t.Helper()
	select {
	case at := <-done:
		return at
	case <-time.After(5 * time.Second):
		t.Fatalf("no release %s", what)
		return time.Time{}
	}
}
