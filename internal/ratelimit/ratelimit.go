// Package ratelimit holds the read-side token bucket that c2s and s2s put
// in front of their XML decoders: a connection over its rate is not read
// from until it is back under, so TCP flow control slows the sender and it
// cannot take more than its share of the read path.
package ratelimit

import "time"

// Shaper is a token bucket over the bytes a connection sends (what
// ejabberd's shapers and Prosody's mod_limits do). It is owned by the one
// goroutine that reads the connection.
type Shaper struct {
	rate, burst float64 // bytes per second; bucket size
	tokens      float64
	last        time.Time
}

// New returns a shaper of rate bytes per second with a bucket of burst
// bytes, full; nil when rate is not positive (no limit).
func New(rate, burst int) *Shaper {
	if rate <= 0 {
		return nil
	}
	return &Shaper{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// Take accounts for n bytes read and sleeps while the bucket is in debt.
func (s *Shaper) Take(n int) {
	now := time.Now()
	s.tokens = min(s.burst, s.tokens+now.Sub(s.last).Seconds()*s.rate)
	s.last = now
	s.tokens -= float64(n)
	if s.tokens < 0 {
		time.Sleep(time.Duration(-s.tokens / s.rate * float64(time.Second)))
	}
}
