package storage_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestPEP creates, configures, publishes to, reads, retracts, purges and
// deletes PEP nodes, with the node limit and item trimming, and checks that
// an account's nodes and items go with it, on every engine.
func TestPEP(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		p := db.PEP()
		dev := storage.PEPNode{Node: "urn:xmpp:omemo:2:devices", AccessModel: "open", MaxItems: 1, PersistItems: true,
			SendLast: "on_sub_and_presence", NotifyRetract: true, NotifyDelete: true}
		bundles := storage.PEPNode{Node: "urn:xmpp:omemo:2:bundles", AccessModel: "roster", RosterGroups: []string{"Friends", "Family"},
			MaxItems: -1, PersistItems: true, SendLast: "never", Title: "bundles"}
		if err := p.CreateNode(ctx, alice, dev, 2); err != nil {
			t.Fatal(err)
		}
		if err := p.CreateNode(ctx, alice, dev, 2); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create = %v, want ErrExists", err)
		}
		if err := p.CreateNode(ctx, alice, bundles, 2); err != nil {
			t.Fatal(err)
		}
		if err := p.CreateNode(ctx, alice, storage.PEPNode{Node: "third", AccessModel: "presence", SendLast: "never"}, 2); !errors.Is(err, storage.ErrLimit) {
			t.Fatalf("third node with a limit of 2 = %v, want ErrLimit", err)
		}
		if err := p.CreateNode(ctx, "nobody@localhost", dev, 0); err == nil {
			t.Fatal("node for a missing account created")
		}
		nodes, err := p.Nodes(ctx, alice)
		if err != nil || len(nodes) != 2 || nodes[0].Node != bundles.Node || nodes[1].Node != dev.Node {
			t.Fatalf("Nodes = %+v, %v", nodes, err)
		}
		if got := nodes[0]; !slices.Equal(got.RosterGroups, bundles.RosterGroups) || got.MaxItems != -1 || got.Title != "bundles" ||
			got.AccessModel != "roster" || !got.PersistItems || got.SendLast != "never" || got.NotifyRetract {
			t.Fatalf("bundles read back as %+v, want %+v", got, bundles)
		}
		if n, ok, err := p.Node(ctx, alice, dev.Node); err != nil || !ok || n.AccessModel != "open" || !n.NotifyDelete || n.RosterGroups != nil {
			t.Fatalf("Node = %+v, %v, %v", n, ok, err)
		}
		if _, ok, err := p.Node(ctx, bob, dev.Node); err != nil || ok {
			t.Fatalf("bob's node = %v, %v", ok, err)
		}

		pub := func(node, id, payload string, keep int) {
			t.Helper()
			if err := p.Publish(ctx, alice, storage.PEPItem{Node: node, ID: id, Publisher: alice, Payload: []byte(payload)}, keep); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(node string, want []string, sel []string, last int) []storage.PEPItem {
			t.Helper()
			items, err := p.Items(ctx, alice, node, sel, last)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it.ID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("items of %s (%q, last %d) = %q, want %q", node, sel, last, got, want)
			}
			return items
		}
		pub(bundles.Node, "1", "<bundle xmlns='urn:xmpp:omemo:2'>one</bundle>", 3)
		pub(bundles.Node, "2", "<bundle xmlns='urn:xmpp:omemo:2'>two</bundle>", 3)
		pub(bundles.Node, "3", "<bundle xmlns='urn:xmpp:omemo:2'>three</bundle>", 3)
		ids(bundles.Node, []string{"1", "2", "3"}, nil, 0)
		// Publishing under an existing id replaces it and makes it newest.
		pub(bundles.Node, "1", "<bundle xmlns='urn:xmpp:omemo:2'>one again</bundle>", 3)
		items := ids(bundles.Node, []string{"2", "3", "1"}, nil, 0)
		if string(items[2].Payload) != "<bundle xmlns='urn:xmpp:omemo:2'>one again</bundle>" || items[2].Publisher != alice {
			t.Fatalf("replaced item = %+v", items[2])
		}
		// One more than keep drops the oldest.
		pub(bundles.Node, "4", "<bundle xmlns='urn:xmpp:omemo:2'>four</bundle>", 3)
		ids(bundles.Node, []string{"3", "1", "4"}, nil, 0)
		ids(bundles.Node, []string{"1", "4"}, nil, 2)
		ids(bundles.Node, []string{"3", "4"}, []string{"4", "3", "9"}, 0)
		ids(bundles.Node, []string{"4"}, []string{"4", "3"}, 1)
		ids("none", nil, nil, 0)

		pub(dev.Node, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>", 1)
		pub(dev.Node, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/><device id='2'/></devices>", 1)
		ids(dev.Node, []string{"current"}, nil, 0)

		last, err := p.Last(ctx, []string{alice, bob})
		if err != nil || len(last) != 2 {
			t.Fatalf("Last = %+v, %v", last, err)
		}
		slices.SortFunc(last, func(a, b storage.PEPLast) int { return strings.Compare(b.Node.Node, a.Node.Node) })
		if last[0].Owner != alice || last[0].Node.Node != dev.Node || last[0].ItemID != "current" ||
			last[1].Node.Node != bundles.Node || last[1].ItemID != "4" || !slices.Equal(last[1].Node.RosterGroups, bundles.RosterGroups) {
			t.Fatalf("Last = %+v", last)
		}
		payloads, err := p.Payloads(ctx, []int64{last[0].Seq, last[1].Seq, -5})
		if err != nil || len(payloads) != 2 || string(payloads[last[0].Seq]) != "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/><device id='2'/></devices>" {
			t.Fatalf("Payloads = %v, %v", payloads, err)
		}

		// Lowering max_items trims at once.
		bundles.MaxItems = 1
		bundles.AccessModel = "open"
		bundles.RosterGroups = nil
		if err := p.ConfigureNode(ctx, alice, bundles, 1); err != nil {
			t.Fatal(err)
		}
		ids(bundles.Node, []string{"4"}, nil, 0)
		if n, _, _ := p.Node(ctx, alice, bundles.Node); n.AccessModel != "open" || n.RosterGroups != nil || n.MaxItems != 1 {
			t.Fatalf("configured node = %+v", n)
		}
		if err := p.ConfigureNode(ctx, bob, bundles, 1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("configure a missing node = %v", err)
		}

		if ok, err := p.Retract(ctx, alice, bundles.Node, "4"); err != nil || !ok {
			t.Fatalf("Retract = %v, %v", ok, err)
		}
		if ok, err := p.Retract(ctx, alice, bundles.Node, "4"); err != nil || ok {
			t.Fatalf("second Retract = %v, %v", ok, err)
		}
		pub(bundles.Node, "5", "<bundle xmlns='urn:xmpp:omemo:2'/>", 1)
		if err := p.Purge(ctx, alice, bundles.Node); err != nil {
			t.Fatal(err)
		}
		ids(bundles.Node, nil, nil, 0)
		if ok, err := p.DeleteNode(ctx, alice, bundles.Node); err != nil || !ok {
			t.Fatalf("DeleteNode = %v, %v", ok, err)
		}
		if ok, err := p.DeleteNode(ctx, alice, bundles.Node); err != nil || ok {
			t.Fatalf("second DeleteNode = %v, %v", ok, err)
		}

		// An account's nodes and items go with it.
		if err := db.Accounts().Delete(ctx, alice); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM pep_items`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("items left after the account went: %d, %v", n, err)
		}
		if nodes, err := p.Nodes(ctx, alice); err != nil || len(nodes) != 0 {
			t.Fatalf("nodes left after the account went: %+v, %v", nodes, err)
		}
	})
}
