package roster_test

import (
	"context"
	"encoding/xml"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/roster"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestSubscribersFollowWritesWhileOnline: alice's summary is cached from
// her login; each write to her rows while she stays online, whoever's
// stanza caused it, changes who gets her next presence.
func TestSubscribersFollowWritesWhileOnline(t *testing.T) {
	cases := []struct {
		name string
		end  step // ends bob's subscription to alice
	}{
		{"alice removes bob (delete)", step{"alice", "remove"}},
		{"alice cancels with unsubscribed (outbound write)", step{"alice", "unsubscribed"}},
		{"bob unsubscribes (inbound write to alice's row)", step{"bob", "unsubscribe"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t) // alice is online: her summary is cached
			p.do(t, step{"bob", "subscribe"})
			p.do(t, step{"alice", "subscribed"})
			p.alice.Send("<presence><show>away</show></presence>")
			p.alice.Sync()
			if got := presences(p.bob.Sync()); !contains(got, "available alice@localhost/a") {
				t.Fatalf("bob (now subscribed) got %q, want alice's new presence", got)
			}
			p.do(t, tc.end)
			p.alice.Send("<presence><show>dnd</show></presence>")
			p.alice.Sync()
			if got := presences(p.bob.Sync()); contains(got, "available alice@localhost/a") {
				t.Fatalf("bob (no longer subscribed) got %q", got)
			}
		})
	}
}

// TestLoginSeesWritesWhileOnline: a new resource of an online account
// gets the requests and probes its rows hold now, not when the account's
// first resource logged in.
func TestLoginSeesWritesWhileOnline(t *testing.T) {
	p := newPair(t)
	loginAlice := func(res string) []string {
		t.Helper()
		c := p.srv.Login(t, p.aliceJ, "pw", xmpptest.LoginOptions{Resource: res})
		fetchRoster(t, c)
		c.Send("<presence/>")
		return presences(c.Sync())
	}
	p.do(t, step{"bob", "subscribe"}) // pending-in on alice's row
	if got := loginAlice("a2"); !contains(got, "subscribe bob@localhost") {
		t.Fatalf("alice/a2 got %q, want bob's request", got)
	}
	p.do(t, step{"alice", "subscribed"})
	if got := loginAlice("a3"); contains(got, "subscribe bob@localhost") {
		t.Fatalf("alice/a3 got %q: the request was answered", got)
	}
	p.do(t, step{"alice", "subscribe"})
	p.do(t, step{"bob", "subscribed"}) // inbound: alice's row becomes both
	if got := loginAlice("a4"); !contains(got, "available bob@localhost/b") {
		t.Fatalf("alice/a4 got %q, want bob's presence (probe answer)", got)
	}
}

// The tests below build the router and the roster directly, so that the
// roster's storage can be wrapped: countingStore is the real storage,
// counting the calls made for each account.

type countingStore struct {
	roster.Store

	mu    sync.Mutex
	calls map[string]map[string]int                      // user → method → calls; guarded by mu
	fail  error                                          // returned by All while set; guarded by mu
	after func(ctx context.Context, method, user string) // run after a call; guarded by mu
}

// note counts a call and returns the error to inject, if any.
func (c *countingStore) note(method, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls[user] == nil {
		c.calls[user] = map[string]int{}
	}
	c.calls[user][method]++
	if method == "All" {
		return c.fail
	}
	return nil
}

func (c *countingStore) done(ctx context.Context, method, user string) {
	c.mu.Lock()
	f := c.after
	c.mu.Unlock()
	if f != nil {
		f(ctx, method, user)
	}
}

// take returns the calls made for user since the last take.
func (c *countingStore) take(user string) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.calls[user]
	delete(c.calls, user)
	return m
}

func (c *countingStore) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

func (c *countingStore) setAfter(f func(ctx context.Context, method, user string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after = f
}

func (c *countingStore) Items(ctx context.Context, user string) ([]storage.RosterItem, int64, error) {
	if err := c.note("Items", user); err != nil {
		return nil, 0, err
	}
	items, ver, err := c.Store.Items(ctx, user)
	c.done(ctx, "Items", user)
	return items, ver, err
}

func (c *countingStore) Get(ctx context.Context, user, contact string) (storage.RosterItem, bool, error) {
	c.note("Get", user)
	return c.Store.Get(ctx, user, contact)
}

func (c *countingStore) Put(ctx context.Context, user string, it storage.RosterItem, bump bool) (int64, error) {
	c.note("Put", user)
	return c.Store.Put(ctx, user, it, bump)
}

func (c *countingStore) Delete(ctx context.Context, user, contact string) (int64, error) {
	c.note("Delete", user)
	return c.Store.Delete(ctx, user, contact)
}

func (c *countingStore) Count(ctx context.Context, user string) (int, error) {
	c.note("Count", user)
	return c.Store.Count(ctx, user)
}

func (c *countingStore) All(ctx context.Context, user string) ([]storage.RosterItem, error) {
	if err := c.note("All", user); err != nil {
		return nil, err
	}
	items, err := c.Store.All(ctx, user)
	c.done(ctx, "All", user)
	return items, err
}

// session is a bound resource that records what it is sent.
type session struct {
	j       jid.JID
	discard bool // true: count only (benchmarks); set before the session is busy
	mu      sync.Mutex
	n       int      // stanzas delivered; guarded by mu
	got     []string // guarded by mu
}

func (s *session) JID() jid.JID { return s.j }
func (s *session) Deliver(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if !s.discard {
		s.got = append(s.got, string(b))
	}
	return nil
}
func (s *session) DeliverThen(b []byte, done func(bool)) error {
	err := s.Deliver(b)
	done(err == nil)
	return err
}
func (s *session) Close(stream.Error) {}

// presences returns "type from" for each presence received since the
// last call.
func (s *session) presences(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	got := s.got
	s.got = nil
	s.mu.Unlock()
	var out []string
	for _, raw := range got {
		var p struct {
			XMLName xml.Name
			Type    string `xml:"type,attr"`
			From    string `xml:"from,attr"`
		}
		if err := xml.Unmarshal([]byte(raw), &p); err != nil {
			t.Fatalf("stanza %q: %v", raw, err)
		}
		if p.XMLName.Local == "presence" {
			if p.Type == "" {
				p.Type = "available"
			}
			out = append(out, p.Type+" "+p.From)
		}
	}
	return out
}

type accountsOf struct{ a *storage.Accounts }

func (a accountsOf) Exists(ctx context.Context, j jid.JID) (bool, error) {
	return a.a.Exists(ctx, j.String())
}

// direct is alice and bob on a router with the roster over a
// countingStore, subscribed to each other (both).
type direct struct {
	r     *router.Router
	store *countingStore
}

func newDirect(t testing.TB, db *storage.DB) *direct {
	t.Helper()
	ctx := t.Context()
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if err := db.Accounts().Create(ctx, storage.Account{JID: u}); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]string{{"alice@localhost", "bob@localhost"}, {"bob@localhost", "alice@localhost"}} {
		it := storage.RosterItem{Contact: pair[1], Subscription: "both", Visible: true}
		if _, err := db.Rosters().Put(ctx, pair[0], it, true); err != nil {
			t.Fatal(err)
		}
	}
	d := &direct{
		r:     router.New(jid.MustParse("localhost"), accountsOf{db.Accounts()}, nil),
		store: &countingStore{Store: db.Rosters(), calls: map[string]map[string]int{}},
	}
	roster.New(d.store, d.r, 0, nil).Register(d.r.Registry())
	return d
}

// login binds full and sends its initial presence.
func (d *direct) login(t testing.TB, full string) *session {
	t.Helper()
	s := &session{j: jid.MustParse(full)}
	d.r.Bind(t.Context(), s)
	d.send(t, s, "<presence/>")
	return s
}

// send sends a stanza as the client of s would (from stamped).
func (d *direct) send(t testing.TB, s *session, raw string) {
	t.Helper()
	var h struct {
		XMLName xml.Name
		Type    string `xml:"type,attr"`
		To      string `xml:"to,attr"`
	}
	if err := xml.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	st := &router.Stanza{Kind: router.KindOf(h.XMLName.Local), Type: h.Type, From: s.j, Raw: []byte(raw)}
	if h.To != "" {
		st.To = jid.MustParse(h.To)
	}
	st.Raw = router.Restamp(st, s.j, st.To).Raw
	d.r.FromClient(t.Context(), st)
}

// TestSummaryStorageCalls: a login loads alice's summary once (two
// queries); later presence, a second resource and the disconnects read
// nothing; a login after the last session ended loads again.
func TestSummaryStorageCalls(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		d := newDirect(t, db)
		bob := d.login(t, "bob@localhost/b")
		load := map[string]int{"All": 1}
		var a, a2 *session
		steps := []struct {
			name    string
			do      func()
			calls   map[string]int // alice's storage calls
			bobGets []string
		}{
			{"login", func() { a = d.login(t, "alice@localhost/a") },
				load, []string{"available alice@localhost/a"}},
			{"presence change", func() { d.send(t, a, "<presence><show>away</show></presence>") },
				nil, []string{"available alice@localhost/a"}},
			{"second resource", func() { a2 = d.login(t, "alice@localhost/a2") },
				nil, []string{"available alice@localhost/a2"}},
			{"both resources disconnect", func() { d.r.Unbind(t.Context(), a2); d.r.Unbind(t.Context(), a) },
				nil, []string{"unavailable alice@localhost/a2", "unavailable alice@localhost/a"}},
			{"login after the last session ended", func() { d.login(t, "alice@localhost/a3") },
				load, []string{"available alice@localhost/a3"}},
		}
		bob.presences(t)
		for _, st := range steps {
			d.store.take("alice@localhost")
			st.do()
			if got := d.store.take("alice@localhost"); !maps.Equal(got, st.calls) {
				t.Errorf("%s: alice's storage calls = %v, want %v", st.name, got, st.calls)
			}
			if got := bob.presences(t); !slices.Equal(got, st.bobGets) {
				t.Errorf("%s: bob got %q, want %q", st.name, got, st.bobGets)
			}
		}
		// The probes came from the summary too.
		for _, s := range []*session{a, a2} {
			if got := s.presences(t); !contains(got, "available bob@localhost/b") {
				t.Errorf("%s got %q, want bob's presence (probe answer)", s.j, got)
			}
		}
	})
}

// TestSummaryLoadRacesWrite: a write to alice's rows that lands while her
// summary is being read must keep what was read out of the cache.
func TestSummaryLoadRacesWrite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		d := newDirect(t, db)
		bob := d.login(t, "bob@localhost/b")
		var done atomic.Bool
		d.store.setAfter(func(ctx context.Context, method, user string) {
			if method == "All" && user == "alice@localhost" && done.CompareAndSwap(false, true) {
				// bob ends his subscription to alice after her summary
				// was read and before it is kept.
				d.send(t, bob, "<presence to='alice@localhost' type='unsubscribe'/>")
			}
		})
		a := d.login(t, "alice@localhost/a")
		bob.presences(t) // the racing broadcast may still reach bob, as before the cache
		d.send(t, a, "<presence><show>away</show></presence>")
		if got := bob.presences(t); len(got) != 0 {
			t.Fatalf("bob, no longer subscribed, got %q", got)
		}
	})
}

// TestSummaryDroppedWhenOfflineDuringLoad: a summary whose account lost
// its last session while it was being read is not kept: the next login
// reads storage again.
func TestSummaryDroppedWhenOfflineDuringLoad(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		d := newDirect(t, db)
		var a *session
		var done atomic.Bool
		d.store.setAfter(func(ctx context.Context, method, user string) {
			// Unbind loads again for the unavailable broadcast: once only.
			if method == "All" && user == "alice@localhost" && done.CompareAndSwap(false, true) {
				d.r.Unbind(ctx, a)
			}
		})
		a = &session{j: jid.MustParse("alice@localhost/a")}
		d.r.Bind(t.Context(), a)
		d.send(t, a, "<presence/>")
		d.store.setAfter(nil)
		d.store.take("alice@localhost")
		d.login(t, "alice@localhost/a2")
		want := map[string]int{"All": 1}
		if got := d.store.take("alice@localhost"); !maps.Equal(got, want) {
			t.Fatalf("login after the racing unbind: alice's storage calls = %v, want %v (a fresh load)", got, want)
		}
	})
}

// TestSummaryLoadErrorNotCached: a failed load sends no presence and is
// tried again next time.
func TestSummaryLoadErrorNotCached(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		d := newDirect(t, db)
		bob := d.login(t, "bob@localhost/b")
		bob.presences(t)
		d.store.setFail(errors.New("injected failure"))
		a := d.login(t, "alice@localhost/a")
		if got := bob.presences(t); len(got) != 0 {
			t.Fatalf("bob got %q while alice's roster could not be read", got)
		}
		d.store.setFail(nil)
		d.send(t, a, "<presence><show>away</show></presence>")
		if got := bob.presences(t); !slices.Equal(got, []string{"available alice@localhost/a"}) {
			t.Fatalf("bob got %q after storage recovered, want alice's presence", got)
		}
	})
}

// BenchmarkPresenceBroadcast: alice, online with bob subscribed, changes
// her presence; it reaches her resource and bob.
func BenchmarkPresenceBroadcast(b *testing.B) {
	d := newDirect(b, storagetest.Open(b, storagetest.SQLite(b)))
	bob := d.login(b, "bob@localhost/b")
	a := d.login(b, "alice@localhost/a")
	bob.discard, a.discard = true, true
	raw := []byte("<presence from='alice@localhost/a'><show>away</show></presence>")
	st := &router.Stanza{Kind: router.KindPresence, From: a.j, Raw: raw}
	ctx := b.Context()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		d.r.FromClient(ctx, st)
	}
	b.StopTimer()
	if bob.n == 0 {
		b.Fatal("bob got nothing")
	}
}

// BenchmarkLoginLogout: alice, with bob subscribed both ways and online,
// sends initial presence and disconnects.
func BenchmarkLoginLogout(b *testing.B) {
	d := newDirect(b, storagetest.Open(b, storagetest.SQLite(b)))
	bob := d.login(b, "bob@localhost/b")
	bob.discard = true
	raw := []byte("<presence from='alice@localhost/a'/>")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		a := &session{j: jid.MustParse("alice@localhost/a"), discard: true}
		d.r.Bind(ctx, a)
		d.r.FromClient(ctx, &router.Stanza{Kind: router.KindPresence, From: a.j, Raw: raw})
		d.r.Unbind(ctx, a)
	}
	b.StopTimer()
	if bob.n == 0 {
		b.Fatal("bob got nothing")
	}
}
