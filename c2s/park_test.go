package c2s_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// readLoops counts the goroutines running a session's read loop: a parked
// session has none.
func readLoops() int {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "c2s.(*Session).readLoop")
}

func waitReadLoops(t *testing.T, want int) {
	t.Helper()
	xmpptest.WaitFor(t, wait, func() error {
		if n := readLoops(); n != want {
			return fmt.Errorf("%d read loops running, want %d", n, want)
		}
		return nil
	})
}

func isChat(body string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && strings.Contains(e.Inner, "<body>"+body+"</body>")
	}
}

// TestParking: silent sessions give back their read goroutines, and a
// parked session wakes for whatever its client does next: a stanza, a
// stanza split across a pause, whitespace, closing its stream.
func TestParking(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.ParkAfter = config.Duration{Duration: 50 * time.Millisecond}
		c.C2S.MaxResourcesPerAccount = 0 // bob has 21
	})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: "b"})
	var idle []*xmpptest.Client
	for i := range 20 {
		idle = append(idle, srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: fmt.Sprintf("idle%d", i)}))
	}
	waitReadLoops(t, 0)
	checkParkedHoldNothing(t, srv, 22)

	// Each message wakes a parked sender; the receiver is parked too.
	for i := range 5 {
		body := fmt.Sprintf("m%d", i)
		a.Send("<message to='bob@localhost/b' type='chat'><body>%s</body></message>", body)
		b.Expect(wait, body, isChat(body))
		waitReadLoops(t, 0)
	}
	checkParkedHoldNothing(t, srv, 22)

	// A stanza split across a pause longer than park_after: the session
	// never parks inside a stanza.
	a.Send("<message to='bob@localhost/b' type='chat'><body>spl")
	time.Sleep(200 * time.Millisecond)
	a.Send("it</body></message>")
	b.Expect(wait, "split message", isChat("split"))

	// Whitespace keepalives wake a session and it parks again.
	waitReadLoops(t, 0)
	a.Send(" \n ")
	time.Sleep(100 * time.Millisecond)
	a.Send("\n<message to='bob@localhost/b' type='chat'><body>after-space</body></message>")
	b.Expect(wait, "message after whitespace", isChat("after-space"))

	// Several stanzas in one write, the last of them cut short.
	a.Send("<message to='bob@localhost/b' type='chat'><body>x1</body></message><message to='bob@localhost/b' type='chat'><body>x2</body></message><message to='bob@localhost/b'")
	b.Expect(wait, "x1", isChat("x1"))
	b.Expect(wait, "x2", isChat("x2"))
	time.Sleep(100 * time.Millisecond)
	a.Send(" type='chat'><body>x3</body></message>")
	b.Expect(wait, "x3", isChat("x3"))

	// A parked client that closes its stream ends its session.
	waitReadLoops(t, 0)
	before := srv.Router().SessionCount()
	idle[0].Close()
	xmpptest.WaitFor(t, wait, func() error {
		if n := srv.Router().SessionCount(); n != before-1 {
			return fmt.Errorf("%d sessions, want %d", n, before-1)
		}
		return nil
	})

	// Shutdown ends parked sessions with system-shutdown.
	waitReadLoops(t, 0)
	srv.Stop(t)
	for _, c := range append(idle[1:], a, b) {
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Fatalf("%s: stream not closed by shutdown", c.JID)
		}
		if err := c.Err(); err == nil || !strings.Contains(err.Error(), "system-shutdown") {
			t.Fatalf("%s: stream ended with %v, want system-shutdown", c.JID, err)
		}
	}
	waitReadLoops(t, 0)
}

// checkParkedHoldNothing: want sessions are parked, and none of them keeps
// a decoder or a read buffer.
func checkParkedHoldNothing(t *testing.T, srv *xmpptest.Server, want int) {
	t.Helper()
	xmpptest.WaitFor(t, wait, func() error {
		if parked, holding := srv.C2S().ParkedHolding(); parked != want || holding != 0 {
			return fmt.Errorf("%d sessions parked (want %d), %d of them holding a decoder or read buffer", parked, want, holding)
		}
		return nil
	})
}
