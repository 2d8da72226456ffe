package push_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/push"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// memStore is a push.Store in memory.
type memStore struct {
	mu   sync.Mutex
	regs map[string][]storage.PushRegistration
}

func (m *memStore) Owners(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for o, r := range m.regs {
		if len(r) > 0 {
			out = append(out, o)
		}
	}
	return out, nil
}

func (m *memStore) List(_ context.Context, user string) ([]storage.PushRegistration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]storage.PushRegistration(nil), m.regs[user]...), nil
}

func (m *memStore) Enable(_ context.Context, r storage.PushRegistration, _ int) ([]storage.PushRegistration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regs[r.Account] = append(m.regs[r.Account], r)
	return nil, nil
}

func (m *memStore) Disable(_ context.Context, user, service, node string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var kept []storage.PushRegistration
	for _, r := range m.regs[user] {
		if r.Service != service || (node != "" && r.Node != node) {
			kept = append(kept, r)
		}
	}
	n := len(m.regs[user]) - len(kept)
	m.regs[user] = kept
	return n, nil
}

func (m *memStore) count(user string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.regs[user])
}

type exists map[string]bool

func (e exists) Exists(_ context.Context, j jid.JID) (bool, error) { return e[j.String()], nil }

// silentApp is an app server that answers only when told to.
type silentApp struct {
	mu  sync.Mutex
	got []*router.Stanza
}

func (a *silentApp) HandleStanza(_ context.Context, st *router.Stanza) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, st)
}

func (a *silentApp) take() []*router.Stanza {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.got
	a.got = nil
	return g
}

// TestFailures: an app server that does not answer has the registration
// removed after MaxFailures notifications in a row; a result in between
// starts the count again.
func TestFailures(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), exists{"bob@localhost": true}, nil)
	app := &silentApp{}
	r.Registry().Domain("push.localhost", app)
	// Stands for the offline store.
	r.Registry().Undeliverable(func(context.Context, *router.Stanza) router.Result { return router.Handled })
	store := &memStore{regs: map[string][]storage.PushRegistration{
		"bob@localhost": {{Account: "bob@localhost", Service: "push.localhost", Node: "n"}},
	}}
	const timeout = 50 * time.Millisecond
	ps := push.New(store, r, push.Options{Timeout: timeout, MaxFailures: 3}, nil)
	if err := ps.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ps.Register(r.Registry())
	message := func() *router.Stanza {
		t.Helper()
		st, err := router.Parse([]byte("<message type='chat' id='m' from='alice@localhost/a' to='bob@localhost'><body>hi</body></message>"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// send routes a message that causes one notification, and lets its
	// timeout pass (there is nothing else to wait for).
	send := func() {
		t.Helper()
		r.Route(ctx, message())
		got := app.take()
		if len(got) != 1 {
			t.Fatalf("%d notifications, want 1", len(got))
		}
		time.Sleep(3 * timeout)
	}
	send()
	send()
	// A result: the failures start again.
	r.Route(ctx, message())
	got := app.take()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	ok, err := router.Build(router.KindIQ, "result", got[0].ID, got[0].To, got[0].From, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Route(ctx, ok)
	send()
	send()
	if store.count("bob@localhost") != 1 {
		t.Fatal("removed after two failures in a row")
	}
	send()
	if store.count("bob@localhost") != 0 {
		t.Fatal("not removed after three failures in a row")
	}
	r.Route(ctx, message())
	if got := app.take(); len(got) != 0 {
		t.Fatalf("notified after the registration was removed: %s", got[0].Raw)
	}
}

// TestBusyAppServer: an app server that answers wait (resource-constraint:
// a rate limit) keeps the registration however often it does, so that a
// burst of messages cannot unregister a phone; a cancel answer removes it.
func TestBusyAppServer(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), exists{"bob@localhost": true}, nil)
	app := &silentApp{}
	r.Registry().Domain("push.localhost", app)
	r.Registry().Undeliverable(func(context.Context, *router.Stanza) router.Result { return router.Handled })
	store := &memStore{regs: map[string][]storage.PushRegistration{
		"bob@localhost": {{Account: "bob@localhost", Service: "push.localhost", Node: "n"}},
	}}
	ps := push.New(store, r, push.Options{Timeout: time.Second, MaxFailures: 3}, nil)
	if err := ps.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ps.Register(r.Registry())
	answer := func(e stanza.Error) {
		t.Helper()
		st, err := router.Parse([]byte("<message type='chat' id='m' from='alice@localhost/a' to='bob@localhost'><body>hi</body></message>"))
		if err != nil {
			t.Fatal(err)
		}
		r.Route(ctx, st)
		got := app.take()
		if len(got) != 1 {
			t.Fatalf("%d notifications, want 1", len(got))
		}
		r.Route(ctx, router.ErrorReply(got[0], e))
	}
	for range 10 {
		answer(router.ErrorText(stanza.Wait, stanza.ResourceConstraint, "slow down"))
	}
	if store.count("bob@localhost") != 1 {
		t.Fatal("a busy app server's wait answers removed the registration")
	}
	answer(router.ErrorText(stanza.Cancel, stanza.ItemNotFound, ""))
	if store.count("bob@localhost") != 0 {
		t.Fatal("a cancel answer left the registration")
	}
}
