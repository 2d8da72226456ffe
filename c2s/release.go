package c2s

import (
	"sync"
	"time"
)

// memRelease gives back to the operating system the memory that a wave of
// parking sessions frees. Each parked session hands its stack (8 KiB or
// more) back to the Go heap, but the runtime returns free heap pages to the
// OS only after its next collection, and an idle server allocates too
// little to start one: the periodic collection comes after two minutes,
// and even then the heap keeps room for twice what is live. So once enough
// sessions have parked since the last release, and not more often than
// interval, release (debug.FreeOSMemory: a collection, then every free page
// back) runs once the wave has settled.
type memRelease struct {
	after    int           // parks that call for a release
	interval time.Duration // at least this long between releases
	delay    time.Duration // wait after the threshold for the rest of the wave
	release  func()

	mu        sync.Mutex
	since     int       // parks since the last release; guarded by mu
	last      time.Time // guarded by mu
	scheduled bool      // guarded by mu
}

// Defaults: a wave of a thousand parked sessions frees 8 MB or more of
// stacks; a forced collection of a heap of 10,000 sessions costs tens of
// milliseconds, at most once a minute.
const (
	releaseAfterParks = 1000
	releaseInterval   = time.Minute
	releaseDelay      = 5 * time.Second
)

// parked counts one parked session and schedules a release when due.
func (r *memRelease) parked() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since++
	if r.since < r.after || r.scheduled {
		return
	}
	r.scheduled = true
	wait := r.delay
	if next := time.Until(r.last.Add(r.interval)); next > wait {
		wait = next
	}
	time.AfterFunc(wait, r.run)
}

// run releases. The count starts again before the release, so that
// sessions parking while it runs count towards the next one.
func (r *memRelease) run() {
	r.mu.Lock()
	r.since, r.last, r.scheduled = 0, time.Now(), false
	r.mu.Unlock()
	r.release()
}
