package pep_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestNotifications: alice publishes from one resource. Her other resource
// and bob, who receives her presence, get the event (one serialisation,
// addressed to each full JID); carol, not subscribed, gets none; a
// whitelist node's events reach only alice's resources. Retract with
// notify, without it on a node that does not notify retractions, purge and
// delete send what XEP-0060 §7.2.2.1, §8.5.2 and §8.4.2 show.
func TestNotifications(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob", "carol")
	a := login(t, srv, "alice", "a").online()
	a2 := login(t, srv, "alice", "a2").online()
	bob := login(t, srv, "bob", "b").online()
	carol := login(t, srv, "carol", "c").online()
	subscribe(t, bob, a)
	a2.Sync()
	const node = "http://jabber.org/protocol/tune"
	a.ok("set", "", publish(node, "t1", tuneOne))
	wantItem := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'><item id='t1'>" + tuneOne + "</item></items></event>"
	for _, c := range []*client{a, a2, bob} {
		e := c.expect("tune event", isEvent("alice@localhost", "t1"))
		if e.Inner != wantItem || e.Attr("to") != c.JID.String() || e.Attr("type") != "headline" {
			t.Fatalf("%s got %s, want %s", c.JID, e.Raw, wantItem)
		}
	}
	carol.ExpectNone(quiet, "event for someone not subscribed", isAnyEvent)

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
	bob.ExpectNone(quiet, "event of a whitelist node", isAnyEvent)
	carol.ExpectNone(quiet, "any event", isAnyEvent)
}

// TestLastItemOnPresence: bob receives alice's presence; when he comes
// online after a restart he gets the last item of each of her nodes that
// sends it on presence (not of one configured never, not every item), and
// of his own; carol, a stranger, gets nothing of alice's.
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

		bob = login(t, srv, "bob", "b")
		bob.Send("<presence/>")
		got := map[string]string{}
		for _, e := range bob.Sync() {
			if isAnyEvent(e) {
				got[e.Attr("from")+" "+e.Inner] = e.Attr("to")
			}
		}
		want := []string{
			"alice@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:open'><item id='o2'><x xmlns='urn:example'>o2</x></item></items></event>",
			"alice@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:presence'><item id='p1'><x xmlns='urn:example'>p1</x></item></items></event>",
			"bob@localhost <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:example:bobs'><item id='b1'><x xmlns='urn:example'>b1</x></item></items></event>",
		}
		for _, w := range want {
			if got[w] != "bob@localhost/b" {
				t.Errorf("bob did not get %s; got %v", w, got)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("bob got %d last items, want %d: %v", len(got), len(want), got)
		}
		carol := login(t, srv, "carol", "c")
		carol.Send("<presence/>")
		for _, e := range carol.Sync() {
			if isAnyEvent(e) {
				t.Fatalf("carol got %s", e.Raw)
			}
		}
	})
}
