package burstlog_test

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/burstlog"
)

// clock is a settable time for the Logger under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func lines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	b.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestBurst: one Error line for a burst within the period, the count of
// the rest on the next Error line after it, one Info line when a success
// ends the burst, and a fresh burst logged again.
func TestBurst(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	c := &clock{t: time.Unix(1000, 0)}
	l := burstlog.NewClock(log, "account lookup failed", time.Minute, c.now)
	down := errors.New("connection refused")

	l.OK() // nothing failed: nothing to say
	if got := lines(&buf); got != nil {
		t.Fatalf("OK with no failure logged %q", got)
	}

	for range 100 {
		l.Fail(down, "jid", "bob@localhost")
		c.add(100 * time.Millisecond)
	}
	got := lines(&buf)
	want := []string{`level=ERROR msg="account lookup failed" jid=bob@localhost err="connection refused" repeats_logged_every=1m0s`}
	if !equal(got, want) {
		t.Fatalf("100 failures in 10 s logged\n%q\nwant\n%q", got, want)
	}

	c.add(time.Minute)
	l.Fail(down, "jid", "carol@localhost")
	got = lines(&buf)
	want = []string{`level=ERROR msg="account lookup failed" jid=carol@localhost err="connection refused" suppressed=99`}
	if !equal(got, want) {
		t.Fatalf("a failure after the period logged\n%q\nwant\n%q", got, want)
	}

	l.Fail(down)
	c.add(time.Second)
	l.OK()
	l.OK()
	got = lines(&buf)
	want = []string{`level=INFO msg="account lookup failed: recovered" failures=102 suppressed=1 lasted=1m11s`}
	if !equal(got, want) {
		t.Fatalf("the end of the burst logged\n%q\nwant\n%q", got, want)
	}

	l.Fail(down)
	got = lines(&buf)
	want = []string{`level=ERROR msg="account lookup failed" err="connection refused" repeats_logged_every=1m0s`}
	if !equal(got, want) {
		t.Fatalf("a new burst logged\n%q\nwant\n%q", got, want)
	}
}

// TestConcurrent: failures and successes from many goroutines (for the
// race detector); every burst ends with exactly as many failures counted
// as were recorded.
func TestConcurrent(t *testing.T) {
	var buf syncBuffer
	l := burstlog.New(slog.New(slog.NewTextHandler(&buf, nil)), "x", time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				l.Fail(errors.New("down"))
			}
		})
	}
	wg.Wait()
	l.OK()
	s := buf.String()
	if n := strings.Count(s, "level=ERROR"); n != 1 {
		t.Errorf("%d Error lines, want 1:\n%s", n, s)
	}
	if !strings.Contains(s, "failures=8000 suppressed=7999") {
		t.Errorf("the recovery line does not count 8000 failures:\n%s", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func equal(a, b []string) bool { return slices.Equal(a, b) }
