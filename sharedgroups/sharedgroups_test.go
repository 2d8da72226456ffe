package sharedgroups_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/sharedgroups"
	"xmppd.dev/xmppd/storage"
)

const wait = 5 * time.Second

// fixedStore serves groups without a database, for the view's rules.
type fixedStore []storage.SharedGroup

func (f fixedStore) All(context.Context) ([]storage.SharedGroup, int64, error) { return f, 1, nil }
func (f fixedStore) Version(context.Context) (int64, error)                    { return 1, nil }

// TestView: who sees whom under which group, for each way a group is shown.
func TestView(t *testing.T) {
	const a, b, c, d, e = "a@x", "b@x", "c@x", "d@x", "e@x"
	s := sharedgroups.New(fixedStore{
		{Name: "all", DisplayName: "All", ShowTo: "everybody", Members: []string{a, b}},
		{Name: "team", DisplayName: "Team", ShowTo: "members", Members: []string{b, c}},
		{Name: "sales", DisplayName: "Sales", ShowTo: "groups", ShowToGroups: []string{"team", "board"}, Members: []string{d}},
		// board is shown to nobody: e and d do not see each other
		// through it, but e sees sales, which is shown to board.
		{Name: "board", DisplayName: "Board", ShowTo: "nobody", Members: []string{d, e}},
	}, "x", nil)
	if _, err := s.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := s.Current()
	for _, tc := range []struct {
		user string
		want map[string][]string
	}{
		{a, map[string][]string{b: {"All"}}},
		{b, map[string][]string{a: {"All"}, c: {"Team"}, d: {"Sales"}}},
		{c, map[string][]string{a: {"All"}, b: {"All", "Team"}, d: {"Sales"}}},
		{d, map[string][]string{a: {"All"}, b: {"All"}}}, // sales's own members see one another: d alone
		{e, map[string][]string{a: {"All"}, b: {"All"}, d: {"Sales"}}},
	} {
		if got := v.Contacts(tc.user); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Contacts(%s) = %v, want %v", tc.user, got, tc.want)
		}
		for contact, groups := range tc.want {
			if got := v.Groups(tc.user, contact); !reflect.DeepEqual(got, groups) {
				t.Errorf("Groups(%s, %s) = %v, want %v", tc.user, contact, got, groups)
			}
		}
	}
	if g := v.Groups(a, e); g != nil {
		t.Errorf("Groups(a, e) = %v: nobody shows e", g)
	}
	if g := v.Contacts("z@elsewhere"); g != nil {
		t.Errorf("a remote JID sees %v: everybody is the domain's users", g)
	}
	if g := v.Groups(d, e); g != nil {
		t.Errorf("Groups(d, e) = %v: board is shown to nobody", g)
	}
	for _, tc := range []struct {
		user      string
		viewers   []string
		everybody bool
	}{
		{a, nil, true},
		{b, []string{c}, true},
		{d, []string{b, c, e}, false},
		{e, nil, false},
	} {
		viewers, everybody := v.Viewers(tc.user)
		if !reflect.DeepEqual(viewers, tc.viewers) || everybody != tc.everybody {
			t.Errorf("Viewers(%s) = %v, %v; want %v, %v", tc.user, viewers, everybody, tc.viewers, tc.everybody)
		}
	}
}

// TestSharedRoster: over XMPP, shared groups appear in rosters with the
// subscription their visibility gives, presence follows it, a shared
// contact cannot be removed or unsubscribed, and a change made in storage
// while the server runs reaches online users as roster pushes and presence.
func TestSharedRoster(t *testing.T) {
	ctx := t.Context()
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.Roster.SharedGroupsReload = config.Duration{Duration: 50 * time.Millisecond}
	})
	var users = map[string]jid.JID{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		users[u] = srv.AddUser(t, u, u+"-pw")
	}
	bare := func(u string) string { return users[u].String() }
	groups := srv.DB().SharedGroups()
	for _, g := range []storage.SharedGroup{
		{Name: "staff", DisplayName: "Staff", ShowTo: "everybody", Members: []string{bare("alice"), bare("bob")}},
		{Name: "sales", DisplayName: "Sales", ShowTo: "groups", ShowToGroups: []string{"staff"}, Members: []string{bare("carol")}},
	} {
		if err := groups.Put(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	// Loaded at start; later changes are polled for (below).
	cfg := srv.Config
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, cfg)
	groups = srv.DB().SharedGroups()

	login := func(u string) *xmpptest.Client {
		c := srv.Login(t, users[u], u+"-pw", xmpptest.LoginOptions{Resource: "r"})
		return c
	}
	roster := func(c *xmpptest.Client) map[string]string {
		t.Helper()
		c.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
		res := c.Expect(wait, "roster result", func(e xmpptest.Element) bool { return e.Attr("id") == "r1" })
		return items(res.Inner)
	}
	alice, bob, carol, dave := login("alice"), login("bob"), login("carol"), login("dave")
	for _, tc := range []struct {
		c    *xmpptest.Client
		want map[string]string
	}{
		{alice, map[string]string{bare("bob"): "both Staff", bare("carol"): "both Sales"}},
		{bob, map[string]string{bare("alice"): "both Staff", bare("carol"): "both Sales"}},
		{carol, map[string]string{bare("alice"): "both Staff", bare("bob"): "both Staff"}},
		{dave, map[string]string{bare("alice"): "to Staff", bare("bob"): "to Staff"}},
	} {
		if got := roster(tc.c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s's roster: %v, want %v", tc.c.JID, got, tc.want)
		}
	}

	for _, c := range []*xmpptest.Client{alice, bob, carol, dave} {
		c.Send("<presence/>")
	}
	isPresenceFrom := func(u string) func(xmpptest.Element) bool {
		return func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("type") == "" && strings.HasPrefix(e.Attr("from"), bare(u)+"/")
		}
	}
	// Each sees the presence of those it sees, whatever the order.
	presences := func(c *xmpptest.Client, from ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, u := range from {
			want[bare(u)] = true
		}
		deadline := time.After(wait)
		for len(want) > 0 {
			select {
			case e := <-c.Elements():
				if e.Name.Local == "presence" && e.Attr("type") == "" {
					if u, _, ok := strings.Cut(e.Attr("from"), "/"); ok {
						if u == bare("dave") && c != dave {
							t.Fatalf("%s got dave's presence, which nobody sees", c.JID)
						}
						delete(want, u)
					}
				}
			case <-deadline:
				t.Fatalf("%s: no presence from %v", c.JID, want)
			}
		}
	}
	presences(alice, "alice", "bob", "carol")
	presences(bob, "alice", "bob", "carol")
	presences(carol, "alice", "bob", "carol")
	presences(dave, "alice", "bob", "dave")
	alice.ExpectNone(300*time.Millisecond, "dave's presence (nobody sees dave)", isPresenceFrom("dave"))

	alice.Send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", bare("bob"))
	rm := alice.Expect(wait, "answer to the remove", func(e xmpptest.Element) bool { return e.Attr("id") == "rm" })
	if rm.Attr("type") != "error" || !rm.Contains("not-allowed") {
		t.Fatalf("removing a shared contact: %s", rm.Raw)
	}
	alice.Send("<presence to='%s' type='unsubscribe'/>", bare("bob"))
	bob.ExpectNone(300*time.Millisecond, "alice's unsubscribe", func(e xmpptest.Element) bool { return e.Attr("type") == "unsubscribe" })
	if got := roster(alice); got[bare("bob")] != "both Staff" {
		t.Fatalf("after unsubscribe, alice has bob as %q", got[bare("bob")])
	}
	// alice names bob herself: her item is kept beside the group's.
	alice.Send("<iq type='set' id='nm'><query xmlns='jabber:iq:roster'><item jid='%s' name='Bobby'><group>Friends</group></item></query></iq>", bare("bob"))
	push := alice.Expect(wait, "push of the renamed bob", func(e xmpptest.Element) bool { return e.Attr("type") == "set" && e.Contains("Bobby") })
	if !push.Contains("subscription='both'") || !push.Contains("Staff") || !push.Contains("Friends") {
		t.Fatalf("push of a shared contact alice renamed: %s", push.Raw)
	}

	// dave joins staff while everyone is online.
	if err := groups.AddMembers(ctx, "staff", []string{bare("dave")}); err != nil {
		t.Fatal(err)
	}
	p := alice.Expect(wait, "push of dave", func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "set" && e.Contains(bare("dave"))
	})
	if !p.Contains("subscription='both'") || !p.Contains("Staff") {
		t.Fatalf("push of dave: %s", p.Raw)
	}
	alice.Expect(wait, "dave's presence after he joined", isPresenceFrom("dave"))
	if got := roster(dave); got[bare("alice")] != "both Staff" || got[bare("carol")] != "both Sales" {
		t.Fatalf("dave's roster after joining staff: %v", got)
	}

	// Deleting the group takes its contacts away.
	if err := groups.Delete(ctx, "sales"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(wait, "removal of carol", func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Contains(bare("carol")) && e.Contains("remove")
	})
	alice.Expect(wait, "carol's unavailable presence", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "unavailable" && strings.HasPrefix(e.Attr("from"), bare("carol"))
	})

	// After a restart the groups and alice's own item are still there.
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, cfg)
	alice = srv.Login(t, users["alice"], "alice-pw", xmpptest.LoginOptions{})
	if got, want := roster(alice), map[string]string{bare("bob"): "both Friends Staff", bare("dave"): "both Staff"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("alice's roster after a restart: %v, want %v", got, want)
	}
}

// items reads a roster result into contact → "subscription group…".
func items(inner string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(inner, "<item")[1:] {
		j := attr(part, "jid")
		s := attr(part, "subscription")
		for _, g := range strings.Split(part, "<group")[1:] {
			if i := strings.Index(g, ">"); i >= 0 {
				if k := strings.Index(g[i:], "<"); k >= 0 {
					s += " " + g[i+1:i+k]
				}
			}
		}
		out[j] = s
	}
	return out
}

func attr(s, name string) string {
	i := strings.Index(s, " "+name+"=")
	if i < 0 {
		return ""
	}
	s = s[i+len(name)+2:]
	q := s[0]
	s = s[1:]
	return s[:strings.IndexByte(s, q)]
}

// TestPendingRequestSettled: a subscription request a contact made before
// a shared group showed the user to it is not handed to the user again at
// login (the group gave the contact what it asked for), and the user's
// answer to it settles it.
func TestPendingRequestSettled(t *testing.T) {
	ctx := t.Context()
	srv := xmpptest.Start(t)
	u1 := srv.AddUser(t, "u1", "pw")
	u2 := srv.AddUser(t, "u2", "pw")
	c2 := srv.Login(t, u2, "pw", xmpptest.LoginOptions{Resource: "r"})
	c2.Send("<presence to='%s' type='subscribe'/>", u1)
	c2.Sync()
	isRequest := func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribe" && e.Attr("from") == u2.String()
	}
	// Without a group, u1 gets the request at login.
	c1 := srv.Login(t, u1, "pw", xmpptest.LoginOptions{Resource: "r"})
	c1.Send("<presence/>")
	c1.Expect(wait, "u2's request", isRequest)
	c1.Close()

	if err := srv.DB().SharedGroups().Put(ctx, storage.SharedGroup{Name: "pair", DisplayName: "Pair", ShowTo: "members",
		Members: []string{u1.String(), u2.String()}}); err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, cfg)
	c1 = srv.Login(t, u1, "pw", xmpptest.LoginOptions{Resource: "r"})
	c1.Send("<presence/>")
	c1.ExpectNone(500*time.Millisecond, "u2's request, which the group answered", isRequest)
	// u1's answer settles it: the stored request is gone.
	c1.Send("<presence to='%s' type='subscribed'/>", u2)
	c1.Sync()
	it, ok, err := srv.DB().Rosters().Get(ctx, u1.String(), u2.String())
	if err != nil {
		t.Fatal(err)
	}
	if ok && it.PendingIn {
		t.Fatalf("u1's row for u2 after answering: %+v, want no pending request", it)
	}
}
