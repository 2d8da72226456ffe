package offline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// session is a router.Session whose writes succeed or fail on demand.
type session struct {
	j      jid.JID
	mu     sync.Mutex
	lose   bool // done(false) for everything: the stream closed unwritten
	closed bool // DeliverThen returns ErrClosed
	got    []string
}

func (s *session) JID() jid.JID           { return s.j }
func (s *session) Deliver(b []byte) error { return s.DeliverThen(b, nil) }
func (s *session) Close(stream.Error)     {}
func (s *session) DeliverThen(b []byte, done func(bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return router.ErrClosed
	}
	if s.lose {
		s.closed = true
		go done(false) // as a writer would, later and elsewhere
		return nil
	}
	s.got = append(s.got, string(b))
	go done(true)
	return nil
}

func (s *session) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// priorities is a Presence with fixed answers.
type priorities map[string]int

func (p priorities) Priority(j jid.JID) (int, bool) {
	v, ok := p[j.String()]
	return v, ok
}

func message(t *testing.T, body string) *router.Stanza {
	t.Helper()
	st, err := router.Parse([]byte("<message from='alice@localhost/a' to='bob@localhost' type='chat'><body>" + body + "</body></message>"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newService(t *testing.T, p Presence) (*Service, *storage.DB) {
	t.Helper()
	db := storagetest.Open(t, storagetest.SQLite(t))
	if err := db.Accounts().Create(t.Context(), storage.Account{JID: "bob@localhost"}); err != nil {
		t.Fatal(err)
	}
	s := New(db.Offline(), p, jid.MustParse("localhost"), Limits{MaxMessages: 100, MaxAge: time.Hour, SweepInterval: time.Hour}, nil)
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s, db
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStoredAfterComingOnline: the router found no resource, the account
// came online before the message was stored: it is delivered at once,
// not at the next login.
func TestStoredAfterComingOnline(t *testing.T) {
	b := &session{j: jid.MustParse("bob@localhost/b")}
	s, _ := newService(t, priorities{"bob@localhost/b": 0})
	s.available(t.Context(), b) // nothing stored yet
	if got := s.undeliverable(t.Context(), message(t, "late")); got != router.Handled {
		t.Fatalf("undeliverable = %v, want Handled", got)
	}
	waitFor(t, "delivery", func() bool { return len(b.messages()) == 1 })
	if m := b.messages()[0]; !strings.Contains(m, "<body>late</body><delay xmlns='urn:xmpp:delay' from='localhost'") {
		t.Errorf("delivered %s", m)
	}
}

// TestUnwrittenKept: a session that closes before writing leaves the
// messages stored, and the account's next resource gets them.
func TestUnwrittenKept(t *testing.T) {
	gone := &session{j: jid.MustParse("bob@localhost/gone"), lose: true}
	next := &session{j: jid.MustParse("bob@localhost/next")}
	s, db := newService(t, priorities{"bob@localhost/gone": 1, "bob@localhost/next": 0})
	for _, body := range []string{"one", "two", "three"} {
		s.undeliverable(t.Context(), message(t, body))
	}
	s.available(t.Context(), gone)
	waitFor(t, "the failed delivery to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.users["bob@localhost"] == nil
	})
	if n, _ := db.Offline().Count(t.Context(), "bob@localhost"); n != 3 {
		t.Fatalf("%d stored after an unwritten delivery, want 3", n)
	}
	s.available(t.Context(), next)
	waitFor(t, "delivery", func() bool { return len(next.messages()) == 3 })
	waitFor(t, "deletion", func() bool {
		n, _ := db.Offline().Count(t.Context(), "bob@localhost")
		return n == 0
	})
}

// TestNegativePriorityIgnored: OnAvailable with a negative priority
// delivers nothing and tracks nothing.
func TestNegativePriorityIgnored(t *testing.T) {
	neg := &session{j: jid.MustParse("bob@localhost/neg")}
	s, _ := newService(t, priorities{"bob@localhost/neg": -1})
	s.undeliverable(t.Context(), message(t, "x"))
	s.available(t.Context(), neg)
	s.undeliverable(t.Context(), message(t, "y"))
	time.Sleep(50 * time.Millisecond)
	if got := neg.messages(); len(got) != 0 {
		t.Fatalf("negative-priority resource got %q", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.users) != 0 {
		t.Fatalf("tracking %v", s.users)
	}
}

// listCounter counts the List calls per account on a real store.
type listCounter struct {
	Store
	mu    sync.Mutex
	lists map[string]int
}

func (c *listCounter) List(ctx context.Context, jid string, after int64, limit int) ([]storage.OfflineMessage, error) {
	c.mu.Lock()
	c.lists[jid]++
	c.mu.Unlock()
	return c.Store.List(ctx, jid, after, limit)
}

func (c *listCounter) count(jid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists[jid]
}

// TestLoginWithoutMessagesReadsNothing: the service learns at Start which
// accounts have stored messages, so a login of any other account reads
// nothing from storage; messages stored before the start, and while the
// service runs, are still delivered, and an account whose messages were
// delivered is not looked up again.
func TestLoginWithoutMessagesReadsNothing(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		for _, a := range []string{"bob@localhost", "carol@localhost"} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: a}); err != nil {
				t.Fatal(err)
			}
		}
		// Stored by an earlier run of the server.
		if _, err := db.Offline().Push(ctx, "carol@localhost", time.Now(), []byte("<message to='carol@localhost'><body>before</body></message>"), storage.OfflineLimits{Messages: 100}); err != nil {
			t.Fatal(err)
		}
		store := &listCounter{Store: db.Offline(), lists: map[string]int{}}
		s := New(store, priorities{"bob@localhost/b": 0, "carol@localhost/c": 0, "carol@localhost/c2": 0},
			jid.MustParse("localhost"), Limits{MaxMessages: 100, MaxAge: time.Hour, SweepInterval: time.Hour}, nil)
		s.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Stop(ctx)
		})

		bob := &session{j: jid.MustParse("bob@localhost/b")}
		s.available(ctx, bob)
		carol := &session{j: jid.MustParse("carol@localhost/c")}
		s.available(ctx, carol)
		waitFor(t, "carol's stored message", func() bool { return len(carol.messages()) == 1 })
		if !strings.Contains(carol.messages()[0], "<body>before</body>") {
			t.Errorf("carol got %q", carol.messages())
		}
		waitFor(t, "carol's delivery to end", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			u := s.users["carol@localhost"]
			return u != nil && !u.delivering
		})
		if n := store.count("bob@localhost"); n != 0 {
			t.Errorf("bob's login read storage %d times, want 0", n)
		}
		// A message stored for an account while it is offline is
		// delivered at its next login.
		s.unavailable(ctx, bob)
		if got := s.undeliverable(ctx, message(t, "while away")); got != router.Handled {
			t.Fatalf("undeliverable = %v", got)
		}
		bob2 := &session{j: jid.MustParse("bob@localhost/b")}
		s.available(ctx, bob2)
		waitFor(t, "bob's stored message", func() bool { return len(bob2.messages()) == 1 })
		// Carol's queue was emptied: her next resource reads nothing.
		before := store.count("carol@localhost")
		s.available(ctx, &session{j: jid.MustParse("carol@localhost/c2")})
		time.Sleep(50 * time.Millisecond)
		if n := store.count("carol@localhost"); n != before {
			t.Errorf("carol's second login read storage %d more times, want 0", n-before)
		}
	})
}

// lostCommit is a Store whose Push commits the message and then fails, as
// when the connection to the database breaks before the commit's answer
// arrives.
type lostCommit struct {
	Store
}

func (l lostCommit) Push(ctx context.Context, jid string, stamp time.Time, stanza []byte, lim storage.OfflineLimits) (int64, error) {
	if _, err := l.Store.Push(ctx, jid, stamp, stanza, lim); err != nil {
		return 0, err
	}
	return 0, errors.New("storage: push offline message: commit: driver: bad connection")
}

// TestPushFailure: when storage fails, the hook returns Failed (the router
// then answers wait/internal-server-error) rather than Continue (refused:
// service-unavailable); and a message whose commit landed although Push
// failed is still delivered at the next login, though Start had found no
// messages for the account.
func TestPushFailure(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLite(t))
	if err := db.Accounts().Create(t.Context(), storage.Account{JID: "bob@localhost"}); err != nil {
		t.Fatal(err)
	}
	b := &session{j: jid.MustParse("bob@localhost/b")}
	s := New(lostCommit{db.Offline()}, priorities{"bob@localhost/b": 0}, jid.MustParse("localhost"),
		Limits{MaxMessages: 100, MaxAge: time.Hour, SweepInterval: time.Hour}, nil)
	s.Start()
	t.Cleanup(func() { s.Stop(context.Background()) })
	if got := s.undeliverable(t.Context(), message(t, "maybe")); got != router.Failed {
		t.Fatalf("undeliverable = %v, want Failed", got)
	}
	s.available(t.Context(), b)
	waitFor(t, "delivery of the message whose commit landed", func() bool { return len(b.messages()) == 1 })
}
