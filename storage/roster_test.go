package storage_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestRosters runs the roster repository on both engines: versions grow
// only with visible changes, hidden pending requests stay out of the
// roster, and deleting the account deletes its roster.
func TestRosters(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if err := db.Accounts().Create(ctx, storage.Account{JID: "alice@localhost"}); err != nil {
			t.Fatal(err)
		}
		r := db.Rosters()
		const u = "alice@localhost"
		if v, err := r.Version(ctx, u); err != nil || v != 0 {
			t.Fatalf("version of a new roster = %d, %v", v, err)
		}
		v1, err := r.Put(ctx, u, storage.RosterItem{Contact: "bob@localhost", Name: "Bob", Groups: []string{"A", "B ✓"}, Subscription: "to", Visible: true}, true)
		if err != nil || v1 != 1 {
			t.Fatalf("put: %d, %v", v1, err)
		}
		// A hidden pending-in request does not change the version.
		v2, err := r.Put(ctx, u, storage.RosterItem{Contact: "carol@localhost", PendingIn: true, Request: "<presence type='subscribe'/>"}, true)
		if err != nil || v2 != v1 {
			t.Fatalf("hidden put: %d, %v (version was %d)", v2, err, v1)
		}
		items, ver, err := r.Items(ctx, u)
		if err != nil || ver != v1 || len(items) != 1 {
			t.Fatalf("items = %+v, ver %d, %v", items, ver, err)
		}
		got := items[0]
		if got.Contact != "bob@localhost" || got.Name != "Bob" || !slices.Equal(got.Groups, []string{"A", "B ✓"}) || got.Subscription != "to" || !got.Visible {
			t.Fatalf("item = %+v", got)
		}
		if p, err := r.PendingIn(ctx, u); err != nil || len(p) != 1 || p[0].Request == "" {
			t.Fatalf("pending = %+v, %v", p, err)
		}
		all, err := r.All(ctx, u)
		if err != nil || len(all) != 2 || all[0].Contact != "bob@localhost" || !all[0].Visible ||
			all[1].Contact != "carol@localhost" || all[1].Visible || !all[1].PendingIn || all[1].Request == "" {
			t.Fatalf("all rows = %+v, %v; want bob (visible) and carol (hidden, pending)", all, err)
		}
		// A change the user cannot see keeps the version.
		if v, err := r.Put(ctx, u, storage.RosterItem{Contact: "bob@localhost", Name: "Bob", Groups: []string{"A", "B ✓"}, Subscription: "to", Visible: true, PendingIn: true}, false); err != nil || v != v1 {
			t.Fatalf("put without bump: %d, %v", v, err)
		}
		if n, err := r.Count(ctx, u); err != nil || n != 2 {
			t.Fatalf("count = %d, %v", n, err)
		}
		v3, err := r.Delete(ctx, u, "bob@localhost")
		if err != nil || v3 != v1+1 {
			t.Fatalf("delete: %d, %v", v3, err)
		}
		if v4, err := r.Delete(ctx, u, "nobody@localhost"); err != nil || v4 != v3 {
			t.Fatalf("delete of an absent item: %d, %v", v4, err)
		}
		if _, ok, err := r.Get(ctx, u, "bob@localhost"); ok || err != nil {
			t.Fatalf("get after delete: %v, %v", ok, err)
		}
		if err := db.Accounts().Delete(ctx, u); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Count(ctx, u); err != nil || n != 0 {
			t.Fatalf("rows left after the account was deleted: %d, %v", n, err)
		}
	})
}

// TestRostersUnsubscribe: every subscription with a deleted account ends,
// in both directions, with pending requests and pre-approvals; the items
// stay, those kept only for its request go, and only the owners whose
// visible item changed get a new version. On every engine.
func TestRostersUnsubscribe(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		r := db.Rosters()
		const alice = "alice@localhost"
		for _, j := range []string{"bob@localhost", "carol@localhost", "dave@localhost", "erin@localhost"} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j}); err != nil {
				t.Fatal(err)
			}
		}
		put := func(owner string, it storage.RosterItem) {
			t.Helper()
			if _, err := r.Put(ctx, owner, it, true); err != nil {
				t.Fatal(err)
			}
		}
		put("bob@localhost", storage.RosterItem{Contact: alice, Name: "Al", Groups: []string{"friends"}, Subscription: "both", Visible: true})
		put("carol@localhost", storage.RosterItem{Contact: alice, Subscription: "none", Ask: true, Approved: true, Visible: true})
		put("dave@localhost", storage.RosterItem{Contact: alice, PendingIn: true, Request: "<presence type='subscribe'/>"})
		put("erin@localhost", storage.RosterItem{Contact: alice, Subscription: "none", Visible: true})
		put("bob@localhost", storage.RosterItem{Contact: "zed@localhost", Subscription: "both", Visible: true})
		vers := map[string]int64{}
		for _, o := range []string{"bob@localhost", "carol@localhost", "dave@localhost", "erin@localhost"} {
			vers[o], _ = r.Version(ctx, o)
		}

		n, err := r.Unsubscribe(ctx, alice)
		if err != nil || n != 2 {
			t.Fatalf("Unsubscribe = %d, %v; want 2 owners (bob, carol)", n, err)
		}
		for owner, want := range map[string]*storage.RosterItem{
			"bob@localhost":   {Contact: alice, Name: "Al", Groups: []string{"friends"}, Subscription: "none", Visible: true},
			"carol@localhost": {Contact: alice, Subscription: "none", Visible: true},
			"dave@localhost":  nil,
			"erin@localhost":  {Contact: alice, Subscription: "none", Visible: true},
		} {
			it, ok, err := r.Get(ctx, owner, alice)
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				if ok {
					t.Errorf("%s still has %+v", owner, it)
				}
				continue
			}
			if !ok || !reflect.DeepEqual(it, *want) {
				t.Errorf("%s's item = %+v (%v), want %+v", owner, it, ok, *want)
			}
		}
		for o, before := range vers {
			v, _ := r.Version(ctx, o)
			if changed := o == "bob@localhost" || o == "carol@localhost"; (v != before) != changed {
				t.Errorf("%s's version %d → %d; want a change: %v", o, before, v, changed)
			}
		}
		if it, _, _ := r.Get(ctx, "bob@localhost", "zed@localhost"); it.Subscription != "both" {
			t.Errorf("bob's item for zed = %+v, want it untouched", it)
		}
	})
}
