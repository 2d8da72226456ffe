package router_test

import (
	"context"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

// TestPriority: what OnAvailable hooks see through Router.Priority.
func TestPriority(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	type seen struct {
		prio int
		ok   bool
	}
	var hooked []seen
	r.Registry().OnAvailable(func(_ context.Context, s router.Session) {
		p, ok := r.Priority(s.JID())
		hooked = append(hooked, seen{p, ok})
	})
	for _, j := range []string{"bob@localhost/a", "bob@localhost/b", "bob@localhost/c"} {
		r.Bind(ctx, &fakeSession{j: jid.MustParse(j)})
	}
	r.FromClient(ctx, presence(t, "bob@localhost/a", "<priority>5</priority>"))
	r.FromClient(ctx, presence(t, "bob@localhost/b", "<priority>-3</priority>"))

	cases := []struct {
		j    string
		want seen
	}{
		{"bob@localhost/a", seen{5, true}},
		{"bob@localhost/b", seen{-3, true}},
		{"bob@localhost/c", seen{0, false}}, // bound, no presence
		{"bob@localhost/d", seen{0, false}}, // not bound
		{"bob@localhost", seen{0, false}},   // bare
	}
	for _, c := range cases {
		if p, ok := r.Priority(jid.MustParse(c.j)); p != c.want.prio || ok != c.want.ok {
			t.Errorf("Priority(%s) = %d, %v; want %d, %v", c.j, p, ok, c.want.prio, c.want.ok)
		}
	}
	if want := []seen{{5, true}, {-3, true}}; len(hooked) != 2 || hooked[0] != want[0] || hooked[1] != want[1] {
		t.Errorf("OnAvailable hooks saw %v, want %v", hooked, want)
	}

	// An updated presence changes it; unavailable presence ends it.
	r.FromClient(ctx, presence(t, "bob@localhost/a", "<priority>1</priority>"))
	if p, ok := r.Priority(jid.MustParse("bob@localhost/a")); p != 1 || !ok {
		t.Errorf("after update, Priority = %d, %v; want 1, true", p, ok)
	}
	un := presence(t, "bob@localhost/a", "")
	un.Type, un.Raw = "unavailable", []byte("<presence type='unavailable' from='bob@localhost/a'/>")
	r.FromClient(ctx, un)
	if _, ok := r.Priority(jid.MustParse("bob@localhost/a")); ok {
		t.Error("after unavailable presence, Priority says available")
	}
}
