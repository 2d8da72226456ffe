package pep_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestNotifications: alice publishes from one resource. Her other resource
// and bob, who receives her presence, get the event (one serialisation,
// addressed to each full JID) since their entity capabilities announce
// the node's +notify; carol, not subscribed, gets none; nor does a
// resource whose caps lack the node's +notify, one whose caps answer does
// not hash to its ver (forged), or one that never answers the server's
// query. A whitelist node's events reach only alice's resources. Retract
// with notify, without it on a node that does not notify retractions,
// purge and delete send what XEP-0060 §7.2.2.1, §8.5.2 and §8.4.2 show.
func TestNotifications(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob", "carol")
	const node, mood = "http://jabber.org/protocol/tune", "http://jabber.org/protocol/mood"
	notify := []string{node + "+notify", "urn:xmpp:bookmarks:1+notify"}
	a := login(t, srv, "alice", "a").online(notify...)
	a2 := login(t, srv, "alice", "a2").online(notify...)
	if a.CapsQueries() != 1 || a2.CapsQueries() != 0 {
		t.Fatalf("caps queries: %d, then %d for the cached ver", a.CapsQueries(), a2.CapsQueries())
	}
	moodOnly := login(t, srv, "alice", "mood").online(mood + "+notify")
	bob := login(t, srv, "bob", "b").online(notify...)
	carol := login(t, srv, "carol", "c").online(notify...)
	// Announces the ver of a client without +notify, answers with them.
	forged := login(t, srv, "bob", "forged")
	forged.Send("<presence>%s</presence>", forged.ServeCapsVer(xmpptest.CapsVer(), notify...))
	forged.SyncCaps()
	// Never answers the server's query.
	silent := login(t, srv, "bob", "silent")
	silent.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org/silent' ver='%s'/></presence>", xmpptest.CapsVer(notify...)+"x")
	silent.Sync()
	subscribe(t, bob, a)
	a2.Sync()
	a.ok("set", "", publish(node, "t1", tuneOne))
	wantItem := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'><item id='t1'>" + tuneOne + "</item></items></event>"
	for _, c := range []*client{a, a2, bob} {
		e := c.expect("tune event", isEvent("alice@localhost", "t1"))
		if e.Inner != wantItem || e.Attr("to") != c.JID.String() || e.Attr("type") != "headline" {
			t.Fatalf("%s got %s, want %s", c.JID, e.Raw, wantItem)
		}
	}
	noEvent(t, "without +notify, with a forged or unanswered ver, or not subscribed", moodOnly, forged, silent, carol)
	// The resource without tune+notify does get what it asked for.
	a.ok("set", "", publish(mood, "m1", "<mood xmlns='"+mood+"'><happy/></mood>"))
	moodOnly.expect("mood event", isEvent("alice@localhost", "m1"))
	noEvent(t, "without mood+notify", a, a2, bob, forged, silent, carol)

	// Retract, notified on request.
	a.ok("set", "", "<pubsub xmlns='"+nsPub+"'><retract node='"+node+"' notify='true'><item id='t1'/></retract></pubsub>")
	for _, c := range []*client{a2, bob} {
		e := c.Expect(wait, "retract event", isEvent("alice@localhost", "retract"))
		if want := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'><retract id='t1'></retract></items></event>"; e.Inner != want {
			t.Fatalf("%s got %s, want %s", c.JID, e.Inner, want)
		}
	}
	a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><retract node='"+node+"'><item id='t1'/></retract></pubsub>", "item-not-found", "")
	a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><retract node='urn:none'><item id='t1'/></retract></pubsub>", "item-not-found", "")
	// notify='0' wins over the node's notify_retract.
	a.ok("set", "", publish(node, "t2", tuneTwo))
	bob.Expect(wait, "t2", isEvent("alice@localhost", "t2"))
	a.ok("set", "", "<pubsub xmlns='"+nsPub+"'><retract node='"+node+"' notify='0'><item id='t2'/></retract></pubsub>")
	bob.ExpectNone(quiet, "retract event when notify='0'", isEvent("alice@localhost", "retract"))

	// Purge and delete.
	a.ok("set", "", publish(node, "t3", tuneTwo))
	bob.Expect(wait, "t3", isEvent("alice@localhost", "t3"))
	a.ok("set", "", owner("<purge node='"+node+"'/>"))
	for _, c := range []*client{a2, bob} {
		e := c.Expect(wait, "purge event", isEvent("alice@localhost", "purge"))
		if want := "<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='" + node + "'></purge></event>"; e.Inner != want {
			t.Fatalf("%s got %s", c.JID, e.Inner)
		}
	}
	if got := a.ok("get", "", items(node, "")); strings.Contains(got.Inner, "<item ") {
		t.Fatalf("items after purge: %s", got.Inner)
	}
	a.ok("set", "", owner("<delete node='"+node+"'/>"))
	for _, c := range []*client{a2, bob} {
		e := c.Expect(wait, "delete event", isEvent("alice@localhost", "delete"))
		if want := "<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='" + node + "'></delete></event>"; e.Inner != want {
			t.Fatalf("%s got %s", c.JID, e.Inner)
		}
	}
	a.fails("get", "", items(node, ""), "item-not-found", "")
	a.fails("set", "", owner("<delete node='"+node+"'/>"), "item-not-found", "")
	a.fails("set", "", owner("<purge node='"+node+"'/>"), "item-not-found", "")

	// A whitelist node: alice's resources only.
	a.ok("set", "", publish("urn:xmpp:bookmarks:1", "room@conference.localhost", "<conference xmlns='urn:xmpp:bookmarks:1'/>", "pubsub#access_model", "whitelist"))
	a2.expect("bookmark event", isEvent("alice@localhost", "room@conference.localhost"))
	noEvent(t, "of a whitelist node", bob, carol)
}

// TestLastItemOnPresence: bob receives alice's presence. When he comes
// online after a restart he gets, once the server knows his entity
// capabilities (XEP-0163 §6.2) and not before, the last item of each of
// her nodes he announced +notify for that sends it on presence (not of
// one configured never, not of her whitelist node, not every item), and
// of his own. His second resource, whose ver is cached by then, gets them
// at once; a resource whose caps lack a node's +notify does not get that
// node's; carol, a stranger, gets nothing of alice's.
func TestLastItemOnPresence(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		addUsers(t, srv, "alice", "bob", "carol")
		a := login(t, srv, "alice", "a").online()
		bob := login(t, srv, "bob", "b").online()
		subscribe(t, bob, a)
		a.ok("set", "", publish("urn:example:open", "o1", "<x xmlns='urn:example'>o1</x>", "pubsub#access_model", "open", "pubsub#max_items", "5"))
		a.ok("set", "", publish("urn:example:open", "o2", "<x xmlns='urn:example'>o2</x>"))
		a.ok("set", "", publish("urn:example:presence", "p1", "<x xmlns='urn:example'>p1</x>"))
		a.ok("set", "", publish("urn:example:never", "n1", "<x xmlns='urn:example'>n1</x>", "pubsub#send_last_published_item", "never"))
		a.ok("set", "", publish("urn:example:mine", "w1", "<x xmlns='urn:example'>w1</x>", "pubsub#access_model", "whitelist"))
		bob.ok("set", "", publish("urn:example:bobs", "b1", "<x xmlns='urn:example'>b1</x>"))
		cfg := srv.Config
		a.Close()
		bob.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)

		feats := []string{"urn:example:open+notify", "urn:example:presence+notify", "urn:example:never+notify",
			"urn:example:mine+notify", "urn:example:bobs+notify"}
		open := "alice@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:open'><item id='o2'><x xmlns='urn:example'>o2</x></item></items></event>"
		presence := "alice@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:presence'><item id='p1'><x xmlns='urn:example'>p1</x></item></items></event>"
		bobs := "bob@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:bobs'><item id='b1'><x xmlns='urn:example'>b1</x></item></items></event>"

		// The cache is empty after the restart: the server asks, and
		// sends nothing before the answer.
		bob = login(t, srv, "bob", "b")
		ver := xmpptest.CapsVer(feats...)
		bob.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/></presence>", xmpptest.CapsNode, ver)
		var q xmpptest.Element
		for _, e := range bob.Sync() {
			if isAnyEvent(e) {
				t.Fatalf("an event before the caps are known: %s", e.Raw)
			}
			if xmpptest.IsCapsQuery(ver)(e) {
				q = e
			}
		}
		if q.Raw == "" {
			t.Fatal("the server did not ask for bob's caps")
		}
		expectLast(t, bob.AnswerCaps(q, feats...), bob.JID.String(), open, presence, bobs)

		// The ver is cached now.
		b2 := login(t, srv, "bob", "b2")
		b2.AnnounceCaps(feats...)
		expectLast(t, b2.SyncCaps(), b2.JID.String(), open, presence, bobs)
		if b2.CapsQueries() != 0 {
			t.Fatalf("asked %d times for a cached ver", b2.CapsQueries())
		}
		// Caps without urn:example:presence+notify.
		b3 := login(t, srv, "bob", "b3")
		b3.AnnounceCaps("urn:example:open+notify", "urn:example:bobs+notify")
		expectLast(t, b3.SyncCaps(), b3.JID.String(), open, bobs)

		carol := login(t, srv, "carol", "c")
		carol.AnnounceCaps(feats...)
		expectLast(t, carol.SyncCaps(), carol.JID.String())
	})
}

// expectLast checks that the events among got are exactly want ("from
// inner"), each addressed to to.
func expectLast(t *testing.T, got []xmpptest.Element, to string, want ...string) {
	t.Helper()
	events := map[string]string{}
	for _, e := range got {
		if isAnyEvent(e) {
			if _, dup := events[e.Attr("from")+" "+e.Inner]; dup {
				t.Errorf("%s got %s twice", to, e.Raw)
			}
			events[e.Attr("from")+" "+e.Inner] = e.Attr("to")
		}
	}
	for _, w := range want {
		if events[w] != to {
			t.Errorf("%s did not get %s; got %v", to, w, events)
		}
	}
	if len(events) != len(want) {
		t.Fatalf("%s got %d last items, want %d: %v", to, len(events), len(want), events)
	}
}
