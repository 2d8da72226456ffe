package storage_test

import (
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestLastActivity records, overwrites, reads and cascades last logouts,
// on every engine.
func TestLastActivity(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		l := db.LastActivity()
		get := func(user string) (time.Time, string) {
			t.Helper()
			at, status, err := l.Get(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			return at, status
		}
		if at, status := get(alice); !at.IsZero() || status != "" {
			t.Fatalf("never logged out: %v %q", at, status)
		}
		t1 := time.UnixMilli(1_700_000_000_123)
		if err := l.Record(ctx, alice, t1, "Heading Home ☂"); err != nil {
			t.Fatal(err)
		}
		if at, status := get(alice); !at.Equal(t1) || status != "Heading Home ☂" {
			t.Fatalf("after record: %v %q", at, status)
		}
		// The next logout replaces the row.
		t2 := t1.Add(time.Hour)
		if err := l.Record(ctx, alice, t2, ""); err != nil {
			t.Fatal(err)
		}
		if at, status := get(alice); !at.Equal(t2) || status != "" {
			t.Fatalf("after second record: %v %q", at, status)
		}
		if at, _ := get(bob); !at.IsZero() {
			t.Fatalf("bob has %v", at)
		}
		// An account deleted meanwhile is skipped, not an error.
		if err := l.Record(ctx, "nobody@localhost", t1, "x"); err != nil {
			t.Fatalf("record for a missing account: %v", err)
		}
		if at, _ := get("nobody@localhost"); !at.IsZero() {
			t.Fatalf("missing account got a row: %v", at)
		}
		// An account's row goes with it.
		if err := db.Accounts().Delete(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if at, _ := get(alice); !at.IsZero() {
			t.Fatalf("deleted account's row: %v", at)
		}
	})
}
