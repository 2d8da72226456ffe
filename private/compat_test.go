package private_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// user is a logged-in client that numbers its IQs and keeps what arrives
// while it waits for an answer.
type user struct {
	*xmpptest.Client
	t    *testing.T
	n    int
	seen []xmpptest.Element
}

func loginAs(t *testing.T, srv *xmpptest.Server, name, res string, notify ...string) *user {
	t.Helper()
	c := srv.Login(t, jid.MustParse(name+"@"+srv.Domain), "pw", xmpptest.LoginOptions{Resource: res})
	u := &user{Client: c, t: t}
	c.AnnounceCaps(notify...)
	u.seen = c.SyncCaps()
	return u
}

// iq sends an IQ (no to: the account itself) and returns its answer.
func (u *user) iq(typ, payload string) xmpptest.Element {
	u.t.Helper()
	u.n++
	id := fmt.Sprintf("iq%d", u.n)
	u.Send("<iq type='%s' id='%s'>%s</iq>", typ, id, payload)
	for {
		e := u.Next(wait)
		if e.Name.Local == "iq" && e.Attr("id") == id {
			return e
		}
		u.seen = append(u.seen, e)
	}
}

// iqTo sends an IQ to another entity and returns its answer.
func (u *user) iqTo(typ, to, payload string) xmpptest.Element {
	u.t.Helper()
	u.n++
	id := fmt.Sprintf("iq%d", u.n)
	u.Send("<iq type='%s' id='%s' to='%s'>%s</iq>", typ, id, to, payload)
	for {
		e := u.Next(wait)
		if e.Name.Local == "iq" && e.Attr("id") == id {
			return e
		}
		u.seen = append(u.seen, e)
	}
}

// ok is iq that must succeed; it returns the answer's content.
func (u *user) ok(typ, payload string) string {
	u.t.Helper()
	e := u.iq(typ, payload)
	if e.Attr("type") != "result" {
		u.t.Fatalf("%s: %s %s: %s", u.JID, typ, payload, e.Raw)
	}
	return e.Inner
}

// events returns the pubsub events received so far (after a Sync: see
// xmpptest.Client.Sync), and forgets everything received.
func (u *user) events() []string {
	u.t.Helper()
	var out []string
	for _, e := range append(u.seen, u.Sync()...) {
		if e.Name.Local == "message" && e.Contains("http://jabber.org/protocol/pubsub#event") {
			out = append(out, e.Inner)
		}
	}
	u.seen = nil
	return out
}

// engines runs f on SQLite and on PostgreSQL.
func engines(t *testing.T, f func(t *testing.T, opts ...xmpptest.Option)) {
	t.Run("sqlite", func(t *testing.T) { f(t) })
	t.Run("postgres", func(t *testing.T) { f(t, xmpptest.WithPostgres(t)) })
}

// restart stops srv and starts it again on the same data.
func restart(t *testing.T, srv *xmpptest.Server) *xmpptest.Server {
	t.Helper()
	cfg := srv.Config
	srv.Stop(t)
	return xmpptest.StartConfig(t, cfg)
}

// subscribe makes from subscribed to to's presence (to approves).
func subscribe(t *testing.T, from, to *user) {
	t.Helper()
	from.Send("<presence type='subscribe' to='%s'/>", to.JID.Bare())
	to.Expect(wait, "subscription request", xmpptest.IsStanza("presence", "subscribe"))
	to.Send("<presence type='subscribed' to='%s'/>", from.JID.Bare())
	from.Expect(wait, "approval", xmpptest.IsStanza("presence", "subscribed"))
	from.Sync()
	to.Sync()
}

func want(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, got, want)
	}
}

// wantEvents checks that u has received exactly the events want (the
// <event/> elements), in any order.
func wantEvents(t *testing.T, u *user, want ...string) {
	t.Helper()
	got := u.events()
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("%s got events\n%s\nwant\n%s", u.JID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const (
	nsPubsub = "http://jabber.org/protocol/pubsub"
	room1    = "room1@conference.localhost"
	room2    = "room2@conference.localhost"
	room3    = "room3@conference.localhost"
	room4    = "room4@conference.localhost"
)

// Payloads as the server answers them (XEP-0402 §3, XEP-0048 §3).
func conference(name, autojoin, nick, password string) string {
	s := "<conference xmlns='urn:xmpp:bookmarks:1'"
	if name != "" {
		s += " name='" + name + "'"
	}
	if autojoin != "" {
		s += " autojoin='" + autojoin + "'"
	}
	s += ">"
	if nick != "" {
		s += "<nick>" + nick + "</nick>"
	}
	if password != "" {
		s += "<password>" + password + "</password>"
	}
	return s + "</conference>"
}

func pubsubItems(node string, items ...string) string {
	return "<pubsub xmlns='" + nsPubsub + "'><items node='" + node + "'>" + strings.Join(items, "") + "</items></pubsub>"
}

func item(id, payload string) string { return "<item id='" + id + "'>" + payload + "</item>" }

func itemEvent(node, id, payload string) string {
	return "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'>" + item(id, payload) + "</items></event>"
}

func retractEvent(node, id string) string {
	return "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'><retract id='" + id + "'></retract></items></event>"
}

func getItems(node string) string {
	return "<pubsub xmlns='" + nsPubsub + "'><items node='" + node + "'/></pubsub>"
}

const getPrivate = "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"

func privateAnswer(storage string) string {
	return "<query xmlns='jabber:iq:private'>" + storage + "</query>"
}

// publishOptions is a publish-options form (XEP-0060 §7.1.5).
func publishOptions(kv ...string) string {
	s := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPubsub + "#publish-options</value></field>"
	for i := 0; i+1 < len(kv); i += 2 {
		s += "<field var='" + kv[i] + "'><value>" + kv[i+1] + "</value></field>"
	}
	return s + "</x></publish-options>"
}

// TestBookmarksCompat: bookmarks written through each of the three
// interfaces — private XML storage:bookmarks (XEP-0049/0048), the XEP-0402
// node urn:xmpp:bookmarks:1, XEP-0048's PEP node storage:bookmarks — read
// the same through the other two, across a restart; a retracted XEP-0402
// item is gone from the others, and emptied private XML empties the
// XEP-0402 node. Another resource whose caps announce
// urn:xmpp:bookmarks:1+notify gets the events of every change, a private
// XML one too (XEP-0402 §5.3, #compat), and at login the last item of the
// XEP-0048 node only (XEP-0402's is send_last_published_item never); a
// contact gets none and cannot read them.
func TestBookmarksCompat(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		srv.AddUser(t, "alice", "pw")
		srv.AddUser(t, "bob", "pw")
		notify := []string{"urn:xmpp:bookmarks:1+notify", "storage:bookmarks+notify"}
		a := loginAs(t, srv, "alice", "a")
		a2 := loginAs(t, srv, "alice", "a2", notify...)
		bob := loginAs(t, srv, "bob", "b", notify...)
		subscribe(t, bob, a)

		// 1. Private XML (XEP-0049 + XEP-0048).
		storage1 := "<storage xmlns='storage:bookmarks'>" +
			"<conference jid='" + room1 + "' name='Room One' autojoin='true'><nick>al</nick><password>pw1</password></conference>" +
			"<conference jid='" + room2 + "' name='Room Two'></conference>" +
			"<url name='Site' url='https://example.org/'></url></storage>"
		a.ok("set", "<query xmlns='jabber:iq:private'>"+storage1+"</query>")
		c1 := conference("Room One", "true", "al", "pw1")
		c2 := conference("Room Two", "", "", "")
		wantEvents(t, a2, itemEvent("urn:xmpp:bookmarks:1", room1, c1), itemEvent("urn:xmpp:bookmarks:1", room2, c2),
			itemEvent("storage:bookmarks", "current", storage1))
		wantEvents(t, bob)
		want(t, "XEP-0402 items after a private set", a.ok("get", getItems("urn:xmpp:bookmarks:1")),
			pubsubItems("urn:xmpp:bookmarks:1", item(room1, c1), item(room2, c2)))
		want(t, "XEP-0048 PEP node after a private set", a.ok("get", getItems("storage:bookmarks")),
			pubsubItems("storage:bookmarks", item("current", storage1)))
		if e := bob.iqTo("get", "alice@localhost", getItems("urn:xmpp:bookmarks:1")); e.Attr("type") != "error" {
			t.Fatalf("bob read alice's bookmarks: %s", e.Raw)
		}

		srv = restart(t, srv)
		a = loginAs(t, srv, "alice", "a")
		a2 = loginAs(t, srv, "alice", "a2", notify...)
		// The last item of the XEP-0048 node (XEP-0163 §6.2); XEP-0402's
		// node sends none (send_last_published_item never, §3.3).
		wantEvents(t, a2, itemEvent("storage:bookmarks", "current", storage1))
		want(t, "private XML after a restart", a.ok("get", getPrivate), privateAnswer(storage1))

		// 2. A XEP-0402 item (§3.3 publish-options).
		c3 := conference("Room Three", "false", "al3", "")
		a.ok("set", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:bookmarks:1'><item id='"+room3+"'>"+c3+"</item></publish>"+
			publishOptions("pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist")+"</pubsub>")
		storage3 := "<storage xmlns='storage:bookmarks'>" +
			"<conference jid='" + room1 + "' name='Room One' autojoin='true'><nick>al</nick><password>pw1</password></conference>" +
			"<conference jid='" + room2 + "' name='Room Two'></conference>" +
			"<conference jid='" + room3 + "' name='Room Three'><nick>al3</nick></conference>" +
			"<url name='Site' url='https://example.org/'></url></storage>"
		want(t, "private XML after a XEP-0402 publish", a.ok("get", getPrivate), privateAnswer(storage3))
		want(t, "XEP-0048 PEP node after a XEP-0402 publish", a.ok("get", getItems("storage:bookmarks")),
			pubsubItems("storage:bookmarks", item("current", storage3)))
		wantEvents(t, a2, itemEvent("urn:xmpp:bookmarks:1", room3, c3), itemEvent("storage:bookmarks", "current", storage3))

		// 3. XEP-0048's PEP node (§3.2): room1 changed, room4 new, 2 and 3 gone.
		storage4 := "<storage xmlns='storage:bookmarks'>" +
			"<conference jid='" + room1 + "' name='Room 1' autojoin='true'><nick>al</nick></conference>" +
			"<conference jid='" + room4 + "' autojoin='1'><nick>four</nick><minimize xmlns='xmpp:gajim.org/bookmarks'>true</minimize></conference></storage>"
		a.ok("set", "<pubsub xmlns='"+nsPubsub+"'><publish node='storage:bookmarks'><item id='current'>"+storage4+"</item></publish>"+
			publishOptions("pubsub#persist_items", "true", "pubsub#access_model", "whitelist")+"</pubsub>")
		c1b := conference("Room 1", "true", "al", "")
		c4 := "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>four</nick><extensions><minimize xmlns='xmpp:gajim.org/bookmarks'>true</minimize></extensions></conference>"
		want(t, "XEP-0402 items after a XEP-0048 PEP publish", a.ok("get", getItems("urn:xmpp:bookmarks:1")),
			pubsubItems("urn:xmpp:bookmarks:1", item(room1, c1b), item(room4, c4)))
		// Answered from the XEP-0402 items: the same, autojoin='1' written
		// as 'true'.
		want(t, "private XML after a XEP-0048 PEP publish", a.ok("get", getPrivate),
			privateAnswer(strings.Replace(storage4, "autojoin='1'", "autojoin='true'", 1)))
		wantEvents(t, a2, itemEvent("storage:bookmarks", "current", storage4),
			itemEvent("urn:xmpp:bookmarks:1", room1, c1b), itemEvent("urn:xmpp:bookmarks:1", room4, c4),
			retractEvent("urn:xmpp:bookmarks:1", room2), retractEvent("urn:xmpp:bookmarks:1", room3))

		// 4. A XEP-0402 retraction.
		a.ok("set", "<pubsub xmlns='"+nsPubsub+"'><retract node='urn:xmpp:bookmarks:1' notify='true'><item id='"+room4+"'/></retract></pubsub>")
		storage5 := "<storage xmlns='storage:bookmarks'><conference jid='" + room1 + "' name='Room 1' autojoin='true'><nick>al</nick></conference></storage>"
		want(t, "private XML after a XEP-0402 retract", a.ok("get", getPrivate), privateAnswer(storage5))
		want(t, "XEP-0048 PEP node after a XEP-0402 retract", a.ok("get", getItems("storage:bookmarks")),
			pubsubItems("storage:bookmarks", item("current", storage5)))
		wantEvents(t, a2, retractEvent("urn:xmpp:bookmarks:1", room4), itemEvent("storage:bookmarks", "current", storage5))

		srv = restart(t, srv)
		a = loginAs(t, srv, "alice", "a")
		want(t, "private XML after the second restart", a.ok("get", getPrivate), privateAnswer(storage5))
		want(t, "XEP-0402 items after the second restart", a.ok("get", getItems("urn:xmpp:bookmarks:1")),
			pubsubItems("urn:xmpp:bookmarks:1", item(room1, c1b)))

		// 5. Private XML emptied: every XEP-0402 item retracted.
		a2 = loginAs(t, srv, "alice", "a2", notify...)
		wantEvents(t, a2, itemEvent("storage:bookmarks", "current", storage5))
		a.ok("set", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
		empty := "<storage xmlns='storage:bookmarks'></storage>"
		want(t, "XEP-0402 items after emptying private XML", a.ok("get", getItems("urn:xmpp:bookmarks:1")), pubsubItems("urn:xmpp:bookmarks:1"))
		want(t, "XEP-0048 PEP node after emptying private XML", a.ok("get", getItems("storage:bookmarks")),
			pubsubItems("storage:bookmarks", item("current", empty)))
		want(t, "private XML after emptying it", a.ok("get", getPrivate), privateAnswer(empty))
		wantEvents(t, a2, retractEvent("urn:xmpp:bookmarks:1", room1), itemEvent("storage:bookmarks", "current", empty))
	})
}
