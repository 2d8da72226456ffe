package storage_test

import (
	"errors"
	"reflect"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestSharedGroups puts, changes, reads and deletes shared roster groups
// on every engine; every change moves the version, and a deleted account
// leaves its groups.
func TestSharedGroups(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob, carol = "alice@localhost", "bob@localhost", "carol@localhost"
		for _, j := range []string{alice, bob, carol} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		g := db.SharedGroups()
		version := func() int64 {
			t.Helper()
			v, err := g.Version(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		v0 := version()
		staff := storage.SharedGroup{Name: "staff", DisplayName: "Staff", Description: "everyone employed", ShowTo: "everybody", Members: []string{alice, bob}}
		sales := storage.SharedGroup{Name: "sales", DisplayName: "Sales team", ShowTo: "groups", ShowToGroups: []string{"staff", "board"}, Members: []string{carol}}
		for _, sg := range []storage.SharedGroup{staff, sales} {
			if err := g.Put(ctx, sg); err != nil {
				t.Fatal(err)
			}
		}
		if v := version(); v <= v0 {
			t.Fatalf("version %d after puts, was %d", v, v0)
		}
		all, v, err := g.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []storage.SharedGroup{sales, staff}; !reflect.DeepEqual(all, want) || v != version() {
			t.Fatalf("All = %+v at %d\nwant %+v at %d", all, v, want, version())
		}
		if err := g.Put(ctx, storage.SharedGroup{Name: "x", DisplayName: "X", ShowTo: "members", Members: []string{"nobody@localhost"}}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a member without an account: %v, want ErrNotFound", err)
		}
		if _, ok, _ := g.Get(ctx, "x"); ok {
			t.Fatal("the refused group was written")
		}
		if err := g.Put(ctx, storage.SharedGroup{Name: "y", DisplayName: "Y", ShowTo: "someone"}); err == nil {
			t.Fatal("show_to someone accepted")
		}
		before := version()
		if err := g.AddMembers(ctx, "sales", []string{bob, carol}); err != nil {
			t.Fatal(err)
		}
		if err := g.RemoveMembers(ctx, "staff", []string{alice}); err != nil {
			t.Fatal(err)
		}
		if err := g.AddMembers(ctx, "nosuch", []string{bob}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("add to a missing group: %v", err)
		}
		if v := version(); v != before+2 {
			t.Fatalf("version %d after two changes from %d", v, before)
		}
		got, _, _ := g.Get(ctx, "sales")
		if !reflect.DeepEqual(got.Members, []string{bob, carol}) {
			t.Fatalf("sales members %v", got.Members)
		}
		before = version()
		if err := db.Accounts().Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		got, _, _ = g.Get(ctx, "sales")
		if !reflect.DeepEqual(got.Members, []string{carol}) || version() == before {
			t.Fatalf("after deleting bob: sales members %v, version %d (was %d)", got.Members, version(), before)
		}
		before = version()
		if err := db.Accounts().Delete(ctx, alice); err != nil { // in no group now
			t.Fatal(err)
		}
		if version() != before {
			t.Fatal("deleting an account in no group moved the version")
		}
		if err := g.Delete(ctx, "staff"); err != nil {
			t.Fatal(err)
		}
		if err := g.Delete(ctx, "staff"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		all, _, _ = g.All(ctx)
		if len(all) != 1 || all[0].Name != "sales" {
			t.Fatalf("after delete: %+v", all)
		}
	})
}
