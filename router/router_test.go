package router_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/blocking"
	"xmppd.dev/xmppd/carbons"
	"xmppd.dev/xmppd/push"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// fakeSession records what the router delivers to it.
type fakeSession struct {
	j    jid.JID
	mu   sync.Mutex
	got  []string
	full bool // Deliver fails as a full queue does
}

func (f *fakeSession) JID() jid.JID { return f.j }
func (f *fakeSession) Deliver(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return router.ErrQueueFull
	}
	f.got = append(f.got, string(b))
	return nil
}
func (f *fakeSession) Close(stream.Error) {}
func (f *fakeSession) DeliverThen(b []byte, done func(bool)) error {
	err := f.Deliver(b)
	if err == nil && done != nil {
		done(true)
	}
	return err
}
func (f *fakeSession) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.got
	f.got = nil
	return g
}

type accounts map[string]bool

func (a accounts) Exists(_ context.Context, j jid.JID) (bool, error) { return a[j.String()], nil }

func msg(t testing.TB, typ, from, to string) *router.Stanza {
	t.Helper()
	st, err := router.Build(router.KindMessage, typ, "m1", jid.MustParse(from), jid.MustParse(to), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func presence(t testing.TB, from, body string) *router.Stanza {
	t.Helper()
	raw := "<presence from='" + from + "'>" + body + "</presence>"
	return &router.Stanza{Kind: router.KindPresence, From: jid.MustParse(from), Raw: []byte(raw)}
}

// TestMessageRouting walks RFC 6121 §8.5 for messages to local accounts.
func TestMessageRouting(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"bob@localhost": true, "carol@localhost": true}, nil)
	var offline []string
	r.Registry().Undeliverable(func(_ context.Context, st *router.Stanza) router.Result {
		if st.To.Localpart() == "carol" {
			offline = append(offline, string(st.Raw))
			return router.Handled
		}
		return router.Continue
	})
	alice := &fakeSession{j: jid.MustParse("alice@localhost/a")}
	hi := &fakeSession{j: jid.MustParse("bob@localhost/hi")}
	lo := &fakeSession{j: jid.MustParse("bob@localhost/lo")}
	neg := &fakeSession{j: jid.MustParse("bob@localhost/neg")}
	bound := &fakeSession{j: jid.MustParse("bob@localhost/bound")} // never sends presence
	for _, s := range []*fakeSession{alice, hi, lo, neg, bound} {
		r.Bind(ctx, s)
	}
	r.FromClient(ctx, presence(t, "bob@localhost/hi", "<priority>5</priority>"))
	r.FromClient(ctx, presence(t, "bob@localhost/lo", "<priority>1</priority>"))
	r.FromClient(ctx, presence(t, "bob@localhost/neg", "<priority>-1</priority>"))
	for _, s := range []*fakeSession{hi, lo, neg, bound} {
		s.take()
	}

	cases := []struct {
		name, typ, to string
		want          map[*fakeSession]int // deliveries per session
		bounce        string               // error condition alice gets, "" for none
	}{
		{"chat to bare: highest priority", "chat", "bob@localhost", map[*fakeSession]int{hi: 1}, ""},
		{"normal to bare: highest priority", "", "bob@localhost", map[*fakeSession]int{hi: 1}, ""},
		{"headline to bare: all non-negative", "headline", "bob@localhost", map[*fakeSession]int{hi: 1, lo: 1}, ""},
		{"chat to full", "chat", "bob@localhost/lo", map[*fakeSession]int{lo: 1}, ""},
		{"chat to negative full", "chat", "bob@localhost/neg", map[*fakeSession]int{neg: 1}, ""},
		{"chat to bound, unavailable full", "chat", "bob@localhost/bound", map[*fakeSession]int{bound: 1}, ""},
		{"chat to unknown resource: as bare", "chat", "bob@localhost/gone", map[*fakeSession]int{hi: 1}, ""},
		{"headline to unknown resource: dropped", "headline", "bob@localhost/gone", nil, ""},
		{"groupchat to bare: error", "groupchat", "bob@localhost", nil, "service-unavailable"},
		{"groupchat to unknown resource: error", "groupchat", "bob@localhost/gone", nil, "service-unavailable"},
		{"error to bare: dropped", "error", "bob@localhost", nil, ""},
		{"chat to unknown user", "chat", "nobody@localhost", nil, "service-unavailable"},
		{"chat to other domain", "chat", "x@example.net", nil, "remote-server-not-found"},
		{"chat to offline user: undeliverable hook", "chat", "carol@localhost", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.Route(ctx, msg(t, tc.typ, "alice@localhost/a", tc.to))
			for _, s := range []*fakeSession{hi, lo, neg, bound} {
				if got := len(s.take()); got != tc.want[s] {
					t.Errorf("%s got %d, want %d", s.j, got, tc.want[s])
				}
			}
			got := alice.take()
			switch {
			case tc.bounce == "" && len(got) != 0:
				t.Errorf("sender got %q, want nothing", got)
			case tc.bounce != "" && (len(got) != 1 || !strings.Contains(got[0], "<"+tc.bounce)):
				t.Errorf("sender got %q, want a %s error", got, tc.bounce)
			}
		})
	}
	if len(offline) != 1 {
		t.Fatalf("undeliverable hook saw %d messages, want 1", len(offline))
	}
}

func TestFullQueueTakesUndeliverablePath(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"bob@localhost": true}, nil)
	var stored int
	r.Registry().Undeliverable(func(context.Context, *router.Stanza) router.Result { stored++; return router.Handled })
	bob := &fakeSession{j: jid.MustParse("bob@localhost/r"), full: true}
	r.Bind(ctx, bob)
	r.FromClient(ctx, presence(t, "bob@localhost/r", ""))
	r.Route(ctx, msg(t, "chat", "alice@localhost/a", "bob@localhost/r"))
	r.Route(ctx, msg(t, "chat", "alice@localhost/a", "bob@localhost"))
	if stored != 2 {
		t.Fatalf("undeliverable saw %d messages, want 2", stored)
	}
}

func TestBindReplaces(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	a := &fakeSession{j: jid.MustParse("alice@localhost/r")}
	b := &fakeSession{j: jid.MustParse("alice@localhost/r")}
	if old := r.Bind(ctx, a); old != nil {
		t.Fatalf("first bind replaced %v", old)
	}
	if old := r.Bind(ctx, b); old != router.Session(a) {
		t.Fatalf("second bind replaced %v, want the first session", old)
	}
	r.Unbind(ctx, a) // the replaced session ending must not unbind its successor
	if n := r.SessionCount(); n != 1 {
		t.Fatalf("%d sessions after unbinding the replaced one, want 1", n)
	}
}

func TestRegistryPanicsOnDuplicates(t *testing.T) {
	r := router.New(jid.MustParse("localhost"), nil, nil)
	r.Registry().Feature("urn:x")
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "urn:x") {
			t.Fatalf("duplicate feature: panic %v, want one naming urn:x", p)
		}
	}()
	r.Registry().Feature("urn:x")
}

// BenchmarkRouteMessage routes one chat message between two local
// sessions: the table lookup, the routing rules and the delivery.
func BenchmarkRouteMessage(b *testing.B) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	alice := &discardSession{j: jid.MustParse("alice@localhost/a")}
	bob := &discardSession{j: jid.MustParse("bob@localhost/b")}
	r.Bind(ctx, alice)
	r.Bind(ctx, bob)
	st := msg(b, "chat", "alice@localhost/a", "bob@localhost/b")
	b.SetBytes(int64(len(st.Raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Route(ctx, st)
	}
	if bob.n == 0 {
		b.Fatal("nothing delivered")
	}
}

type discardSession struct {
	j jid.JID
	n int
}

func (d *discardSession) JID() jid.JID         { return d.j }
func (d *discardSession) Deliver([]byte) error { d.n++; return nil }
func (d *discardSession) Close(stream.Error)   {}
func (d *discardSession) DeliverThen(b []byte, done func(bool)) error {
	d.n++
	done(true)
	return nil
}

// BenchmarkRouteMessageFeatures is BenchmarkRouteMessage through
// FromClient with carbons, blocking and push registered and the two users
// using none: what the pipeline costs a message it has nothing to do for.
// In "idle" nobody on the server uses them; in "others" a third user has
// carbons on, a block list and a push registration, so the hooks look
// the two users up.
func BenchmarkRouteMessageFeatures(b *testing.B) {
	for _, others := range []bool{false, true} {
		name := "idle"
		if others {
			name = "others"
		}
		b.Run(name, func(b *testing.B) { benchFeatures(b, others) })
	}
}

func benchFeatures(b *testing.B, others bool) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	cs := carbons.New(r, nil)
	lists := benchStore{}
	if others {
		lists["carol@localhost"] = []string{"mallory@localhost"}
	}
	bl := blocking.New(lists, r, nil)
	if err := bl.Start(ctx); err != nil {
		b.Fatal(err)
	}
	bl.Register(r.Registry())
	cs.Register(r.Registry())
	regs := benchPush{}
	if others {
		regs["carol@localhost"] = true
	}
	ps := push.New(regs, r, push.Options{}, nil)
	if err := ps.Start(ctx); err != nil {
		b.Fatal(err)
	}
	ps.Register(r.Registry())
	alice := &discardSession{j: jid.MustParse("alice@localhost/a")}
	bob := &discardSession{j: jid.MustParse("bob@localhost/b")}
	carol := &discardSession{j: jid.MustParse("carol@localhost/c")}
	r.Bind(ctx, alice)
	r.Bind(ctx, bob)
	r.Bind(ctx, carol)
	if others {
		enable, err := router.Parse([]byte("<iq type='set' id='e' from='carol@localhost/c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"))
		if err != nil {
			b.Fatal(err)
		}
		r.FromClient(ctx, enable)
		if !cs.Enabled(carol) {
			b.Fatal("carol's carbons are off")
		}
	}
	st := msg(b, "chat", "alice@localhost/a", "bob@localhost/b")
	b.SetBytes(int64(len(st.Raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.FromClient(ctx, st)
	}
	if bob.n == 0 {
		b.Fatal("nothing delivered")
	}
}

// benchPush is a push.Store that knows only who has registrations.
type benchPush map[string]bool

func (s benchPush) Owners(context.Context) ([]string, error) {
	var out []string
	for o := range s {
		out = append(out, o)
	}
	return out, nil
}
func (s benchPush) List(context.Context, string) ([]storage.PushRegistration, error) { return nil, nil }
func (s benchPush) Enable(context.Context, storage.PushRegistration, int) ([]storage.PushRegistration, error) {
	return nil, nil
}
func (s benchPush) Disable(context.Context, string, string, string) (int, error) { return 0, nil }

// benchStore is a blocking.Store in memory.
type benchStore map[string][]string

func (s benchStore) Owners(context.Context) ([]string, error) {
	var out []string
	for o := range s {
		out = append(out, o)
	}
	return out, nil
}
func (s benchStore) List(_ context.Context, user string) ([]string, error) { return s[user], nil }
func (s benchStore) Block(context.Context, string, []string) error         { return nil }
func (s benchStore) Unblock(context.Context, string, []string) error       { return nil }

// TestKept: the Kept hooks learn of a message an Undeliverable hook took
// while the router routed it (no session, or a full queue), and of no
// other: one a hook failed to store, one no hook took, or one a session
// handed back when it ended.
func TestKept(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"alice@localhost": true, "bob@localhost": true}, nil)
	result := router.Handled
	r.Registry().Undeliverable(func(context.Context, *router.Stanza) router.Result { return result })
	var kept []string
	r.Registry().Kept(func(_ context.Context, m *router.Stanza) { kept = append(kept, m.To.String()) })
	bob := &fakeSession{j: jid.MustParse("bob@localhost/b"), full: true}
	r.Bind(ctx, bob)

	r.Route(ctx, msg(t, "chat", "carol@localhost/c", "alice@localhost"))
	r.Route(ctx, msg(t, "chat", "carol@localhost/c", "bob@localhost/b")) // a full queue
	r.Route(ctx, msg(t, "headline", "carol@localhost/c", "alice@localhost"))
	r.Undeliverable(ctx, msg(t, "chat", "carol@localhost/c", "alice@localhost/gone"))
	result = router.Failed
	r.Route(ctx, msg(t, "chat", "carol@localhost/c", "alice@localhost/x"))
	result = router.Continue
	r.Route(ctx, msg(t, "chat", "carol@localhost/c", "alice@localhost/y"))
	if got := strings.Join(kept, " "); got != "alice@localhost bob@localhost/b" {
		t.Fatalf("kept %q, want alice@localhost bob@localhost/b", got)
	}
}

// detachedSession is a session waiting for a resumption.
type detachedSession struct{ fakeSession }

func (*detachedSession) Detached() bool { return true }

// TestDetached: router.Detached tells a Detachable session that waits for
// a resumption from one that does not, and from any other session.
func TestDetached(t *testing.T) {
	if router.Detached(&fakeSession{}) {
		t.Fatal("a plain session is detached")
	}
	if !router.Detached(&detachedSession{}) {
		t.Fatal("a detached session is not")
	}
}

// TestSessionDetached: the OnDetach hooks get the messages among what a
// session had not acknowledged, parsed; without hooks the router asks
// for nothing.
func TestSessionDetached(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	if r.WantsDetached() {
		t.Fatal("wants detached sessions without hooks")
	}
	var got []string
	r.Registry().OnDetach(func(_ context.Context, s router.Session, unacked []*router.Stanza) {
		for _, m := range unacked {
			got = append(got, s.JID().String()+" "+m.From.String()+" "+m.ID)
		}
	})
	if !r.WantsDetached() {
		t.Fatal("does not want detached sessions with a hook")
	}
	bob := &fakeSession{j: jid.MustParse("bob@localhost/b")}
	r.SessionDetached(ctx, bob, [][]byte{
		[]byte("<presence from='alice@localhost/a' to='bob@localhost/b'/>"),
		[]byte("<message from='alice@localhost/a' to='bob@localhost/b' id='m1'><body>1</body></message>"),
		[]byte("<iq type='get' id='i1' from='localhost' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>"),
		[]byte("<message from='carol@localhost/c' to='bob@localhost' id='m2'/>"),
	})
	if strings.Join(got, ", ") != "bob@localhost/b alice@localhost/a m1, bob@localhost/b carol@localhost/c m2" {
		t.Fatalf("hooks got %q", got)
	}
}
