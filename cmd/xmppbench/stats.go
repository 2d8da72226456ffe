package main

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// histSubBits sets the histogram's resolution: 2^histSubBits buckets per
// power of two, so a recorded value is off by less than 1/64 (1.6%).
const histSubBits = 6

// histMaxShift caps recorded values near 2^(histMaxShift+7) µs (about 12 days).
const histMaxShift = 33

// histogram counts durations in microseconds in log-linear buckets. Record
// is lock-free and allocation-free, so many reader goroutines share one.
type histogram struct {
	counts [histMaxShift<<histSubBits + 2<<histSubBits]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
}

// bucketOf returns the bucket of v: exact below 128, then 64 buckets per
// octave.
func bucketOf(v uint64) int {
	shift := bits.Len64(v) - (histSubBits + 1)
	if shift < 0 {
		shift = 0
	}
	if shift > histMaxShift {
		shift = histMaxShift
		v = (2<<histSubBits)<<histMaxShift - 1
	}
	return shift<<histSubBits + int(v>>uint(shift))
}

// bucketMax is the largest value that falls into bucket i.
func bucketMax(i int) uint64 {
	shift := i>>histSubBits - 1
	if shift < 0 {
		shift = 0
	}
	base := uint64(i - shift<<histSubBits)
	return (base+1)<<uint(shift) - 1
}

// Record adds one duration.
func (h *histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Quantile returns the q-quantile (0 < q ≤ 1) in milliseconds, rounded up
// to its bucket's upper edge (never more than the maximum seen), or 0 when
// nothing was recorded.
func (h *histogram) Quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			return usToMs(min(bucketMax(i), h.max.Load()))
		}
	}
	return h.Max()
}

// Max is the largest recorded value in milliseconds.
func (h *histogram) Max() float64 { return usToMs(h.max.Load()) }

func usToMs(us uint64) float64 { return round3(float64(us) / 1000) }

// round3 rounds to three decimals, which is all the JSON needs.
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// exactQuantile is the q-quantile of xs (nearest rank), for tests and the
// login phase's small samples.
func exactQuantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(q * float64(len(s))))
	rank = max(rank, 1)
	return s[rank-1]
}

// pacer spreads sends evenly at a fixed rate from start: message k is due at
// start + k/rate. Pacing against that schedule rather than by sleeping a
// fixed interval keeps the rate exact however late the goroutine wakes, and
// a message's scheduled time (not the time it was written) is what it
// carries, so a generator that falls behind shows as latency instead of
// hiding it (no coordinated omission).
type pacer struct {
	start time.Duration // on the run's monotonic clock
	rate  float64       // messages per second; > 0
	sent  int64         // messages taken so far
}

// due returns how many messages are due at now and not yet taken.
func (p *pacer) due(now time.Duration) int64 {
	if now < p.start {
		return 0
	}
	// The epsilon keeps float rounding from holding back a message due
	// exactly now.
	n := int64(float64(now-p.start)/float64(time.Second)*p.rate+1e-6) + 1
	return n - p.sent
}

// take marks one message taken and returns when it was due.
func (p *pacer) take() time.Duration {
	t := p.at(p.sent)
	p.sent++
	return t
}

// at is when message k is due.
func (p *pacer) at(k int64) time.Duration {
	return p.start + time.Duration(math.Round(float64(k)/p.rate*float64(time.Second)))
}

// next is when the next message not yet taken is due.
func (p *pacer) next() time.Duration { return p.at(p.sent) }

// errorCounts counts errors by message, keeping at most maxKinds kinds.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int // guarded by mu
}

const maxErrorKinds = 8

func (e *errorCounts) add(err error) {
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int{}
	}
	if _, ok := e.m[msg]; !ok && len(e.m) >= maxErrorKinds {
		msg = "(other errors)"
	}
	e.m[msg]++
}

func (e *errorCounts) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return nil
	}
	out := make(map[string]int, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}
