package auth_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

var _ auth.Store = (*storage.Accounts)(nil)

const (
	alicePassword = "correct horse battery staple"
	domain        = "localhost"
)

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := auth.NormalizeJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestService runs the account lifecycle on every engine.
func TestService(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		s := auth.New(db.Accounts(), auth.MinIterations)
		alice := mustJID(t, "alice@"+domain)
		bob := mustJID(t, "bob@"+domain)

		if err := s.Create(ctx, alice, alicePassword); err != nil {
			t.Fatal(err)
		}

		verify := []struct {
			name     string
			j        jid.JID
			password string
			ok       bool
		}{
			{"right password", alice, alicePassword, true},
			{"wrong password", alice, "correct horse battery stapler", false},
			{"empty password", alice, "", false},
			{"password differs in case", alice, strings.ToUpper(alicePassword), false},
			{"unknown user", bob, alicePassword, false},
			{"full JID", withResource(t, alice, "phone"), alicePassword, false},
			{"zero JID", jid.JID{}, alicePassword, false},
		}
		for _, v := range verify {
			err := s.VerifyPlain(ctx, v.j, v.password)
			switch {
			case v.ok && err != nil:
				t.Errorf("%s: VerifyPlain = %v, want nil", v.name, err)
			case !v.ok && !errors.Is(err, auth.ErrNotAuthorized):
				t.Errorf("%s: VerifyPlain = %v, want ErrNotAuthorized", v.name, err)
			}
		}

		// A duplicate is refused and changes nothing.
		if err := s.Create(ctx, alice, "another password"); !errors.Is(err, auth.ErrUserExists) {
			t.Fatalf("second Create = %v, want ErrUserExists", err)
		}
		if err := s.VerifyPlain(ctx, alice, alicePassword); err != nil {
			t.Errorf("old password after refused duplicate: %v", err)
		}
		if err := s.VerifyPlain(ctx, alice, "another password"); !errors.Is(err, auth.ErrNotAuthorized) {
			t.Errorf("duplicate's password verifies: %v", err)
		}

		// SetPassword changes what verifies.
		if err := s.SetPassword(ctx, alice, "new secret"); err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyPlain(ctx, alice, "new secret"); err != nil {
			t.Errorf("new password: %v", err)
		}
		if err := s.VerifyPlain(ctx, alice, alicePassword); !errors.Is(err, auth.ErrNotAuthorized) {
			t.Errorf("old password after SetPassword: %v, want ErrNotAuthorized", err)
		}
		if err := s.SetPassword(ctx, bob, "x"); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("SetPassword of unknown user = %v, want ErrUnknownUser", err)
		}

		// Refused input.
		if err := s.Create(ctx, bob, ""); !errors.Is(err, auth.ErrInvalidPassword) {
			t.Errorf("Create with empty password = %v, want ErrInvalidPassword", err)
		}
		if err := s.Create(ctx, withResource(t, alice, "r"), "pw"); !errors.Is(err, auth.ErrInvalidJID) {
			t.Errorf("Create with full JID = %v, want ErrInvalidJID", err)
		}
		if err := s.Create(ctx, mustDomainJID(t, domain), "pw"); !errors.Is(err, auth.ErrInvalidJID) {
			t.Errorf("Create with domain JID = %v, want ErrInvalidJID", err)
		}
		if ok, err := s.Exists(ctx, bob); err != nil || ok {
			t.Errorf("refused Creates left bob existing: %v, %v", ok, err)
		}

		// List, Exists, Delete.
		if err := s.Create(ctx, bob, "bob's password"); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range list {
			names = append(names, a.JID)
		}
		if !slices.Equal(names, []string{"alice@localhost", "bob@localhost"}) {
			t.Errorf("List = %q", names)
		}
		if err := s.Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, bob); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("second Delete = %v, want ErrUnknownUser", err)
		}
		if ok, err := s.Exists(ctx, bob); err != nil || ok {
			t.Errorf("Exists after Delete = %v, %v", ok, err)
		}
		if err := s.VerifyPlain(ctx, bob, "bob's password"); !errors.Is(err, auth.ErrNotAuthorized) {
			t.Errorf("VerifyPlain after Delete = %v, want ErrNotAuthorized", err)
		}

		// Credential.
		for _, mech := range []string{auth.SCRAMSHA1, auth.SCRAMSHA256} {
			c, err := s.Credential(ctx, alice, mech)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mechanism != mech || c.Iterations != auth.MinIterations || len(c.Salt) < 16 {
				t.Errorf("Credential(%s) = %s, %d iterations, %d-byte salt", mech, c.Mechanism, c.Iterations, len(c.Salt))
			}
		}
		if _, err := s.Credential(ctx, alice, "SCRAM-SHA-512"); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("Credential for unsupported mechanism = %v, want ErrUnknownUser", err)
		}
		if _, err := s.Credential(ctx, bob, auth.SCRAMSHA256); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("Credential of unknown user = %v, want ErrUnknownUser", err)
		}
	})
}

// TestNoPasswordStored reads every stored row back through SQL and looks for
// the password in any encoding, and for SaltedPassword.
func TestNoPasswordStored(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const password = "Tr0ub4dor&3-unique"
		s := auth.New(db.Accounts(), auth.MinIterations)
		if err := s.Create(ctx, mustJID(t, "alice@"+domain), password); err != nil {
			t.Fatal(err)
		}
		p := []byte(password)
		forbidden := map[string][]byte{
			"plaintext":  p,
			"hex":        []byte(hex.EncodeToString(p)),
			"HEX":        []byte(strings.ToUpper(hex.EncodeToString(p))),
			"base64":     []byte(base64.StdEncoding.EncodeToString(p)),
			"base64 raw": []byte(base64.RawStdEncoding.EncodeToString(p)),
			"base64 url": []byte(base64.RawURLEncoding.EncodeToString(p)),
		}

		var rows [][]any
		for _, table := range []string{"accounts", "account_credentials"} {
			rows = append(rows, rawRows(t, db, table)...)
		}
		for _, row := range rows {
			for _, v := range row {
				b := asBytes(v)
				for name, f := range forbidden {
					if bytes.Contains(b, f) {
						t.Errorf("a stored value contains the password (%s): %q", name, b)
					}
				}
			}
		}

		// Each credential holds RFC 5802's keys, neither of which is
		// SaltedPassword itself.
		hashes := map[string]func() hash.Hash{auth.SCRAMSHA1: sha1.New, auth.SCRAMSHA256: sha256.New}
		seen := 0
		err := forEachCredential(ctx, db, func(mech string, salt []byte, iter int, stored, server []byte) error {
			h, ok := hashes[mech]
			if !ok {
				return fmt.Errorf("unexpected mechanism %q", mech)
			}
			seen++
			salted, err := pbkdf2.Key(h, password, salt, iter, h().Size())
			if err != nil {
				return err
			}
			for name, col := range map[string][]byte{"stored_key": stored, "server_key": server} {
				if bytes.Equal(col, salted) {
					t.Errorf("%s %s equals SaltedPassword", mech, name)
				}
			}
			for _, row := range rows {
				for _, v := range row {
					if bytes.Contains(asBytes(v), salted) {
						t.Errorf("%s: a stored value contains SaltedPassword", mech)
					}
				}
			}
			clientKey := hmacOf(h, salted, "Client Key")
			wantStored := h()
			wantStored.Write(clientKey)
			if !bytes.Equal(stored, wantStored.Sum(nil)) {
				t.Errorf("%s stored_key is not H(HMAC(SaltedPassword, \"Client Key\"))", mech)
			}
			if !bytes.Equal(server, hmacOf(h, salted, "Server Key")) {
				t.Errorf("%s server_key is not HMAC(SaltedPassword, \"Server Key\")", mech)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != 2 {
			t.Errorf("%d credentials stored, want 2 (SCRAM-SHA-1 and SCRAM-SHA-256)", seen)
		}
	})
}

// TestSCRAM runs whole SCRAM conversations in memory: an xdg-go/scram
// client against an xdg-go/scram server whose lookup reads what
// auth.Service stored.
func TestSCRAM(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		s := auth.New(db.Accounts(), auth.MinIterations)
		if err := s.Create(ctx, mustJID(t, "alice@"+domain), alicePassword); err != nil {
			t.Fatal(err)
		}
		lookup := func(mech string) scram.CredentialLookup {
			return func(username string) (scram.StoredCredentials, error) {
				j, err := auth.NormalizeJID(username + "@" + domain)
				if err != nil {
					return scram.StoredCredentials{}, err
				}
				c, err := s.Credential(ctx, j, mech)
				if err != nil {
					return scram.StoredCredentials{}, err
				}
				return scram.StoredCredentials{
					KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
					StoredKey:  c.StoredKey,
					ServerKey:  c.ServerKey,
				}, nil
			}
		}
		cases := []struct {
			mech     string
			hash     scram.HashGeneratorFcn
			user     string
			password string
			ok       bool
		}{
			{auth.SCRAMSHA1, scram.SHA1, "alice", alicePassword, true},
			{auth.SCRAMSHA256, scram.SHA256, "alice", alicePassword, true},
			{auth.SCRAMSHA1, scram.SHA1, "Alice", alicePassword, true}, // normalised by NormalizeJID
			{auth.SCRAMSHA1, scram.SHA1, "alice", "wrong", false},
			{auth.SCRAMSHA256, scram.SHA256, "alice", "wrong", false},
			{auth.SCRAMSHA256, scram.SHA256, "bob", alicePassword, false},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%s/ok=%v", c.mech, c.user, c.ok), func(t *testing.T) {
				server, err := c.hash.NewServer(lookup(c.mech))
				if err != nil {
					t.Fatal(err)
				}
				client, err := c.hash.NewClient(c.user, c.password, "")
				if err != nil {
					t.Fatal(err)
				}
				err = converse(client.NewConversation(), server.NewConversation())
				if c.ok && err != nil {
					t.Errorf("conversation failed: %v", err)
				}
				if !c.ok && err == nil {
					t.Error("conversation succeeded")
				}
			})
		}
	})
}

// converse runs a SCRAM exchange to its end and reports whether both sides
// accepted it.
func converse(client *scram.ClientConversation, server *scram.ServerConversation) error {
	var fromServer string
	for i := 0; i < 4; i++ {
		fromClient, err := client.Step(fromServer)
		if err != nil {
			return fmt.Errorf("client step %d: %w", i, err)
		}
		if client.Done() {
			break
		}
		fromServer, err = server.Step(fromClient)
		if err != nil {
			return fmt.Errorf("server step %d: %w", i, err)
		}
	}
	if !server.Valid() || !client.Valid() {
		return fmt.Errorf("server valid %v, client valid %v", server.Valid(), client.Valid())
	}
	return nil
}

// TestSASLprep checks the password is prepared as RFC 4013 says, so that
// what a client sends through SCRAM or PLAIN matches.
func TestSASLprep(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLite(t))
	ctx := t.Context()
	s := auth.New(db.Accounts(), auth.MinIterations)
	alice := mustJID(t, "alice@"+domain)
	// U+00A0 NO-BREAK SPACE maps to U+0020; U+00AD SOFT HYPHEN maps to nothing.
	if err := s.Create(ctx, alice, "pass\u00a0wo\u00adrd"); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyPlain(ctx, alice, "pass word"); err != nil {
		t.Errorf("SASLprep-equivalent password refused: %v", err)
	}
	// A control character is prohibited; the error must not echo it.
	const bad = "secret\u0007password"
	err := s.Create(ctx, mustJID(t, "bob@"+domain), bad)
	if !errors.Is(err, auth.ErrInvalidPassword) {
		t.Fatalf("Create with a prohibited character = %v, want ErrInvalidPassword", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error quotes the password: %q", err)
	}
}

func TestNewRaisesIterations(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLite(t))
	ctx := t.Context()
	alice := mustJID(t, "alice@"+domain)
	if err := auth.New(db.Accounts(), 1).Create(ctx, alice, "pw"); err != nil {
		t.Fatal(err)
	}
	c, err := auth.New(db.Accounts(), 0).Credential(ctx, alice, auth.SCRAMSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c.Iterations != auth.MinIterations {
		t.Errorf("iterations = %d, want MinIterations (%d)", c.Iterations, auth.MinIterations)
	}
}

// TestVerifyPlainTimesUnknownUserAlike checks that an unknown user costs
// about as much as a wrong password for a known one: the PBKDF2 work is done
// either way. With many iterations PBKDF2 dominates the database lookup, so
// a missing derivation would show as a large factor, not noise.
func TestVerifyPlainTimesUnknownUserAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	db := storagetest.Open(t, storagetest.SQLite(t))
	ctx := t.Context()
	s := auth.New(db.Accounts(), 50_000)
	alice := mustJID(t, "alice@"+domain)
	if err := s.Create(ctx, alice, alicePassword); err != nil {
		t.Fatal(err)
	}
	fastest := func(j jid.JID) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			if err := s.VerifyPlain(ctx, j, "wrong"); !errors.Is(err, auth.ErrNotAuthorized) {
				t.Fatalf("VerifyPlain(%s) = %v, want ErrNotAuthorized", j, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := fastest(alice), fastest(mustJID(t, "nobody@"+domain))
	t.Logf("wrong password: %v, unknown user: %v", known, unknown)
	if unknown < known/3 {
		t.Errorf("unknown user took %v, wrong password %v: the unknown user path skips the derivation", unknown, known)
	}
}

// TestDependencies enforces ARCHITECTURE.md: auth knows storage and nothing
// else of xmppd.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "xmppd.dev/xmppd/auth").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "xmppd.dev/xmppd/") && p != "xmppd.dev/xmppd/auth" && p != "xmppd.dev/xmppd/storage" {
			t.Errorf("auth depends on %s", p)
		}
	}
}

func rawRows(t *testing.T, db *storage.DB, table string) [][]any {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var all [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		all = append(all, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatalf("table %s is empty", table)
	}
	return all
}

func forEachCredential(ctx context.Context, db *storage.DB, fn func(mech string, salt []byte, iter int, stored, server []byte) error) error {
	rows, err := db.SQL().QueryContext(ctx,
		`SELECT mechanism, salt, iterations, stored_key, server_key FROM account_credentials`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			mech                 string
			salt, stored, server []byte
			iter                 int
		)
		if err := rows.Scan(&mech, &salt, &iter, &stored, &server); err != nil {
			return err
		}
		if err := fn(mech, salt, iter, stored, server); err != nil {
			return err
		}
	}
	return rows.Err()
}

func asBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	default:
		return fmt.Append(nil, v)
	}
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func mustDomainJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func withResource(t testing.TB, j jid.JID, r string) jid.JID {
	t.Helper()
	full, err := j.WithResource(r)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// TestLegacyAccounts: accounts without SCRAM-SHA-256 keys are counted on
// both engines, and leave the count when a PLAIN login reveals the
// password (which then gives them every mechanism's keys), when the
// password is set, or when they are deleted.
func TestLegacyAccounts(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		s := auth.New(db.Accounts(), auth.MinIterations)
		if n := s.LegacyAccounts(); n != -1 {
			t.Fatalf("LegacyAccounts before counting: %d, want -1", n)
		}
		var users []jid.JID
		for _, name := range []string{"a", "b", "c", "d"} {
			j := mustJID(t, name+"@"+domain)
			users = append(users, j)
			if err := s.Create(ctx, j, name+"-pw"); err != nil {
				t.Fatal(err)
			}
		}
		for _, j := range users[:3] { // a, b, c lose SCRAM-SHA-256
			c, err := db.Accounts().Credential(ctx, j.String(), auth.SCRAMSHA1)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Accounts().SetCredentials(ctx, j.String(), []storage.Credential{c}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.CountLegacy(ctx); err != nil || n != 3 {
			t.Fatalf("CountLegacy = %d, %v; want 3", n, err)
		}
		if err := s.VerifyPlain(ctx, users[0], "wrong"); err == nil {
			t.Fatal("wrong password verified")
		}
		if err := s.VerifyPlain(ctx, users[0], "a-pw"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Credential(ctx, users[0], auth.SCRAMSHA256); err != nil {
			t.Fatalf("after a PLAIN login, a has no SCRAM-SHA-256 credential: %v", err)
		}
		if err := s.VerifyPlain(ctx, users[0], "a-pw"); err != nil {
			t.Fatalf("a's password after the upgrade: %v", err)
		}
		if err := s.SetPassword(ctx, users[1], "new"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, users[2]); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, users[3]); err != nil { // had both: no change
			t.Fatal(err)
		}
		if n := s.LegacyAccounts(); n != 0 {
			t.Fatalf("LegacyAccounts after the changes: %d, want 0", n)
		}
		if n, err := s.CountLegacy(ctx); err != nil || n != 0 {
			t.Fatalf("CountLegacy from storage = %d, %v; want 0", n, err)
		}
	})
}
