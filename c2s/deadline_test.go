package c2s

import (
	"net"
	"testing"
	"time"
)

// deadlineConn counts the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// TestWriteDeadlineRenewal: the writer sets the write deadline once, not
// at every write, and again once an eighth of write_timeout has run, so a
// flush always has at least seven eighths of it.
func TestWriteDeadlineRenewal(t *testing.T) {
	const wt = 30 * time.Second
	dc := &deadlineConn{}
	s := &Session{srv: &Server{Limits: Limits{WriteTimeout: wt}}, conn: &guardConn{Conn: dc}}
	for range 1000 {
		s.renewWriteDeadline()
	}
	if len(dc.set) != 1 {
		t.Fatalf("%d deadlines set for 1,000 writes within an eighth of write_timeout, want 1", len(dc.set))
	}
	if d := time.Until(dc.set[0]); d < wt-time.Second || d > wt {
		t.Fatalf("deadline %v from now, want write_timeout (%v)", d, wt)
	}
	// As if an eighth and a little more had run since.
	s.writeDeadline = time.Now().Add(wt - wt/8 - time.Second)
	s.renewWriteDeadline()
	if len(dc.set) != 2 {
		t.Fatalf("%d deadlines set, want a second once less than seven eighths of write_timeout were left", len(dc.set))
	}
	if d := time.Until(dc.set[1]); d < wt-time.Second {
		t.Fatalf("renewed deadline %v from now, want write_timeout (%v)", d, wt)
	}
}
