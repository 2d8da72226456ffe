package ratelimit

import (
	"testing"
	"time"
)

// TestShaper: a full bucket passes a burst at once; past it, reading waits
// for the rate.
func TestShaper(t *testing.T) {
	if New(0, 10) != nil {
		t.Error("New(0, …) is a limit")
	}
	s := New(100000, 10000) // 100 KB/s, 10 KB bucket
	start := time.Now()
	s.Take(10000)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("a burst within the bucket waited %v", d)
	}
	s.Take(20000) // 20 KB of debt: 0.2 s
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("30 KB at 100 KB/s with a 10 KB bucket took %v", d)
	}
}
