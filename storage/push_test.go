package storage_test

import (
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestPush enables, replaces, bounds, disables and cascades push
// registrations (XEP-0357), on every engine.
func TestPush(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		p := db.Push()
		at := time.UnixMilli(1_700_000_000_000)
		enable := func(user, service, node, opts string, max int) []storage.PushRegistration {
			t.Helper()
			at = at.Add(time.Second)
			removed, err := p.Enable(ctx, storage.PushRegistration{Account: user, Service: service, Node: node, Options: opts, Created: at}, max)
			if err != nil {
				t.Fatal(err)
			}
			return removed
		}
		list := func(user string) string {
			t.Helper()
			regs, err := p.List(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			s := ""
			for _, r := range regs {
				if r.Account != user || r.Created.IsZero() {
					t.Fatalf("registration %+v", r)
				}
				s += r.Service + "/" + r.Node + "=" + r.Options + " "
			}
			return s
		}
		if got := list(alice); got != "" {
			t.Fatalf("fresh: %q", got)
		}
		form := "<x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s1</value></field></x>"
		enable(alice, "push.example", "n1", form, 3)
		enable(alice, "push.example", "n2", "", 3)
		enable(bob, "push.example", "n1", "", 3)
		if got, want := list(alice), "push.example/n1="+form+" push.example/n2= "; got != want {
			t.Fatalf("alice: %q, want %q", got, want)
		}
		// Enabling again replaces the options (and makes it the newest).
		enable(alice, "push.example", "n1", "new", 3)
		if got, want := list(alice), "push.example/n2= push.example/n1=new "; got != want {
			t.Fatalf("after enabling again: %q, want %q", got, want)
		}
		// Over the bound, the oldest go.
		enable(alice, "other.example", "a", "", 3)
		removed := enable(alice, "other.example", "b", "", 3)
		if len(removed) != 1 || removed[0].Service != "push.example" || removed[0].Node != "n2" {
			t.Fatalf("removed %+v, want push.example/n2", removed)
		}
		if got, want := list(alice), "push.example/n1=new other.example/a= other.example/b= "; got != want {
			t.Fatalf("after the bound: %q, want %q", got, want)
		}
		owners, err := p.Owners(ctx)
		if err != nil || len(owners) != 2 {
			t.Fatalf("Owners = %q, %v", owners, err)
		}
		// Disable one node, then every node of a service.
		if n, err := p.Disable(ctx, alice, "push.example", "n1"); err != nil || n != 1 {
			t.Fatalf("disable n1: %d, %v", n, err)
		}
		if n, err := p.Disable(ctx, alice, "push.example", "n1"); err != nil || n != 0 {
			t.Fatalf("disable n1 again: %d, %v", n, err)
		}
		if n, err := p.Disable(ctx, alice, "other.example", ""); err != nil || n != 2 {
			t.Fatalf("disable other.example: %d, %v", n, err)
		}
		if got := list(alice); got != "" {
			t.Fatalf("after disabling all: %q", got)
		}
		if got := list(bob); got != "push.example/n1= " {
			t.Fatalf("bob's changed: %q", got)
		}
		// An account's rows go with it; none for a missing account.
		if err := db.Accounts().Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if got := list(bob); got != "" {
			t.Fatalf("deleted account's: %q", got)
		}
		if _, err := p.Enable(ctx, storage.PushRegistration{Account: "nobody@localhost", Service: "s", Node: "n", Created: at}, 3); err == nil {
			t.Fatal("enable for a missing account succeeded")
		}
	})
}
