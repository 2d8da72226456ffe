package pep_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	nsPub   = "http://jabber.org/protocol/pubsub"
	tune    = "http://jabber.org/protocol/tune"
	tuneOne = "<tune xmlns='http://jabber.org/protocol/tune'><artist>Yes</artist><title>Heart of the Sunrise</title></tune>"
	tuneTwo = "<tune xmlns='http://jabber.org/protocol/tune'><artist>Gentle Giant</artist></tune>"
)

// TestPublishRetrieve: a first publish creates the node (auto-create) and
// answers with the item id, generated when absent; items come back all,
// by id and by max_items, newest kept by the default max_items of 1 and by
// a node configured for more; an item republished under its id replaces
// it; a missing node or item is item-not-found; all of it survives a
// restart on both engines.
func TestPublishRetrieve(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		addUsers(t, srv, "alice")
		a := login(t, srv, "alice", "a")

		r := a.ok("set", "", publish(tune, "t1", tuneOne))
		if want := "<pubsub xmlns='" + nsPub + "'><publish node='" + tune + "'><item id='t1'></item></publish></pubsub>"; r.Inner != want {
			t.Fatalf("publish result %s, want %s", r.Inner, want)
		}
		got := a.ok("get", "", items(tune, ""))
		if want := "<pubsub xmlns='" + nsPub + "'><items node='" + tune + "'><item id='t1'>" + tuneOne + "</item></items></pubsub>"; got.Inner != want {
			t.Fatalf("items %s, want %s", got.Inner, want)
		}
		// Without an id the server makes one; the default node keeps one item.
		r = a.ok("set", "", publish(tune, "", tuneTwo))
		if strings.Contains(r.Inner, "id=''") || !strings.Contains(r.Inner, "<item id='") {
			t.Fatalf("publish without id: %s", r.Inner)
		}
		got = a.ok("get", "alice@localhost", items(tune, ""))
		if strings.Contains(got.Inner, "t1") || !strings.Contains(got.Inner, "Gentle Giant") {
			t.Fatalf("after a second publish on a max_items=1 node: %s", got.Inner)
		}

		// A node for several items.
		const notes = "urn:example:notes"
		for i, id := range []string{"n1", "n2", "n3"} {
			a.ok("set", "", publish(notes, id, "<note xmlns='urn:example'>"+id+"</note>", "pubsub#max_items", "10"))
			_ = i
		}
		a.ok("set", "", publish(notes, "n1", "<note xmlns='urn:example'>n1 again</note>"))
		check := func(req, want string) {
			t.Helper()
			got := a.ok("get", "", req)
			var ids []string
			for _, part := range strings.Split(got.Inner, "<item id='")[1:] {
				ids = append(ids, part[:strings.IndexByte(part, '\'')])
			}
			if strings.Join(ids, " ") != want {
				t.Fatalf("%s: items %q, want %s (%s)", req, ids, want, got.Inner)
			}
		}
		check(items(notes, ""), "n2 n3 n1")
		check(items(notes, " max_items='2'"), "n3 n1")
		check(items(notes, "", "n2", "zz"), "n2")
		a.fails("get", "", items(notes, "", "zz"), "item-not-found", "")
		a.fails("get", "", items("urn:example:none", ""), "item-not-found", "")
		a.fails("get", "", items("", ""), "bad-request", "nodeid-required")
		a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><publish node='x'/></pubsub>", "bad-request", "item-required")
		a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><publish node='x'><item id='1'/></publish></pubsub>", "bad-request", "payload-required")
		a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><subscribe node='x' jid='alice@localhost'/></pubsub>", "feature-not-implemented", "unsupported")

		cfg := srv.Config
		a.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		a = login(t, srv, "alice", "a")
		check(items(notes, ""), "n2 n3 n1")
		if got := a.ok("get", "", items(notes, "", "n1")); !strings.Contains(got.Inner, "<note xmlns='urn:example'>n1 again</note>") {
			t.Fatalf("after restart: %s", got.Inner)
		}
	})
}

// TestPublishOptions: options configure a node on its creation; on an
// existing node they are preconditions — equal ones (max and the limit it
// stands for alike) publish, a differing one or an unknown field is
// conflict/precondition-not-met, and the item is not published; a bad
// value is not-acceptable.
func TestPublishOptions(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice")
	a := login(t, srv, "alice", "a")
	const node = "urn:xmpp:bookmarks:1"
	conf := "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true' name='Lounge'><nick>alice</nick></conference>"
	opts := []string{"pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist"}
	a.ok("set", "", publish(node, "lounge@conference.localhost", conf, opts...))
	cfg := a.ok("get", "", owner("<configure node='"+node+"'/>"))
	for _, want := range []string{
		"<field var='pubsub#access_model' type='list-single'", "<value>whitelist</value></field>",
		"<field var='pubsub#max_items' type='text-single' label='Max # of items to persist (at most 256, or max)'><value>max</value></field>",
		"<field var='pubsub#send_last_published_item' type='list-single' label='When to send the last published item'><option><value>never</value></option><option><value>on_sub</value></option><option><value>on_sub_and_presence</value></option><value>never</value></field>",
	} {
		if !cfg.Contains(want) {
			t.Fatalf("config after create with options lacks %s: %s", want, cfg.Inner)
		}
	}
	// The same options again, and max spelt as the limit: preconditions hold.
	a.ok("set", "", publish(node, "b@conference.localhost", conf, opts...))
	a.ok("set", "", publish(node, "c@conference.localhost", conf, "pubsub#max_items", "256", "pubsub#access_model", "whitelist"))
	// A differing one, and one the server does not know.
	e := a.fails("set", "", publish(node, "d@conference.localhost", conf, "pubsub#access_model", "presence"), "conflict", "precondition-not-met")
	if e.Attr("type") != "error" || !strings.Contains(e.Raw, "type='cancel'") {
		t.Fatalf("precondition error: %s", e.Raw)
	}
	a.fails("set", "", publish(node, "d@conference.localhost", conf, "pubsub#access_model", "whitelist", "pubsub#itemreply", "owner"), "conflict", "precondition-not-met")
	// Also on creation an unknown option cannot be met.
	a.fails("set", "", publish("urn:example:new", "1", conf, "pubsub#itemreply", "owner"), "conflict", "precondition-not-met")
	a.fails("set", "", publish("urn:example:new", "1", conf, "pubsub#access_model", "authorize"), "not-acceptable", "unsupported-access-model")
	a.fails("set", "", publish("urn:example:new", "1", conf, "pubsub#max_items", "0"), "not-acceptable", "")
	a.fails("get", "", items("urn:example:new", ""), "item-not-found", "")
	got := a.ok("get", "", items(node, ""))
	if strings.Contains(got.Inner, "d@conference") || strings.Count(got.Inner, "<item ") != 3 {
		t.Fatalf("items after refused publishes: %s", got.Inner)
	}
	// Wrong FORM_TYPE.
	a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><publish node='"+node+"'><item id='x'>"+conf+"</item></publish>"+
		options("urn:example", "publish-options")+"</pubsub>", "bad-request", "")
}

// TestNodeConfig: the owner reads the default and a node's configuration,
// changes it (lowering max_items drops the oldest items at once), cancels;
// others are forbidden; bad values and unknown fields are not-acceptable.
func TestNodeConfig(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		addUsers(t, srv, "alice", "bob")
		a := login(t, srv, "alice", "a")
		bob := login(t, srv, "bob", "b")
		const node = "urn:example:cfg"
		d := a.ok("get", "", owner("<default/>"))
		for _, want := range []string{"<default><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>",
			"<value>presence</value></field>", "<field var='pubsub#max_items' type='text-single' label='Max # of items to persist (at most 256, or max)'><value>1</value></field>"} {
			if !d.Contains(want) {
				t.Fatalf("default config lacks %s: %s", want, d.Inner)
			}
		}
		for _, id := range []string{"1", "2", "3"} {
			a.ok("set", "", publish(node, id, "<x xmlns='urn:example'/>", "pubsub#max_items", "5"))
		}
		a.ok("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='"+node+"'",
			"pubsub#access_model", "open", "pubsub#max_items", "2", "pubsub#title", "Example")))
		c := a.ok("get", "", owner("<configure node='"+node+"'/>"))
		for _, want := range []string{"<value>open</value></field>", "label='Max # of items to persist (at most 256, or max)'><value>2</value>",
			"<field var='pubsub#title' type='text-single' label='A friendly name for the node'><value>Example</value></field>"} {
			if !c.Contains(want) {
				t.Fatalf("config lacks %s: %s", want, c.Inner)
			}
		}
		if got := a.ok("get", "", items(node, "")); strings.Contains(got.Inner, "id='1'") || strings.Count(got.Inner, "<item ") != 2 {
			t.Fatalf("after max_items 2: %s", got.Inner)
		}
		// Open now: bob reads it.
		bob.ok("get", "alice@localhost", items(node, ""))
		a.ok("set", "", owner("<configure node='"+node+"'><x xmlns='jabber:x:data' type='cancel'/></configure>"))
		a.fails("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='"+node+"'", "pubsub#max_items", "257")), "not-acceptable", "")
		a.fails("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='"+node+"'", "pubsub#frobnicate", "1")), "not-acceptable", "")
		a.fails("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='urn:none'", "pubsub#max_items", "2")), "item-not-found", "")
		a.fails("get", "", owner("<configure node='urn:none'/>"), "item-not-found", "")
		bob.fails("get", "alice@localhost", owner("<configure node='"+node+"'/>"), "forbidden", "")
		bob.fails("set", "alice@localhost", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='"+node+"'", "pubsub#access_model", "open")), "forbidden", "")
		bob.fails("set", "alice@localhost", publish(node, "x", "<x xmlns='urn:example'/>"), "forbidden", "")
		bob.fails("set", "alice@localhost", owner("<delete node='"+node+"'/>"), "forbidden", "")

		// Explicit create with configure.
		a.ok("set", "", "<pubsub xmlns='"+nsPub+"'><create node='urn:example:made'/>"+
			options("http://jabber.org/protocol/pubsub#node_config", "configure", "pubsub#access_model", "whitelist")+"</pubsub>")
		a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><create node='urn:example:made'/></pubsub>", "conflict", "")

		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		a = login(t, srv, "alice", "a")
		if c := a.ok("get", "", owner("<configure node='urn:example:made'/>")); !c.Contains("<value>whitelist</value></field>") {
			t.Fatalf("created node's config after restart: %s", c.Inner)
		}
		if c := a.ok("get", "", owner("<configure node='"+node+"'/>")); !c.Contains("<value>Example</value>") {
			t.Fatalf("config after restart: %s", c.Inner)
		}
	})
}

// TestLimits: nodes per account (not-allowed/max-nodes-exceeded), items per
// node (max_items above it is not-acceptable; "max" keeps that many) and
// payload size (not-acceptable/payload-too-big), after a restart too.
func TestLimits(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		limits := func(c *config.Config) {
			c.PEP.MaxNodesPerAccount = 2
			c.PEP.MaxItemsPerNode = 3
			c.PEP.MaxPayloadBytes = 1024
		}
		srv := xmpptest.Start(t, append(opts, limits)...)
		addUsers(t, srv, "alice")
		a := login(t, srv, "alice", "a")
		a.ok("set", "", publish("urn:example:1", "1", "<x xmlns='urn:example'/>"))
		a.ok("set", "", publish("urn:example:2", "1", "<x xmlns='urn:example'/>", "pubsub#max_items", "max"))
		e := a.fails("set", "", publish("urn:example:3", "1", "<x xmlns='urn:example'/>"), "not-allowed", "max-nodes-exceeded")
		if !e.Contains("type='cancel'") {
			t.Fatalf("max nodes: %s", e.Raw)
		}
		a.fails("set", "", "<pubsub xmlns='"+nsPub+"'><create node='urn:example:3'/></pubsub>", "not-allowed", "max-nodes-exceeded")
		a.fails("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='urn:example:1'", "pubsub#max_items", "4")), "not-acceptable", "")
		for _, id := range []string{"a", "b", "c", "d"} {
			a.ok("set", "", publish("urn:example:2", id, "<x xmlns='urn:example'/>"))
		}
		if got := a.ok("get", "", items("urn:example:2", "")); got.Contains("id='1'") || got.Contains("id='a'") || strings.Count(got.Inner, "<item ") != 3 {
			t.Fatalf("max is 3: %s", got.Inner)
		}
		big := "<x xmlns='urn:example'>" + strings.Repeat("A", 1024) + "</x>"
		a.fails("set", "", publish("urn:example:1", "2", big), "not-acceptable", "payload-too-big")
		ok := "<x xmlns='urn:example'>" + strings.Repeat("A", 1024-len("<x xmlns='urn:example'></x>")) + "</x>"
		a.ok("set", "", publish("urn:example:1", "2", ok))
		// Deleting a node makes room for another.
		a.ok("set", "", owner("<delete node='urn:example:1'/>"))
		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		a = login(t, srv, "alice", "a")
		a.ok("set", "", publish("urn:example:3", "1", "<x xmlns='urn:example'/>"))
		a.fails("set", "", publish("urn:example:4", "1", "<x xmlns='urn:example'/>"), "not-allowed", "max-nodes-exceeded")
	})
}
