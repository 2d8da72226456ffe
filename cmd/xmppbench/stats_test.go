package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 123456, 1 << 30, 1<<40 - 1} {
		i := bucketOf(v)
		hi := bucketMax(i)
		if hi < v {
			t.Errorf("bucketMax(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if v >= 128 && float64(hi-v) > float64(v)/64 {
			t.Errorf("bucket of %d ends at %d: more than 1/64 off", v, hi)
		}
		if v < 128 && hi != v {
			t.Errorf("bucket of %d is not exact (ends at %d)", v, hi)
		}
		if i > 0 && bucketMax(i-1) >= v {
			t.Errorf("value %d also fits the bucket below (%d ends at %d)", v, i-1, bucketMax(i-1))
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var xs []time.Duration
	for range 100000 {
		// Log-normal-ish latencies from 50 µs to seconds.
		d := time.Duration(float64(200*time.Microsecond) * (1 + rng.ExpFloat64()*rng.ExpFloat64()*20))
		xs = append(xs, d)
		h.Record(d)
	}
	if h.Count() != uint64(len(xs)) {
		t.Fatalf("Count = %d, want %d", h.Count(), len(xs))
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := float64(exactQuantile(xs, q).Microseconds()) / 1000
		got := h.Quantile(q)
		if got < want || got > want*1.02+0.001 {
			t.Errorf("Quantile(%v) = %v ms, exact %v ms (want within +2%%)", q, got, want)
		}
	}
	if got, want := h.Max(), float64(exactQuantile(xs, 1).Microseconds())/1000; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h histogram
	if q := h.Quantile(0.99); q != 0 {
		t.Errorf("Quantile of nothing = %v, want 0", q)
	}
}

func TestExactQuantile(t *testing.T) {
	xs := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0.5: 5, 0.99: 10, 0.1: 1, 1: 10, 0.11: 2} {
		if got := exactQuantile(xs, q); got != want {
			t.Errorf("exactQuantile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := exactQuantile(nil, 0.5); got != 0 {
		t.Errorf("exactQuantile(nil) = %v", got)
	}
}

func TestPacer(t *testing.T) {
	p := &pacer{start: time.Second, rate: 1000} // one per ms
	cases := []struct {
		now  time.Duration
		take int64
		due  int64
	}{
		0: {now: 0, due: 0},
		1: {now: time.Second, due: 1, take: 1},               // message 0 is due at start
		2: {now: time.Second + 500*time.Microsecond, due: 0}, // message 1 at +1 ms
		3: {now: time.Second + 10*time.Millisecond, due: 10, take: 4},
		4: {now: time.Second + 10*time.Millisecond, due: 6, take: 6},
		5: {now: 2 * time.Second, due: 990, take: 990}, // behind: everything due at once
		6: {now: 2 * time.Second, due: 0},
	}
	for i, c := range cases {
		if got := p.due(c.now); got != c.due {
			t.Fatalf("%d: due(%v) = %d, want %d", i, c.now, got, c.due)
		}
		for range c.take {
			at := p.take()
			if at > c.now {
				t.Fatalf("%d: took a message due at %v, after now %v", i, at, c.now)
			}
		}
	}
	if got, want := p.next(), time.Second+1001*time.Millisecond; got != want {
		t.Errorf("next = %v, want %v", got, want)
	}
	if p.sent != 1001 {
		t.Errorf("sent = %d, want 1001 after one second at 1000/s", p.sent)
	}
}

func TestAppendBodyParse(t *testing.T) {
	b := appendBody(nil, 7, 123456789, 40)
	if len(b) != 40 {
		t.Errorf("body length %d, want 40: %q", len(b), b)
	}
	el := []byte("<message type='chat'><body>" + string(b) + "</body></message>")
	ep, i, ok := parseUint(el, len("<message type='chat'><body>xbm:"))
	ts, _, ok2 := parseUint(el, i+1)
	if !ok || !ok2 || ep != 7 || ts != 123456789 {
		t.Errorf("parsed epoch %d stamp %d (%v %v) from %s", ep, ts, ok, ok2, el)
	}
}

func TestErrorCountsBounded(t *testing.T) {
	var e errorCounts
	for i := range 20 {
		e.add(errorString(string(rune('a' + i))))
	}
	e.add(errorString("a"))
	m := e.snapshot()
	if len(m) != maxErrorKinds+1 || m["a"] != 2 || m["(other errors)"] != 20-maxErrorKinds {
		t.Errorf("snapshot = %v", m)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
