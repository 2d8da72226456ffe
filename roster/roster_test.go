package roster_test

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/roster"
	"xmppd.dev/xmppd/storage"
)

const wait = 5 * time.Second

var _ roster.Store = (*storage.Rosters)(nil)

// item is a roster item as a client sees it.
type item struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Approved     string   `xml:"approved,attr"`
	Groups       []string `xml:"group"`
}

// state is the short form the tests compare: "absent", "none", "to",
// "from", "both", with "+ask" for pending-out and "+approved".
func (it *item) state() string {
	if it == nil {
		return "absent"
	}
	s := it.Subscription
	if it.Ask == "subscribe" {
		s += "+ask"
	}
	if it.Approved == "true" {
		s += "+approved"
	}
	return s
}

func parseItems(t *testing.T, inner string) (ver string, items []item) {
	t.Helper()
	var q struct {
		Ver   string `xml:"ver,attr"`
		Items []item `xml:"item"`
	}
	if err := xml.Unmarshal([]byte(inner), &q); err != nil {
		t.Fatalf("roster payload %q: %v", inner, err)
	}
	return q.Ver, q.Items
}

var getN int

// roster fetches c's roster (which also makes c an interested resource).
func fetchRoster(t *testing.T, c *xmpptest.Client) (string, map[string]item) {
	t.Helper()
	getN++
	id := fmt.Sprintf("get-%d", getN)
	c.Send("<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>", id)
	r := c.Expect(wait, "roster result", func(e xmpptest.Element) bool { return e.Attr("id") == id })
	if r.Attr("type") != "result" {
		t.Fatalf("roster get: %s", r.Raw)
	}
	ver, items := parseItems(t, r.Inner)
	m := map[string]item{}
	for _, it := range items {
		m[it.JID] = it
	}
	return ver, m
}

func stateOf(t *testing.T, c *xmpptest.Client, contact string) string {
	t.Helper()
	_, m := fetchRoster(t, c)
	if it, ok := m[contact]; ok {
		return it.state()
	}
	return "absent"
}

// pushes returns the roster items pushed among els.
func pushes(t *testing.T, els []xmpptest.Element) []item {
	var out []item
	for _, e := range els {
		if e.Name.Local == "iq" && e.Attr("type") == "set" && strings.Contains(e.Inner, "jabber:iq:roster") {
			if e.Attr("from") != "" && !strings.Contains(e.Attr("from"), "@") {
				t.Errorf("roster push from %q: must be absent or the user's bare JID", e.Attr("from"))
			}
			_, items := parseItems(t, e.Inner)
			out = append(out, items...)
		}
	}
	return out
}

// presences returns "type from" for each presence among els.
func presences(els []xmpptest.Element) []string {
	var out []string
	for _, e := range els {
		if e.Name.Local == "presence" {
			typ := e.Attr("type")
			if typ == "" {
				typ = "available"
			}
			out = append(out, typ+" "+e.Attr("from"))
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type pair struct {
	srv          *xmpptest.Server
	alice, bob   *xmpptest.Client
	aliceJ, bobJ jid.JID
}

// newPair logs alice and bob in, each having fetched the roster and sent
// initial presence, as real clients do.
func newPair(t *testing.T, opts ...xmpptest.Option) *pair {
	t.Helper()
	srv := xmpptest.Start(t, opts...)
	p := &pair{srv: srv}
	p.aliceJ = srv.AddUser(t, "alice", "pw")
	p.bobJ = srv.AddUser(t, "bob", "pw")
	p.alice = p.login(t, p.aliceJ, "a")
	p.bob = p.login(t, p.bobJ, "b")
	return p
}

func (p *pair) login(t *testing.T, j jid.JID, res string) *xmpptest.Client {
	t.Helper()
	c := p.srv.Login(t, j, "pw", xmpptest.LoginOptions{Resource: res})
	fetchRoster(t, c)
	c.Send("<presence/>")
	c.Sync()
	return c
}

// step is one protocol action by one side.
type step struct {
	who  string // "alice" or "bob"
	send string // presence type, or "remove" for a roster remove
}

func (p *pair) do(t *testing.T, s step) (actor, other []xmpptest.Element) {
	t.Helper()
	a, o, contact := p.alice, p.bob, "bob@localhost"
	if s.who == "bob" {
		a, o, contact = p.bob, p.alice, "alice@localhost"
	}
	if s.send == "remove" {
		a.Send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", contact)
	} else {
		a.Send("<presence to='%s' type='%s'/>", contact, s.send)
	}
	actor = a.Sync()
	other = o.Sync()
	return actor, other
}

// TestAppendixA walks the subscription state tables of RFC 6121 Appendix
// A between two local users: from a start reached by earlier steps, one
// action, then each side's roster item, what each side was pushed, and
// the presence each side received.
func TestAppendixA(t *testing.T) {
	cases := []struct {
		name      string
		setup     []step
		action    step
		alice     string // alice's item for bob afterwards
		bob       string // bob's item for alice afterwards
		bobGets   string // presence bob must receive from the action ("" for none checked)
		aliceGets string // presence alice must receive
		bobNot    string // presence bob must not receive
	}{
		{name: "None + subscribe → None+Pending-Out / None+Pending-In",
			action: step{"alice", "subscribe"}, alice: "none+ask", bob: "absent",
			bobGets: "subscribe alice@localhost"},
		{name: "Pending-In + subscribed → To / From, presence flows",
			setup:  []step{{"alice", "subscribe"}},
			action: step{"bob", "subscribed"}, alice: "to", bob: "from",
			aliceGets: "available bob@localhost/b"},
		{name: "Pending-In + unsubscribed → None (request denied)",
			setup:  []step{{"alice", "subscribe"}},
			action: step{"bob", "unsubscribed"}, alice: "none", bob: "absent",
			aliceGets: "unsubscribed bob@localhost"},
		{name: "Pending-Out + unsubscribe → request withdrawn",
			setup:  []step{{"alice", "subscribe"}},
			action: step{"alice", "unsubscribe"}, alice: "none", bob: "absent",
			bobGets: "unsubscribe alice@localhost"},
		{name: "To + unsubscribe → None / None",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}},
			action: step{"alice", "unsubscribe"}, alice: "none", bob: "none",
			bobGets: "unsubscribe alice@localhost", aliceGets: "unavailable bob@localhost/b"},
		{name: "From + unsubscribed → None / None",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}},
			action: step{"bob", "unsubscribed"}, alice: "none", bob: "none",
			aliceGets: "unavailable bob@localhost/b"},
		{name: "From + subscribe → mutual request",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}},
			action: step{"bob", "subscribe"}, alice: "to", bob: "from+ask",
			aliceGets: "subscribe bob@localhost"},
		{name: "To+Pending-In + subscribed → Both / Both",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}},
			action: step{"alice", "subscribed"}, alice: "both", bob: "both",
			bobGets: "available alice@localhost/a"},
		{name: "Both + unsubscribe → From / To",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}},
			action: step{"alice", "unsubscribe"}, alice: "from", bob: "to"},
		{name: "Both + unsubscribed → To / From",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}},
			action: step{"alice", "unsubscribed"}, alice: "to", bob: "from",
			bobGets: "unavailable alice@localhost/a"},
		// bob's server auto-replies subscribed (§3.1.3), which alice's
		// server ignores: she had no request pending (§3.1.6).
		{name: "To + subscribe → no change, request not delivered",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}},
			action: step{"alice", "subscribe"}, alice: "to", bob: "from",
			bobNot: "subscribe alice@localhost"},
		{name: "pre-approval then subscribe → From granted at once",
			setup:  []step{{"bob", "subscribed"}},
			action: step{"alice", "subscribe"}, alice: "to", bob: "from",
			aliceGets: "subscribed bob@localhost", bobNot: "subscribe alice@localhost"},
		{name: "subscribed without a request → pre-approval only",
			action: step{"bob", "subscribed"}, alice: "absent", bob: "none+approved"},
		{name: "subscribed nobody asked for is ignored (To stays None)",
			setup:  []step{{"bob", "subscribe"}, {"bob", "unsubscribe"}},
			action: step{"alice", "unsubscribed"}, alice: "absent", bob: "none"},
		{name: "remove with Both → absent / None",
			setup:  []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}},
			action: step{"alice", "remove"}, alice: "absent", bob: "none",
			bobGets: "unavailable alice@localhost/a"},
		{name: "remove with Pending-Out → request withdrawn",
			setup:  []step{{"alice", "subscribe"}},
			action: step{"alice", "remove"}, alice: "absent", bob: "absent",
			bobGets: "unsubscribe alice@localhost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			for _, s := range tc.setup {
				p.do(t, s)
			}
			aliceBefore := stateOf(t, p.alice, "bob@localhost")
			bobBefore := stateOf(t, p.bob, "alice@localhost")
			actorEls, otherEls := p.do(t, tc.action)
			aliceEls, bobEls := actorEls, otherEls
			if tc.action.who == "bob" {
				aliceEls, bobEls = otherEls, actorEls
			}
			if got := stateOf(t, p.alice, "bob@localhost"); got != tc.alice {
				t.Errorf("alice's item for bob = %s, want %s", got, tc.alice)
			}
			if got := stateOf(t, p.bob, "alice@localhost"); got != tc.bob {
				t.Errorf("bob's item for alice = %s, want %s", got, tc.bob)
			}
			// A side whose item changed was pushed it, and only it; the
			// last push is the item as it now is.
			for _, side := range []struct {
				name, contact string
				els           []xmpptest.Element
				before, want  string
			}{{"alice", "bob@localhost", aliceEls, aliceBefore, tc.alice}, {"bob", "alice@localhost", bobEls, bobBefore, tc.bob}} {
				ps := pushes(t, side.els)
				for _, it := range ps {
					if it.JID != side.contact {
						t.Errorf("%s was pushed an item for %q, want only %s", side.name, it.JID, side.contact)
					}
				}
				if len(ps) == 0 {
					if side.before != side.want {
						t.Errorf("%s's item went %s → %s with no roster push", side.name, side.before, side.want)
					}
					continue
				}
				last := ps[len(ps)-1]
				got := last.state()
				if last.Subscription == "remove" {
					got = "absent"
				}
				if got != side.want {
					t.Errorf("%s's last push = %s, want %s", side.name, got, side.want)
				}
			}
			if tc.bobGets != "" && !contains(presences(bobEls), tc.bobGets) {
				t.Errorf("bob received %q, want %q among them", presences(bobEls), tc.bobGets)
			}
			if tc.aliceGets != "" && !contains(presences(aliceEls), tc.aliceGets) {
				t.Errorf("alice received %q, want %q among them", presences(aliceEls), tc.aliceGets)
			}
			if tc.bobNot != "" && contains(presences(bobEls), tc.bobNot) {
				t.Errorf("bob received %q, which must not be delivered", tc.bobNot)
			}
		})
	}
}

// TestPushesAndVersions: a change is pushed to every resource that fetched
// the roster, versions grow, and a get with the current version is empty.
func TestPushesAndVersions(t *testing.T) {
	p := newPair(t)
	second := p.login(t, p.aliceJ, "phone")
	ver0, _ := fetchRoster(t, p.alice)
	p.alice.Send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='Carol'><group>Friends</group><group>Work</group></item></query></iq>")
	els := p.alice.Sync()
	if r := findID(els, "s1"); r == nil || r.Attr("type") != "result" {
		t.Fatalf("roster set answered %v", r)
	}
	for _, c := range []*xmpptest.Client{p.alice, second} {
		var got []xmpptest.Element
		if c == p.alice {
			got = els
		} else {
			got = c.Sync()
		}
		ps := pushes(t, got)
		if len(ps) != 1 || ps[0].JID != "carol@localhost" || ps[0].Name != "Carol" || strings.Join(ps[0].Groups, ",") != "Friends,Work" || ps[0].Subscription != "none" {
			t.Fatalf("%s got pushes %+v", c.JID, ps)
		}
	}
	// bob never fetched alice's roster: nothing for him.
	if ps := pushes(t, p.bob.Sync()); len(ps) != 0 {
		t.Fatalf("bob got pushes %+v", ps)
	}
	ver1, items := fetchRoster(t, p.alice)
	if ver1 == ver0 || items["carol@localhost"].Name != "Carol" {
		t.Fatalf("after set: ver %s (was %s), items %+v", ver1, ver0, items)
	}
	p.alice.Send("<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", ver1)
	r := p.alice.Expect(wait, "versioned get", func(e xmpptest.Element) bool { return e.Attr("id") == "v" })
	if r.Attr("type") != "result" || r.Inner != "" {
		t.Fatalf("get with the current version = %s, want an empty result", r.Raw)
	}
	p.alice.Send("<iq type='get' id='v0'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", ver0)
	r = p.alice.Expect(wait, "old version get", func(e xmpptest.Element) bool { return e.Attr("id") == "v0" })
	if !strings.Contains(r.Inner, "carol@localhost") {
		t.Fatalf("get with an old version = %s, want the full roster", r.Raw)
	}
	// Remove.
	p.alice.Send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='remove'/></query></iq>")
	p.alice.Sync()
	ps := pushes(t, second.Sync())
	if len(ps) != 1 || ps[0].Subscription != "remove" {
		t.Fatalf("remove pushed %+v", ps)
	}
}

// TestPushesCarryTheWholeItem: every push about a contact carries its jid,
// name, groups and subscription as they now are, whether a roster set or a
// subscription stanza changed it: a subscription change keeps the name and
// groups, and a rename keeps the subscription.
func TestPushesCarryTheWholeItem(t *testing.T) {
	p := newPair(t)
	steps := []struct {
		name      string
		who, send string // who sends send: a roster set's item or a presence type
		// The one push alice then gets about bob.
		pushName, pushGroups, pushState string
	}{
		{"add with name and groups", "alice", "<item jid='bob@localhost' name='Bob'><group>Work</group><group>Friends</group></item>", "Bob", "Friends,Work", "none"},
		{"subscribe keeps them", "alice", "subscribe", "Bob", "Friends,Work", "none+ask"},
		{"subscription approved keeps them", "bob", "subscribed", "Bob", "Friends,Work", "to"},
		{"rename and regroup keep the subscription", "alice", "<item jid='bob@localhost' name='Robert'><group>Family</group></item>", "Robert", "Family", "to"},
		{"no group at all", "alice", "<item jid='bob@localhost' name='Robert'/>", "Robert", "", "to"},
		{"subscription cancelled keeps the name", "bob", "unsubscribed", "Robert", "", "none"},
	}
	for i, st := range steps {
		sender, other, contact := p.alice, p.bob, "bob@localhost"
		if st.who == "bob" {
			sender, other, contact = p.bob, p.alice, "alice@localhost"
		}
		if strings.HasPrefix(st.send, "<item") {
			sender.Send("<iq type='set' id='set-%d'><query xmlns='jabber:iq:roster'>%s</query></iq>", i, st.send)
		} else {
			sender.Send("<presence to='%s' type='%s'/>", contact, st.send)
		}
		aliceEls := sender.Sync()
		if st.who == "bob" {
			aliceEls = other.Sync()
		} else {
			other.Sync()
		}
		ps := pushes(t, aliceEls)
		if len(ps) != 1 {
			t.Fatalf("%s: alice got %d roster pushes %+v, want 1", st.name, len(ps), ps)
		}
		got := ps[0]
		slices.Sort(got.Groups)
		if got.JID != "bob@localhost" || got.Name != st.pushName || strings.Join(got.Groups, ",") != st.pushGroups || got.state() != st.pushState {
			t.Errorf("%s: alice was pushed jid %q name %q groups %q %s, want bob@localhost name %q groups %q %s",
				st.name, got.JID, got.Name, strings.Join(got.Groups, ","), got.state(), st.pushName, st.pushGroups, st.pushState)
		}
	}
	// The roster as fetched agrees with the last push.
	_, items := fetchRoster(t, p.alice)
	if it := items["bob@localhost"]; it.Name != "Robert" || len(it.Groups) != 0 || it.state() != "none" {
		t.Errorf("alice's roster holds %+v for bob, want name Robert, no group, none", it)
	}
}

func findID(els []xmpptest.Element, id string) *xmpptest.Element {
	for i := range els {
		if els[i].Attr("id") == id {
			return &els[i]
		}
	}
	return nil
}

func TestRosterSetErrors(t *testing.T) {
	p := newPair(t, func(c *config.Config) { c.Roster.MaxItems = 2 })
	long := strings.Repeat("n", 2000)
	cases := []struct{ name, item, cond string }{
		{"two items", "<item jid='x@localhost'/><item jid='y@localhost'/>", "bad-request"},
		{"no item", "", "bad-request"},
		{"own JID", "<item jid='alice@localhost'/>", "bad-request"},
		{"empty group", "<item jid='x@localhost'><group></group></item>", "not-acceptable"},
		{"duplicate group", "<item jid='x@localhost'><group>G</group><group>G</group></item>", "bad-request"},
		{"long name", "<item jid='x@localhost' name='" + long + "'/>", "not-acceptable"},
		{"bad jid", "<item jid='a@b@c'/>", "jid-malformed"},
		{"remove unknown", "<item jid='nobody@localhost' subscription='remove'/>", "item-not-found"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("e%d", i)
			p.alice.Send("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'>%s</query></iq>", id, tc.item)
			r := p.alice.Expect(wait, "error", func(e xmpptest.Element) bool { return e.Attr("id") == id })
			if r.Attr("type") != "error" || !strings.Contains(r.Inner, "<"+tc.cond+" ") {
				t.Fatalf("got %s, want %s", r.Raw, tc.cond)
			}
		})
	}
	// The roster is still empty, and fills up to its limit.
	if _, m := fetchRoster(t, p.alice); len(m) != 0 {
		t.Fatalf("refused sets changed the roster: %+v", m)
	}
	for i, j := range []string{"x@localhost", "y@localhost", "z@localhost"} {
		p.alice.Send("<iq type='set' id='f%d'><query xmlns='jabber:iq:roster'><item jid='%s'/></query></iq>", i, j)
		r := p.alice.Expect(wait, "answer", func(e xmpptest.Element) bool { return e.Attr("id") == fmt.Sprintf("f%d", i) })
		want := "result"
		if i == 2 {
			want = "error"
			if !strings.Contains(r.Inner, "<not-allowed ") {
				t.Fatalf("third item: %s, want not-allowed", r.Raw)
			}
		}
		if r.Attr("type") != want {
			t.Fatalf("item %d: %s, want %s", i, r.Raw, want)
		}
	}
	// A full roster sends no subscription request to someone new: it is
	// dropped, with no error and no push (docs/configuration.md).
	p.alice.Send("<presence to='bob@localhost' type='subscribe'/>")
	if got := p.alice.Sync(); len(got) != 0 {
		t.Fatalf("alice's subscribe with a full roster answered %q, want nothing", got[0].Raw)
	}
	if got := presences(p.bob.Sync()); contains(got, "subscribe alice@localhost") {
		t.Fatalf("bob got %q from a full roster's subscribe", got)
	}
	if _, m := fetchRoster(t, p.alice); len(m) != 2 {
		t.Fatalf("full roster after a subscribe holds %+v, want x and y only", m)
	}
	// Another user's roster is out of reach.
	p.alice.Send("<iq type='get' id='o' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>")
	r := p.alice.Expect(wait, "error", func(e xmpptest.Element) bool { return e.Attr("id") == "o" })
	if r.Attr("type") != "error" {
		t.Fatalf("roster get on another account = %s, want an error", r.Raw)
	}
}

// TestPresenceFollowsSubscriptions: with both subscribed, each sees the
// other log in (probe and broadcast) and leave; a stranger sees nothing.
func TestPresenceFollowsSubscriptions(t *testing.T) {
	p := newPair(t)
	carolJ := p.srv.AddUser(t, "carol", "pw")
	carol := p.login(t, carolJ, "c")
	for _, s := range []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}} {
		p.do(t, s)
	}
	carol.Sync()
	// bob logs in a second resource: alice sees it, and it sees alice.
	bob2 := p.srv.Login(t, p.bobJ, "pw", xmpptest.LoginOptions{Resource: "b2"})
	fetchRoster(t, bob2)
	bob2.Send("<presence><show>away</show></presence>")
	if got := presences(bob2.Sync()); !contains(got, "available alice@localhost/a") {
		t.Fatalf("new resource got %q, want alice's presence (probe answer)", got)
	}
	if got := presences(p.alice.Sync()); !contains(got, "available bob@localhost/b2") {
		t.Fatalf("alice got %q, want bob/b2's presence", got)
	}
	if got := presences(carol.Sync()); len(got) != 0 {
		t.Fatalf("carol (no subscription) got %q", got)
	}
	bob2.Close()
	if got := presences(p.alice.Sync()); !contains(got, "unavailable bob@localhost/b2") {
		t.Fatalf("alice got %q, want bob/b2 unavailable", got)
	}
	// A probe from carol reveals nothing.
	carol.Send("<presence type='probe' to='alice@localhost'/>")
	if got := presences(carol.Sync()); len(got) != 0 {
		t.Fatalf("probe by a non-subscriber answered with %q", got)
	}
}

// TestRequestWhileOffline: a subscription request to an offline user is
// kept and delivered when the user next sends initial presence.
func TestRequestWhileOffline(t *testing.T) {
	srv := xmpptest.Start(t)
	aliceJ := srv.AddUser(t, "alice", "pw")
	bobJ := srv.AddUser(t, "bob", "pw")
	alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
	fetchRoster(t, alice)
	alice.Send("<presence/>")
	alice.Send("<presence to='bob@localhost' type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></presence>")
	alice.Sync()
	bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
	fetchRoster(t, bob)
	bob.Send("<presence/>")
	els := bob.Sync()
	var req *xmpptest.Element
	for i, e := range els {
		if e.Name.Local == "presence" && e.Attr("type") == "subscribe" {
			req = &els[i]
		}
	}
	if req == nil || req.Attr("from") != "alice@localhost" || !strings.Contains(req.Inner, "Alice") {
		t.Fatalf("bob got %q, want alice's subscribe with her nick", presences(els))
	}
}

// TestRestart: subscriptions survive a restart; both log in again and see
// each other's presence with no new handshake.
func TestRestart(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			opts := []xmpptest.Option{}
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			p := newPair(t, opts...)
			for _, s := range []step{{"alice", "subscribe"}, {"bob", "subscribed"}, {"bob", "subscribe"}, {"alice", "subscribed"}} {
				p.do(t, s)
			}
			cfg := p.srv.Config
			p.srv.Stop(t)
			srv := xmpptest.StartConfig(t, cfg)
			alice := srv.Login(t, p.aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
			if got := stateOf(t, alice, "bob@localhost"); got != "both" {
				t.Fatalf("after restart alice's item for bob = %s, want both", got)
			}
			alice.Send("<presence/>")
			alice.Sync()
			bob := srv.Login(t, p.bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})
			fetchRoster(t, bob)
			bob.Send("<presence/>")
			if got := presences(bob.Sync()); !contains(got, "available alice@localhost/a") {
				t.Fatalf("bob got %q after restart, want alice's presence", got)
			}
			if got := presences(alice.Sync()); !contains(got, "available bob@localhost/b") {
				t.Fatalf("alice got %q after restart, want bob's presence", got)
			}
		})
	}
}
