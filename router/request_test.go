package router_test

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

type answer struct {
	reply *router.Stanza
	err   error
}

func discoInfo() xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}})
}

// TestRequest: the server's own IQs reach the addressee and their answers
// come back to the caller, matched by id and sender; silence times out.
func TestRequest(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"alice@localhost": true}, nil)
	alice := &fakeSession{j: jid.MustParse("alice@localhost/a")}
	mallory := &fakeSession{j: jid.MustParse("mallory@localhost/m")}
	r.Bind(ctx, alice)
	r.Bind(ctx, mallory)

	ask := func(t *testing.T, to string, timeout time.Duration) (<-chan answer, *router.Stanza) {
		t.Helper()
		got := make(chan answer, 1)
		err := r.Request(ctx, "get", jid.MustParse(to), discoInfo(), timeout, func(_ context.Context, reply *router.Stanza, err error) {
			got <- answer{reply, err}
		})
		if err != nil {
			t.Fatal(err)
		}
		var sent []string
		if to == alice.j.String() {
			sent = alice.take()
			if len(sent) != 1 {
				t.Fatalf("alice got %q, want the request", sent)
			}
			req, err := router.Parse([]byte(sent[0]))
			if err != nil {
				t.Fatal(err)
			}
			if req.From.String() != "localhost" || req.Type != "get" || !strings.Contains(sent[0], "disco#info") {
				t.Fatalf("request %s", sent[0])
			}
			return got, req
		}
		return got, nil
	}
	reply := func(from *fakeSession, req *router.Stanza, typ string) {
		st, err := router.Build(router.KindIQ, typ, req.ID, from.j, req.From, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.FromClient(ctx, st)
	}
	wait := func(t *testing.T, got <-chan answer) answer {
		t.Helper()
		select {
		case a := <-got:
			return a
		case <-time.After(5 * time.Second):
			t.Fatal("no callback")
		}
		return answer{}
	}

	t.Run("result", func(t *testing.T) {
		got, req := ask(t, "alice@localhost/a", time.Minute)
		reply(alice, req, "result")
		if a := wait(t, got); a.err != nil || a.reply.Type != "result" || !a.reply.From.Equal(alice.j) {
			t.Fatalf("answer %+v", a)
		}
	})
	t.Run("error answer", func(t *testing.T) {
		got, req := ask(t, "alice@localhost/a", time.Minute)
		reply(alice, req, "error")
		if a := wait(t, got); a.err != nil || a.reply.Type != "error" {
			t.Fatalf("answer %+v", a)
		}
	})
	t.Run("another client's answer is ignored", func(t *testing.T) {
		got, req := ask(t, "alice@localhost/a", 200*time.Millisecond)
		reply(mallory, req, "result")
		if a := wait(t, got); !errors.Is(a.err, router.ErrRequestTimeout) {
			t.Fatalf("answer %+v, want a timeout", a)
		}
		reply(alice, req, "result") // too late: nothing happens
	})
	t.Run("unknown resource bounces", func(t *testing.T) {
		got, _ := ask(t, "alice@localhost/gone", time.Minute)
		a := wait(t, got)
		if a.err != nil || a.reply.Type != "error" || !strings.Contains(string(a.reply.Raw), "service-unavailable") {
			t.Fatalf("answer %+v", a)
		}
	})
	t.Run("answered once", func(t *testing.T) {
		got, req := ask(t, "alice@localhost/a", time.Minute)
		reply(alice, req, "result")
		reply(alice, req, "result")
		wait(t, got)
		select {
		case a := <-got:
			t.Fatalf("second callback %+v", a)
		case <-time.After(50 * time.Millisecond):
		}
	})
}

// TestBroadcastPresenceHook: what the hook returns is what the account's
// resources get and what probes are answered with; Handled drops it.
func TestBroadcastPresenceHook(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"bob@localhost": true}, nil)
	r.Registry().BroadcastPresence(func(_ context.Context, p *router.Stanza) (*router.Stanza, router.Result) {
		raw := string(p.Raw)
		if strings.Contains(raw, "<drop/>") {
			return nil, router.Handled
		}
		raw = strings.Replace(raw, "</presence>", "<x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>", 1)
		return &router.Stanza{Kind: p.Kind, Type: p.Type, From: p.From, Raw: []byte(raw)}, router.Continue
	})
	a := &fakeSession{j: jid.MustParse("bob@localhost/a")}
	b := &fakeSession{j: jid.MustParse("bob@localhost/b")}
	r.Bind(ctx, a)
	r.Bind(ctx, b)
	r.FromClient(ctx, presence(t, "bob@localhost/b", ""))
	b.take()
	r.FromClient(ctx, presence(t, "bob@localhost/a", "<status>hi</status>"))
	got := b.take()
	if len(got) != 1 || !strings.Contains(got[0], "<photo>abc</photo>") || !strings.Contains(got[0], "<status>hi</status>") {
		t.Fatalf("other resource got %q, want the rewritten presence", got)
	}
	if ps := r.Presences(jid.MustParse("bob@localhost")); len(ps) != 2 || !strings.Contains(string(ps[0])+string(ps[1]), "<status>hi</status><x xmlns='vcard-temp:x:update'>") {
		t.Fatalf("presences for probes %q", ps)
	}
	r.FromClient(ctx, presence(t, "bob@localhost/a", "<drop/>"))
	if got := b.take(); len(got) != 0 {
		t.Fatalf("dropped presence delivered: %q", got)
	}
}

// TestDirectedPresenceHook: what the hook returns is what the addressee of
// an available directed presence gets; unavailable and subscription
// presence do not pass it.
func TestDirectedPresenceHook(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"bob@localhost": true, "carol@localhost": true}, nil)
	r.Registry().DirectedPresence(func(_ context.Context, p *router.Stanza) (*router.Stanza, router.Result) {
		raw := strings.Replace(string(p.Raw), "</presence>", "<x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>", 1)
		return &router.Stanza{Kind: p.Kind, Type: p.Type, From: p.From, To: p.To, Raw: []byte(raw)}, router.Continue
	})
	bob := &fakeSession{j: jid.MustParse("bob@localhost/b")}
	carol := &fakeSession{j: jid.MustParse("carol@localhost/c")}
	r.Bind(ctx, bob)
	r.Bind(ctx, carol)
	r.FromClient(ctx, presence(t, "carol@localhost/c", ""))
	carol.take() // her own presence, back
	send := func(typ string) {
		raw := "<presence from='bob@localhost/b' to='carol@localhost/c'"
		if typ != "" {
			raw += " type='" + typ + "'"
		}
		raw += "><status>s</status></presence>"
		r.FromClient(ctx, &router.Stanza{Kind: router.KindPresence, Type: typ, From: bob.j, To: carol.j, Raw: []byte(raw)})
	}
	send("")
	if got := carol.take(); len(got) != 1 || !strings.Contains(got[0], "<photo>abc</photo>") {
		t.Fatalf("carol got %q, want the directed presence with the hook's photo", got)
	}
	send("unavailable")
	if got := carol.take(); len(got) != 1 || strings.Contains(got[0], "<photo>") {
		t.Fatalf("carol got %q, want the unavailable presence untouched", got)
	}
}

// domainRecorder is a component that records what it is sent.
type domainRecorder struct {
	mu  sync.Mutex
	got []*router.Stanza
}

func (d *domainRecorder) HandleStanza(_ context.Context, st *router.Stanza) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, st)
}

func (d *domainRecorder) take() []*router.Stanza {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.got
	d.got = nil
	return g
}

// TestRequestFrom: a request sent for an account comes from its bare JID,
// and its answer, addressed there, comes back to the caller; an answer
// to another account, or from another sender, does not. An unreachable
// addressee answers with an error at once.
func TestRequestFrom(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), accounts{"alice@localhost": true, "bob@localhost": true}, nil)
	app := &domainRecorder{}
	r.Registry().Domain("push.localhost", app)
	alice := jid.MustParse("alice@localhost")

	for _, from := range []string{"alice@localhost/a", "alice@elsewhere", "other.localhost"} {
		if err := r.RequestFrom(ctx, jid.MustParse(from), "set", jid.MustParse("push.localhost"), discoInfo(), time.Minute,
			func(context.Context, *router.Stanza, error) {}); err == nil {
			t.Fatalf("a request from %s was sent", from)
		}
	}

	got := make(chan answer, 2)
	fn := func(_ context.Context, reply *router.Stanza, err error) { got <- answer{reply, err} }
	if err := r.RequestFrom(ctx, alice, "set", jid.MustParse("push.localhost"), discoInfo(), 300*time.Millisecond, fn); err != nil {
		t.Fatal(err)
	}
	sent := app.take()
	if len(sent) != 1 || !sent[0].From.Equal(alice) || sent[0].Type != "set" {
		t.Fatalf("the app server got %v", sent)
	}
	reply := func(typ, from, to string) {
		st, err := router.Build(router.KindIQ, typ, sent[0].ID, jid.MustParse(from), jid.MustParse(to), nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Route(ctx, st)
	}
	reply("result", "push.localhost", "bob@localhost")   // to someone else
	reply("result", "evil.localhost", "alice@localhost") // from someone else
	select {
	case a := <-got:
		t.Fatalf("answered by a stranger: %+v", a)
	case <-time.After(50 * time.Millisecond):
	}
	reply("result", "push.localhost", "alice@localhost")
	select {
	case a := <-got:
		if a.err != nil || a.reply.Type != "result" {
			t.Fatalf("answer %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}

	// No such domain here: the router's own error answers at once.
	if err := r.RequestFrom(ctx, alice, "set", jid.MustParse("push.example"), discoInfo(), time.Minute, fn); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.err != nil || a.reply.Type != "error" || !strings.Contains(string(a.reply.Raw), "remote-server-not-found") {
			t.Fatalf("answer %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}
}
