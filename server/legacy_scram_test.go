package server_test

import (
	"context"
	"testing"

	"mellium.im/sasl"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage"
)

// TestLegacySCRAMSHA1: an account with SCRAM-SHA-1 keys only (as an
// Openfire import leaves it) logs in while such accounts exist, because
// SCRAM-SHA-256, which clients would choose and it cannot answer, is not
// offered; a PLAIN login gives it SCRAM-SHA-256 keys, and with none left
// SCRAM-SHA-256 is offered again, after a restart too.
func TestLegacySCRAMSHA1(t *testing.T) {
	ctx := context.Background()
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "alice-pw")
	old := srv.AddUser(t, "old", "old-pw")
	acct, err := srv.DB().Accounts().Get(ctx, old.String())
	if err != nil {
		t.Fatal(err)
	}
	var sha1 []storage.Credential
	for _, c := range acct.Credentials {
		if c.Mechanism == auth.SCRAMSHA1 {
			sha1 = append(sha1, c)
		}
	}
	if err := srv.DB().Accounts().SetCredentials(ctx, old.String(), sha1); err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config
	srv.Stop(t)

	srv = xmpptest.StartConfig(t, cfg)
	if n := srv.Auth().LegacyAccounts(); n != 1 {
		t.Fatalf("legacy accounts counted at start: %d, want 1", n)
	}
	sha256 := xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256}}
	if _, err := srv.TryLogin(t, alice, "alice-pw", sha256); err == nil {
		t.Fatal("SCRAM-SHA-256 offered while an account has SCRAM-SHA-1 keys only")
	}
	for _, u := range []struct {
		user     string
		password string
	}{{"alice", "alice-pw"}, {"old", "old-pw"}} {
		j := alice
		if u.user == "old" {
			j = old
		}
		// What a client choosing the strongest offered mechanism gets.
		srv.Login(t, j, u.password, xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1}}).Close()
	}
	if _, err := srv.TryLogin(t, old, "wrong", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.Plain}}); err == nil {
		t.Fatal("PLAIN with a wrong password logged in")
	}
	if n := srv.Auth().LegacyAccounts(); n != 1 {
		t.Fatalf("after a failed PLAIN login: %d legacy accounts, want 1", n)
	}
	srv.Login(t, old, "old-pw", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.Plain}}).Close()
	if n := srv.Auth().LegacyAccounts(); n != 0 {
		t.Fatalf("after old's PLAIN login: %d legacy accounts, want 0", n)
	}
	srv.Login(t, old, "old-pw", sha256).Close()
	srv.Stop(t)

	srv = xmpptest.StartConfig(t, cfg)
	srv.Login(t, old, "old-pw", sha256).Close()
	srv.Login(t, alice, "alice-pw", sha256).Close()
}

// TestLegacySCRAMSHA1Off: with legacy_scram_sha1 = "off" SCRAM-SHA-256 is
// offered whatever the accounts, and an account with SCRAM-SHA-1 keys only
// logs in with SCRAM-SHA-1 alone.
func TestLegacySCRAMSHA1Off(t *testing.T) {
	ctx := context.Background()
	srv := xmpptest.Start(t)
	old := srv.AddUser(t, "old", "old-pw")
	acct, err := srv.DB().Accounts().Get(ctx, old.String())
	if err != nil {
		t.Fatal(err)
	}
	var sha1 []storage.Credential
	for _, c := range acct.Credentials {
		if c.Mechanism == auth.SCRAMSHA1 {
			sha1 = append(sha1, c)
		}
	}
	if err := srv.DB().Accounts().SetCredentials(ctx, old.String(), sha1); err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config
	srv.Stop(t)
	cfg.Auth.LegacySCRAMSHA1 = "off"
	srv = xmpptest.StartConfig(t, cfg)
	bob := srv.AddUser(t, "bob", "bob-pw")
	srv.Login(t, bob, "bob-pw", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256}}).Close()
	if _, err := srv.TryLogin(t, old, "old-pw", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256}}); err == nil {
		t.Fatal("an account without SCRAM-SHA-256 keys logged in with SCRAM-SHA-256")
	}
	srv.Login(t, old, "old-pw", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha1}}).Close()
}
