// Package burstlog logs a burst of one failure once rather than once per
// occurrence: a storage outage makes every stanza that needs the database
// fail the same way, and one ERROR line per stanza (dozens a second) buries
// everything else in the log.
//
// A [Logger] writes the first failure at Error. For its Period after that
// it only counts failures. The first failure after the period is written at
// Error again, with the number left out since the line before (attribute
// "suppressed"). A success that ends a burst ([Logger.OK]) writes one Info
// line with the failures of the whole burst and how long it lasted. Nothing
// runs in the background: a burst that ends with no later success leaves
// its count untold until the next failure.
package burstlog

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Logger logs the failures of one kind (one message) once per burst. Its
// zero value is not usable; create it with New. It is safe for concurrent
// use.
type Logger struct {
	log    *slog.Logger     // immutable
	msg    string           // immutable
	period time.Duration    // immutable
	now    func() time.Time // immutable

	// failing is set from a burst's first failure until the success that
	// ends it, so that OK costs one atomic load while all is well.
	failing atomic.Bool

	mu         sync.Mutex
	next       time.Time // before it, failures are counted, not logged; guarded by mu
	suppressed int       // failures not logged since the last line; guarded by mu
	total      int       // failures of the burst so far; guarded by mu
	since      time.Time // the burst's first failure; guarded by mu
}

// New returns a Logger that writes msg to log (nil discards), at most once
// per period while failures go on.
func New(log *slog.Logger, msg string, period time.Duration) *Logger {
	return NewClock(log, msg, period, time.Now)
}

// NewClock is New with a clock, for tests.
func NewClock(log *slog.Logger, msg string, period time.Duration, now func() time.Time) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Logger{log: log, msg: msg, period: period, now: now}
}

// Fail records a failure. The first of a burst, and the first after each
// period, is written at Error with err and args (slog key-value pairs);
// the others are counted.
func (l *Logger) Fail(err error, args ...any) {
	now := l.now()
	l.mu.Lock()
	if l.total == 0 {
		l.since = now
	}
	l.total++
	l.failing.Store(true)
	if now.Before(l.next) {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.suppressed = 0
	l.next = now.Add(l.period)
	l.mu.Unlock()

	args = append(args, "err", err)
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	} else {
		args = append(args, "repeats_logged_every", l.period.String())
	}
	l.log.Error(l.msg, args...)
}

// OK records a success. When it ends a burst, one Info line says how many
// failures the burst had, how many of them were not logged, and how long
// it lasted.
func (l *Logger) OK() {
	if !l.failing.Load() {
		return
	}
	l.mu.Lock()
	if !l.failing.Load() { // another OK ended the burst meanwhile
		l.mu.Unlock()
		return
	}
	l.failing.Store(false)
	total, suppressed, since := l.total, l.suppressed, l.since
	l.total, l.suppressed, l.next = 0, 0, time.Time{}
	l.mu.Unlock()
	l.log.Info(l.msg+": recovered", "failures", total, "suppressed", suppressed,
		"lasted", l.now().Sub(since).Round(time.Millisecond).String())
}
