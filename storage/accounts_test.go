package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

func cred(mech string, seed byte) storage.Credential {
	return storage.Credential{
		Mechanism:  mech,
		Salt:       bytes.Repeat([]byte{seed}, 16),
		Iterations: 4096 + int(seed),
		StoredKey:  bytes.Repeat([]byte{seed + 1}, 32),
		ServerKey:  bytes.Repeat([]byte{seed + 2}, 32),
	}
}

// TestAccounts runs one sequence of repository operations, unchanged, on
// every engine. Steps share the database and run in order.
func TestAccounts(t *testing.T) {
	created := time.UnixMilli(1_700_000_000_123).UTC()
	alice := storage.Account{
		JID:         "alice@localhost",
		Credentials: []storage.Credential{cred("SCRAM-SHA-1", 1), cred("SCRAM-SHA-256", 2)},
		CreatedAt:   created,
	}
	bob := storage.Account{JID: "bob@localhost", CreatedAt: created.Add(time.Second)}
	// Sorted before alice by bytes ('A' < 'a') but not by most collations:
	// List must agree on both engines.
	zed := storage.Account{JID: "Zed@localhost", CreatedAt: created}

	type step struct {
		name string
		run  func(ctx context.Context, a *storage.Accounts) error
	}
	wantErr := func(err, want error) error {
		if !errors.Is(err, want) {
			return fmt.Errorf("err = %v, want %v", err, want)
		}
		return nil
	}
	wantAccount := func(a *storage.Accounts, ctx context.Context, want storage.Account) error {
		got, err := a.Get(ctx, want.JID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("Get(%s) =\n%+v\nwant\n%+v", want.JID, got, want)
		}
		return nil
	}
	steps := []step{
		{"get missing", func(ctx context.Context, a *storage.Accounts) error {
			_, err := a.Get(ctx, alice.JID)
			return wantErr(err, storage.ErrNotFound)
		}},
		{"exists missing", func(ctx context.Context, a *storage.Accounts) error {
			if ok, err := a.Exists(ctx, alice.JID); err != nil || ok {
				return fmt.Errorf("Exists = %v, %v; want false, nil", ok, err)
			}
			return nil
		}},
		{"list empty", func(ctx context.Context, a *storage.Accounts) error {
			l, err := a.List(ctx)
			if err != nil || len(l) != 0 {
				return fmt.Errorf("List = %v, %v; want empty", l, err)
			}
			return nil
		}},
		{"create alice", func(ctx context.Context, a *storage.Accounts) error {
			return a.Create(ctx, alice)
		}},
		{"get alice", func(ctx context.Context, a *storage.Accounts) error {
			return wantAccount(a, ctx, alice)
		}},
		{"credential of alice per mechanism", func(ctx context.Context, a *storage.Accounts) error {
			for _, want := range alice.Credentials {
				got, err := a.Credential(ctx, alice.JID, want.Mechanism)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, want) {
					return fmt.Errorf("Credential(%s, %s) =\n%+v\nwant\n%+v", alice.JID, want.Mechanism, got, want)
				}
			}
			return nil
		}},
		{"credential of a missing account or mechanism", func(ctx context.Context, a *storage.Accounts) error {
			if _, err := a.Credential(ctx, "nobody@localhost", "SCRAM-SHA-1"); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("missing account: err = %v, want ErrNotFound", err)
			}
			_, err := a.Credential(ctx, alice.JID, "SCRAM-SHA-512")
			return wantErr(err, storage.ErrNotFound)
		}},
		{"exists alice", func(ctx context.Context, a *storage.Accounts) error {
			if ok, err := a.Exists(ctx, alice.JID); err != nil || !ok {
				return fmt.Errorf("Exists = %v, %v; want true, nil", ok, err)
			}
			return nil
		}},
		{"create alice again", func(ctx context.Context, a *storage.Accounts) error {
			again := alice
			again.Credentials = []storage.Credential{cred("SCRAM-SHA-256", 9)}
			return wantErr(a.Create(ctx, again), storage.ErrExists)
		}},
		{"duplicate left alice unchanged", func(ctx context.Context, a *storage.Accounts) error {
			return wantAccount(a, ctx, alice)
		}},
		{"create duplicate mechanism refused", func(ctx context.Context, a *storage.Accounts) error {
			err := a.Create(ctx, storage.Account{JID: "carol@localhost",
				Credentials: []storage.Credential{cred("SCRAM-SHA-1", 1), cred("SCRAM-SHA-1", 2)}})
			if err == nil || errors.Is(err, storage.ErrExists) {
				return fmt.Errorf("err = %v, want a validation error", err)
			}
			if ok, _ := a.Exists(ctx, "carol@localhost"); ok {
				return errors.New("carol was created")
			}
			return nil
		}},
		{"create bob without credentials", func(ctx context.Context, a *storage.Accounts) error {
			return a.Create(ctx, bob)
		}},
		{"get bob", func(ctx context.Context, a *storage.Accounts) error {
			return wantAccount(a, ctx, bob)
		}},
		{"create zed", func(ctx context.Context, a *storage.Accounts) error {
			return a.Create(ctx, zed)
		}},
		{"list sorted by bytes without credentials", func(ctx context.Context, a *storage.Accounts) error {
			l, err := a.List(ctx)
			if err != nil {
				return err
			}
			want := []storage.Account{
				{JID: zed.JID, CreatedAt: zed.CreatedAt},
				{JID: alice.JID, CreatedAt: alice.CreatedAt},
				{JID: bob.JID, CreatedAt: bob.CreatedAt},
			}
			if !reflect.DeepEqual(l, want) {
				return fmt.Errorf("List =\n%+v\nwant\n%+v", l, want)
			}
			return nil
		}},
		{"set credentials replaces all", func(ctx context.Context, a *storage.Accounts) error {
			creds := []storage.Credential{cred("SCRAM-SHA-256", 7)}
			if err := a.SetCredentials(ctx, alice.JID, creds); err != nil {
				return err
			}
			want := alice
			want.Credentials = creds
			return wantAccount(a, ctx, want)
		}},
		{"credential after set credentials", func(ctx context.Context, a *storage.Accounts) error {
			got, err := a.Credential(ctx, alice.JID, "SCRAM-SHA-256")
			if err != nil {
				return err
			}
			if want := cred("SCRAM-SHA-256", 7); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("Credential = %+v, want %+v", got, want)
			}
			_, err = a.Credential(ctx, alice.JID, "SCRAM-SHA-1") // replaced: gone
			return wantErr(err, storage.ErrNotFound)
		}},
		{"set credentials to none", func(ctx context.Context, a *storage.Accounts) error {
			if err := a.SetCredentials(ctx, bob.JID, nil); err != nil {
				return err
			}
			return wantAccount(a, ctx, bob)
		}},
		{"set credentials of missing", func(ctx context.Context, a *storage.Accounts) error {
			return wantErr(a.SetCredentials(ctx, "nobody@localhost", []storage.Credential{cred("SCRAM-SHA-1", 1)}), storage.ErrNotFound)
		}},
		{"delete alice", func(ctx context.Context, a *storage.Accounts) error {
			return a.Delete(ctx, alice.JID)
		}},
		{"get deleted", func(ctx context.Context, a *storage.Accounts) error {
			_, err := a.Get(ctx, alice.JID)
			return wantErr(err, storage.ErrNotFound)
		}},
		{"no credential after delete", func(ctx context.Context, a *storage.Accounts) error {
			_, err := a.Credential(ctx, alice.JID, "SCRAM-SHA-256")
			return wantErr(err, storage.ErrNotFound)
		}},
		{"delete deleted", func(ctx context.Context, a *storage.Accounts) error {
			return wantErr(a.Delete(ctx, alice.JID), storage.ErrNotFound)
		}},
		{"recreate alice gets no old credentials", func(ctx context.Context, a *storage.Accounts) error {
			fresh := storage.Account{JID: alice.JID, CreatedAt: created}
			if err := a.Create(ctx, fresh); err != nil {
				return err
			}
			return wantAccount(a, ctx, fresh)
		}},
		{"create fills in CreatedAt", func(ctx context.Context, a *storage.Accounts) error {
			before := time.Now().Truncate(time.Millisecond)
			if err := a.Create(ctx, storage.Account{JID: "dave@localhost"}); err != nil {
				return err
			}
			got, err := a.Get(ctx, "dave@localhost")
			if err != nil {
				return err
			}
			if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) {
				return fmt.Errorf("CreatedAt = %v, want about %v", got.CreatedAt, before)
			}
			return nil
		}},
		{"empty JID refused", func(ctx context.Context, a *storage.Accounts) error {
			if err := a.Create(ctx, storage.Account{}); err == nil {
				return errors.New("Create with empty JID succeeded")
			}
			return nil
		}},
	}

	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		a := db.Accounts()
		for i, s := range steps {
			if err := s.run(t.Context(), a); err != nil {
				t.Fatalf("step %d (%s): %v", i, s.name, err)
			}
		}
	})
}

// TestDeleteCascades checks at the SQL level that deleting an account
// removes its credentials, which on SQLite needs foreign_keys on every
// pooled connection.
func TestDeleteCascades(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		a := db.Accounts()
		for i := range 5 { // several, so that more than one pooled connection is likely used
			jid := fmt.Sprintf("u%d@localhost", i)
			if err := a.Create(ctx, storage.Account{JID: jid,
				Credentials: []storage.Credential{cred("SCRAM-SHA-1", 1), cred("SCRAM-SHA-256", 2)}}); err != nil {
				t.Fatal(err)
			}
			if err := a.Delete(ctx, jid); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM account_credentials`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d credential rows left after deleting every account", n)
		}
		// And the foreign key refuses orphans outright.
		_, err := db.SQL().ExecContext(ctx, `INSERT INTO account_credentials
			(jid, mechanism, salt, iterations, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6)`,
			"ghost@localhost", "SCRAM-SHA-1", []byte{1}, 1, []byte{1}, []byte{1})
		if err == nil {
			t.Error("credential for a missing account was accepted; foreign keys are off")
		}
	})
}

// TestConcurrentCreateSQLite has 20 goroutines create accounts at once on
// one SQLite file: WAL, BEGIN IMMEDIATE and the busy timeout must let every
// one of them through instead of failing with SQLITE_BUSY.
func TestConcurrentCreateSQLite(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLite(t))
	a := db.Accounts()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			jid := fmt.Sprintf("user%02d@localhost", i)
			err := a.Create(t.Context(), storage.Account{JID: jid,
				Credentials: []storage.Credential{cred("SCRAM-SHA-1", byte(i)), cred("SCRAM-SHA-256", byte(i))}})
			if err == nil {
				// A read right after, on whichever connection, sees it.
				_, err = a.Get(t.Context(), jid)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	l, err := a.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != n {
		t.Errorf("List has %d accounts, want %d", len(l), n)
	}
}

// TestConcurrentCreateSameJID races Creates of one JID: exactly one wins and
// the others get ErrExists, on both engines.
func TestConcurrentCreateSameJID(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		a := db.Accounts()
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- a.Create(t.Context(), storage.Account{JID: "race@localhost",
					Credentials: []storage.Credential{cred("SCRAM-SHA-256", byte(i))}})
			})
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d Creates succeeded, want 1", ok)
		}
	})
}

// TestReopenSQLite closes the database and opens the same file again.
func TestReopenSQLite(t *testing.T) {
	e := storagetest.SQLite(t)
	ctx := t.Context()
	want := storage.Account{JID: "alice@localhost", CreatedAt: time.UnixMilli(1234).UTC(),
		Credentials: []storage.Credential{cred("SCRAM-SHA-256", 3)}}

	db, err := storage.Open(ctx, e.Driver, e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Accounts().Create(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = storage.Open(ctx, e.Driver, e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate after reopen = %v, %v; want nothing applied", applied, err)
	}
	got, err := db.Accounts().Get(ctx, want.JID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen Get = %+v, want %+v", got, want)
	}
}
