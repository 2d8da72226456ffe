package pep_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestAccessModels: alice has a node of each access model. bob is a
// stranger, carol receives alice's presence (from), dave is in alice's
// roster in the group Friends without a subscription, erin in the group
// Work. Each reads what the model allows and gets XEP-0060 §6.5.9's error
// otherwise; disco#items shows each the nodes it may read, disco#info on a
// node the rest is item-not-found. After a restart, the same.
func TestAccessModels(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		addUsers(t, srv, "alice", "bob", "carol", "dave", "erin")
		a := login(t, srv, "alice", "a").online()
		carol := login(t, srv, "carol", "c").online()
		subscribe(t, carol, a)
		a.ok("set", "", "<query xmlns='jabber:iq:roster'><item jid='dave@localhost'><group>Friends</group></item></query>")
		a.ok("set", "", "<query xmlns='jabber:iq:roster'><item jid='erin@localhost'><group>Work</group></item></query>")
		a.ok("set", "", publish("urn:example:open", "1", "<x xmlns='urn:example'>open</x>", "pubsub#access_model", "open"))
		a.ok("set", "", publish("urn:example:presence", "1", "<x xmlns='urn:example'>presence</x>"))
		a.ok("set", "", publish("urn:example:roster", "1", "<x xmlns='urn:example'>roster</x>", "pubsub#access_model", "roster"))
		a.ok("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='urn:example:roster'",
			"pubsub#roster_groups_allowed", "Friends")))
		a.ok("set", "", publish("urn:example:whitelist", "1", "<x xmlns='urn:example'>whitelist</x>", "pubsub#access_model", "whitelist"))

		type want struct{ cond, app string }
		allowed := want{}
		cases := map[string]map[string]want{
			"bob": {"open": allowed, "presence": {"not-authorized", "presence-subscription-required"},
				"roster": {"not-authorized", "not-in-roster-group"}, "whitelist": {"not-allowed", "closed-node"}},
			"carol": {"open": allowed, "presence": allowed,
				"roster": {"not-authorized", "not-in-roster-group"}, "whitelist": {"not-allowed", "closed-node"}},
			"dave": {"open": allowed, "presence": {"not-authorized", "presence-subscription-required"},
				"roster": allowed, "whitelist": {"not-allowed", "closed-node"}},
			"erin": {"open": allowed, "presence": {"not-authorized", "presence-subscription-required"},
				"roster": {"not-authorized", "not-in-roster-group"}, "whitelist": {"not-allowed", "closed-node"}},
		}
		check := func(srv *xmpptest.Server) {
			t.Helper()
			for _, name := range []string{"bob", "carol", "dave", "erin"} {
				c := login(t, srv, name, "x")
				var visible []string
				for _, model := range []string{"open", "presence", "roster", "whitelist"} {
					w := cases[name][model]
					node := "urn:example:" + model
					if w == allowed {
						got := c.ok("get", "alice@localhost", items(node, ""))
						if !got.Contains("<item id='1'><x xmlns='urn:example'>" + model + "</x></item>") {
							t.Fatalf("%s reads %s: %s", name, node, got.Inner)
						}
						visible = append(visible, node)
						c.ok("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info' node='"+node+"'/>")
						continue
					}
					e := c.fails("get", "alice@localhost", items(node, ""), w.cond, w.app)
					if w.cond == "not-authorized" && !strings.Contains(e.Raw, "type='auth'") {
						t.Fatalf("%s on %s: %s", name, node, e.Raw)
					}
					c.fails("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info' node='"+node+"'/>", "item-not-found", "")
				}
				d := c.ok("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#items'/>")
				var listed []string
				for _, part := range strings.Split(d.Inner, "node='")[1:] {
					listed = append(listed, part[:strings.IndexByte(part, '\'')])
				}
				if strings.Join(listed, " ") != strings.Join(visible, " ") {
					t.Fatalf("%s's disco#items of alice: %q, want %q (%s)", name, listed, visible, d.Inner)
				}
				c.Close()
			}
			// The owner sees everything.
			d := a.ok("get", "", "<query xmlns='http://jabber.org/protocol/disco#items'/>")
			if strings.Count(d.Inner, "<item ") != 4 || !d.Contains("<item jid='alice@localhost' node='urn:example:whitelist'>") {
				t.Fatalf("alice's own disco#items: %s", d.Inner)
			}
			info := a.ok("get", "", "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:whitelist'/>")
			if want := "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:whitelist'><identity category='pubsub' type='leaf'></identity><feature var='http://jabber.org/protocol/pubsub'></feature></query>"; info.Inner != want {
				t.Fatalf("node disco#info %s, want %s", info.Inner, want)
			}
		}
		check(srv)
		cfg := srv.Config
		a.Close()
		carol.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		a = login(t, srv, "alice", "a")
		check(srv)
	})
}

// TestAccountDisco: an account's disco#info has the pubsub/pep identity and
// the pubsub features clients look for (publish-options for OMEMO).
func TestAccountDisco(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob")
	bob := login(t, srv, "bob", "b")
	info := bob.ok("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	for _, want := range []string{
		"<identity category='account' type='registered'></identity><identity category='pubsub' type='pep'></identity>",
		"<feature var='http://jabber.org/protocol/pubsub#publish-options'>", "<feature var='http://jabber.org/protocol/pubsub#publish'>",
		"<feature var='http://jabber.org/protocol/pubsub#auto-create'>", "<feature var='http://jabber.org/protocol/pubsub#access-whitelist'>",
		"<feature var='http://jabber.org/protocol/pubsub#config-node-max'>", "<feature var='http://jabber.org/protocol/pubsub#last-published'>",
	} {
		if !info.Contains(want) {
			t.Fatalf("account disco#info lacks %s: %s", want, info.Inner)
		}
	}
	// An account without nodes lists none; a node that does not exist is
	// item-not-found.
	if d := bob.ok("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#items'/>"); d.Inner != "<query xmlns='http://jabber.org/protocol/disco#items'></query>" {
		t.Fatalf("disco#items: %s", d.Inner)
	}
	bob.fails("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:none'/>", "item-not-found", "")
	// A stranger publishing to alice: forbidden.
	bob.fails("set", "alice@localhost", publish("urn:example", "1", "<x xmlns='urn:example'/>"), "forbidden", "")
}
