package storage_test

import (
	"fmt"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestLoginNetworks records, looks up, sweeps and cascades the networks
// accounts logged in from, on every engine.
func TestLoginNetworks(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		l := db.LoginNetworks()
		t0 := time.UnixMilli(1_700_000_000_000).UTC()
		known := func(jid, network string, since time.Time) bool {
			t.Helper()
			ok, err := l.Known(ctx, jid, network, since)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if known(alice, "192.0.2.0/24", time.Time{}) {
			t.Fatal("a network is known before any login")
		}
		err := l.Record(ctx, []storage.Login{
			{JID: alice, Network: "192.0.2.0/24", At: t0},
			{JID: alice, Network: "2001:db8:1:2::/64", At: t0.Add(time.Hour)},
			{JID: bob, Network: "198.51.100.0/24", At: t0},
			{JID: "deleted@localhost", Network: "192.0.2.0/24", At: t0}, // skipped, no error
		})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !known(alice, "192.0.2.0/24", t0):
			t.Error("alice's IPv4 network is not known")
		case !known(alice, "2001:db8:1:2::/64", t0):
			t.Error("alice's IPv6 network is not known")
		case known(alice, "198.51.100.0/24", time.Time{}):
			t.Error("bob's network is known for alice")
		case known(alice, "192.0.2.0/24", t0.Add(time.Millisecond)):
			t.Error("a login older than since counts")
		}
		// More than one statement's worth, with repeats: the latest wins.
		var many []storage.Login
		for i := range 600 {
			many = append(many, storage.Login{JID: bob, Network: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), At: t0})
		}
		many = append(many, storage.Login{JID: bob, Network: "10.0.7.0/24", At: t0.Add(time.Minute)})
		if err := l.Record(ctx, many); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM login_networks WHERE jid = $1 AND network LIKE '10.%'`, bob).Scan(&n); err != nil || n != 600 {
			t.Fatalf("%d of bob's 600 networks recorded (%v)", n, err)
		}
		if !known(bob, "10.0.7.0/24", t0.Add(time.Minute)) || !known(bob, "10.2.87.0/24", t0) {
			t.Error("a network of the large batch is missing or has the wrong time")
		}
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM login_networks WHERE network LIKE '10.%'`); err != nil {
			t.Fatal(err)
		}
		// An older login does not move the time back; a newer one moves it on.
		if err := l.Record(ctx, []storage.Login{{JID: alice, Network: "192.0.2.0/24", At: t0.Add(-time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if !known(alice, "192.0.2.0/24", t0) {
			t.Error("an older login moved the last login back")
		}
		if err := l.Record(ctx, []storage.Login{{JID: alice, Network: "192.0.2.0/24", At: t0.Add(2 * time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if !known(alice, "192.0.2.0/24", t0.Add(2*time.Hour)) {
			t.Error("a newer login did not move the last login on")
		}
		// The sweep forgets what is older than its time, and nothing else.
		if n, err := l.DeleteOlderThan(ctx, t0.Add(90*time.Minute)); err != nil || n != 2 {
			t.Errorf("DeleteOlderThan = %d, %v; want 2 (alice's IPv6, bob's)", n, err)
		}
		if known(bob, "198.51.100.0/24", time.Time{}) || !known(alice, "192.0.2.0/24", time.Time{}) {
			t.Error("the sweep removed the wrong rows")
		}
		// Deleting the account deletes its networks.
		if err := db.Accounts().Delete(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM login_networks`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d login_networks rows after deleting the accounts' owner, %v", n, err)
		}
	})
}
