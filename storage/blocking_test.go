package storage_test

import (
	"slices"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestBlocklists blocks, lists, unblocks and cascades block lists, on
// every engine.
func TestBlocklists(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		b := db.Blocklists()
		list := func(user string) []string {
			t.Helper()
			l, err := b.List(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		if l := list(alice); len(l) != 0 {
			t.Fatalf("fresh block list = %q", l)
		}
		if err := b.Block(ctx, alice, []string{"mallory@localhost", "spam.example", "eve@localhost/x"}); err != nil {
			t.Fatal(err)
		}
		// A JID already blocked is no error.
		if err := b.Block(ctx, alice, []string{"spam.example", "z@localhost"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Block(ctx, bob, []string{"alice@localhost"}); err != nil {
			t.Fatal(err)
		}
		want := []string{"eve@localhost/x", "mallory@localhost", "spam.example", "z@localhost"}
		if l := list(alice); !slices.Equal(l, want) {
			t.Fatalf("alice's list = %q, want %q", l, want)
		}
		owners, err := b.Owners(ctx)
		slices.Sort(owners)
		if err != nil || !slices.Equal(owners, []string{alice, bob}) {
			t.Fatalf("Owners = %q, %v", owners, err)
		}
		if err := b.Unblock(ctx, alice, []string{"spam.example", "never@localhost"}); err != nil {
			t.Fatal(err)
		}
		want = []string{"eve@localhost/x", "mallory@localhost", "z@localhost"}
		if l := list(alice); !slices.Equal(l, want) {
			t.Fatalf("after unblock alice's list = %q, want %q", l, want)
		}
		if err := b.Unblock(ctx, alice, nil); err != nil {
			t.Fatal(err)
		}
		if l := list(alice); len(l) != 0 {
			t.Fatalf("after unblock all = %q", l)
		}
		if l := list(bob); len(l) != 1 {
			t.Fatalf("unblock all of alice changed bob's list: %q", l)
		}
		// An account's rows go with it.
		if err := db.Accounts().Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if l := list(bob); len(l) != 0 {
			t.Fatalf("deleted account's list = %q", l)
		}
		// Blocking for an account that does not exist fails (the key).
		if err := b.Block(ctx, "nobody@localhost", []string{"x@localhost"}); err == nil {
			t.Fatal("block for a missing account succeeded")
		}
	})
}
