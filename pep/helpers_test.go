package pep_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/pep"
	"xmppd.dev/xmppd/storage"
)

var _ pep.Store = (*storage.PEP)(nil)

const (
	wait  = 10 * time.Second
	quiet = 300 * time.Millisecond
)

// engines runs f on SQLite and on PostgreSQL.
func engines(t *testing.T, f func(t *testing.T, opts ...xmpptest.Option)) {
	t.Run("sqlite", func(t *testing.T) { f(t) })
	t.Run("postgres", func(t *testing.T) { f(t, xmpptest.WithPostgres(t)) })
}

// client is a logged-in test client that numbers its IQs.
type client struct {
	*xmpptest.Client
	t    *testing.T
	n    int
	seen []xmpptest.Element // received while waiting for an IQ's answer
}

// expect returns the first element, received while waiting for an IQ's
// answer or after, that match accepts.
func (c *client) expect(what string, match func(xmpptest.Element) bool) xmpptest.Element {
	c.t.Helper()
	for i, e := range c.seen {
		if match(e) {
			c.seen = append(c.seen[:i], c.seen[i+1:]...)
			return e
		}
	}
	return c.Expect(wait, what, match)
}

func addUsers(t *testing.T, srv *xmpptest.Server, names ...string) {
	t.Helper()
	for _, n := range names {
		srv.AddUser(t, n, "pw")
	}
}

func login(t *testing.T, srv *xmpptest.Server, name, res string) *client {
	t.Helper()
	j := jid.MustParse(name + "@localhost")
	return &client{Client: srv.Login(t, j, "pw", xmpptest.LoginOptions{Resource: res}), t: t}
}

// online sends initial presence with entity capabilities listing
// features (such as node+"+notify", XEP-0163 §4), answers the server's
// query for them, and waits until the server knows them. What arrives
// meanwhile is kept for expect.
func (c *client) online(features ...string) *client {
	c.t.Helper()
	c.AnnounceCaps(features...)
	c.seen = append(c.seen, c.SyncCaps()...)
	return c
}

// iq sends an IQ of type typ (to "" for none) and returns its answer.
func (c *client) iq(typ, to, payload string) xmpptest.Element {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("iq%d", c.n)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload)
	deadline := time.After(wait)
	for {
		select {
		case e := <-c.Elements():
			if e.Name.Local == "iq" && e.Attr("id") == id {
				return e
			}
			c.seen = append(c.seen, e)
		case <-deadline:
			c.t.Fatalf("%s: no answer to %s", c.JID, id)
		}
	}
}

// ok is iq that must succeed.
func (c *client) ok(typ, to, payload string) xmpptest.Element {
	c.t.Helper()
	e := c.iq(typ, to, payload)
	if e.Attr("type") != "result" {
		c.t.Fatalf("%s: %s %s: %s", c.JID, typ, payload, e.Raw)
	}
	return e
}

// fails is iq that must fail with the condition cond and, when app is not
// "", the pubsub#errors condition app.
func (c *client) fails(typ, to, payload, cond, app string) xmpptest.Element {
	c.t.Helper()
	e := c.iq(typ, to, payload)
	if e.Attr("type") != "error" || !e.Contains("<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'") {
		c.t.Fatalf("%s: %s %s: got %s, want error %s", c.JID, typ, payload, e.Raw, cond)
	}
	if app != "" && !e.Contains("<"+app+" xmlns='http://jabber.org/protocol/pubsub#errors'") {
		c.t.Fatalf("%s: %s %s: got %s, want pubsub error %s", c.JID, typ, payload, e.Raw, app)
	}
	return e
}

// publish is a publish request to node with one item (id "" for none) and
// publish-options (var, value pairs).
func publish(node, id, payload string, opts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item", node)
	if id != "" {
		fmt.Fprintf(&b, " id='%s'", id)
	}
	fmt.Fprintf(&b, ">%s</item></publish>", payload)
	if len(opts) > 0 {
		b.WriteString(options("http://jabber.org/protocol/pubsub#publish-options", "publish-options", opts...))
	}
	b.WriteString("</pubsub>")
	return b.String()
}

// options is a submitted form of FORM_TYPE formType wrapped in wrap.
func options(formType, wrap string, opts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<%s><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field>", wrap, formType)
	for i := 0; i+1 < len(opts); i += 2 {
		fmt.Fprintf(&b, "<field var='%s'><value>%s</value></field>", opts[i], opts[i+1])
	}
	fmt.Fprintf(&b, "</x></%s>", strings.Fields(wrap)[0])
	return b.String()
}

// items is an items request.
func items(node, extra string, ids ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'%s>", node, extra)
	for _, id := range ids {
		fmt.Fprintf(&b, "<item id='%s'/>", id)
	}
	b.WriteString("</items></pubsub>")
	return b.String()
}

func owner(inner string) string {
	return "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>" + inner + "</pubsub>"
}

// subscribe makes from subscribed to to's presence (to approves); both
// are online.
func subscribe(t *testing.T, from, to *client) {
	t.Helper()
	from.Send("<presence type='subscribe' to='%s'/>", to.JID.Bare())
	to.Expect(wait, "subscription request", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribe"
	})
	to.Send("<presence type='subscribed' to='%s'/>", from.JID.Bare())
	from.Expect(wait, "approval", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribed"
	})
	from.Sync()
	to.Sync()
}

// isEvent matches a pubsub event from owner containing s.
func isEvent(from, s string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("type") == "headline" && e.Attr("from") == from &&
			e.Contains("http://jabber.org/protocol/pubsub#event") && e.Contains(s)
	}
}

func isAnyEvent(e xmpptest.Element) bool {
	return e.Name.Local == "message" && e.Contains("http://jabber.org/protocol/pubsub#event")
}

// noEvent fails if any of cs has received an event. The server handles a
// client's stanzas in order, and the events of a publish, a retract or a
// node change are routed before its IQ result: once the actor has the
// result, a Sync of each other client shows whatever it was sent.
func noEvent(t *testing.T, what string, cs ...*client) {
	t.Helper()
	for _, c := range cs {
		c.seen = append(c.seen, c.Sync()...)
		for _, e := range c.seen {
			if isAnyEvent(e) {
				t.Fatalf("%s got an event %s: %s", c.JID, what, e.Raw)
			}
		}
	}
}
