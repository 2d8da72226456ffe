// Package storagetest gives tests a fresh, empty database on every engine
// package storage supports, so that a test written once runs against SQLite
// and PostgreSQL alike (STYLE.md rule 10).
//
// SQLite needs nothing: each engine gets a new file under t.TempDir().
// PostgreSQL is reached through the DSN in $XMPPD_TEST_POSTGRES (default
// [DefaultPostgresDSN]); for each call of [Engines] a database
// xmppd_t_<random> is created there and dropped when the test ends. When that
// server cannot be reached, the PostgreSQL subtests are skipped with a message
// saying so, except under CI=true, where a missing PostgreSQL fails the test.
//
// Typical use, in a feature package's tests:
//
//	func TestSetPassword(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T, db *storage.DB) {
//			s := auth.New(db.Accounts(), auth.MinIterations)
//			…
//		})
//	}
//
// Tests of one engine's behaviour use [SQLite] or [Postgres] with [Open].
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
)

// DefaultPostgresDSN is the PostgreSQL server used when XMPPD_TEST_POSTGRES is
// unset: the local one, as the development machines and CI run it.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresEnv names the environment variable holding the DSN of a
// PostgreSQL server where tests may create and drop databases.
const PostgresEnv = "XMPPD_TEST_POSTGRES"

// setupTimeout bounds each administrative step (reaching the server,
// creating or dropping a database), so that a hung server fails the test
// instead of stalling it until the global test timeout.
const setupTimeout = 30 * time.Second

// Engine is one database engine with a fresh, empty, unmigrated database.
type Engine struct {
	// Name is the engine's name, for subtest names: "sqlite" or "postgres".
	Name string
	// Driver and DSN are the arguments for storage.Open.
	Driver, DSN string

	// unavailable, when not empty, says why this engine cannot be used here;
	// DSN is then empty.
	unavailable string
}

// Require skips the test when the engine is not available here (PostgreSQL
// not reachable outside CI). [Open] calls it; a test that uses DSN directly
// must call it first.
func (e Engine) Require(t testing.TB) {
	t.Helper()
	if e.unavailable != "" {
		t.Skip(e.unavailable)
	}
}

// Engines returns every engine, each with a fresh database that is removed
// when t ends. Call it once per set of fresh databases wanted.
func Engines(t testing.TB) []Engine {
	t.Helper()
	return []Engine{SQLite(t), Postgres(t)}
}

// Open opens e's database, migrates it to the current schema, and closes it
// when t ends. It skips t when e is unavailable.
func Open(t testing.TB, e Engine) *storage.DB {
	t.Helper()
	e.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := storage.Open(ctx, e.Driver, e.DSN)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storagetest: %v", err)
		}
	})
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return db
}

// Run runs fn as one subtest per engine, named after the engine, each with
// its own fresh, migrated database.
func Run(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Helper()
	for _, e := range Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, Open(t, e))
		})
	}
}

// SQLite returns the SQLite engine alone, for tests of SQLite-specific
// behaviour. Its DSN names a file that does not exist yet, in a directory
// that does not exist yet either, so that storage.Open's creating them is
// exercised too.
func SQLite(t testing.TB) Engine {
	return Engine{
		Name:   storage.DriverSQLite,
		Driver: storage.DriverSQLite,
		DSN:    filepath.Join(t.TempDir(), "data", "xmppd.db"),
	}
}

// Postgres returns the PostgreSQL engine alone, with a new database on the
// test server that is dropped when t ends. Outside CI, when the server
// cannot be reached, the engine is unavailable (see [Engine.Require]).
func Postgres(t testing.TB) Engine {
	t.Helper()
	e := Engine{Name: storage.DriverPostgres, Driver: storage.DriverPostgres}
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		admin = DefaultPostgresDSN
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := storage.Open(ctx, storage.DriverPostgres, admin)
	if err != nil {
		// storage.Open's error names the server without its password.
		if os.Getenv("CI") == "true" {
			t.Fatalf("storagetest: PostgreSQL is required under CI=true (set %s to a server's DSN): %v", PostgresEnv, err)
		}
		e.unavailable = fmt.Sprintf("storagetest: PostgreSQL unavailable, skipping (set %s to a server's DSN; under CI=true this fails): %v", PostgresEnv, err)
		return e
	}
	defer db.Close()

	name := "xmppd_t_" + randomHex(8)
	// The name is generated here from hex digits, so it needs no quoting.
	if _, err := db.SQL().ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storagetest: create PostgreSQL database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })

	e.DSN, err = withDatabase(admin, name)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return e
}

// dropDatabase removes a test database, first ending any session still
// connected to it (a leaked *sql.DB must not make the drop fail).
func dropDatabase(t testing.TB, admin, name string) {
	t.Helper()
	// Not t.Context(): it is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := storage.Open(ctx, storage.DriverPostgres, admin)
	if err != nil {
		t.Errorf("storagetest: drop PostgreSQL database %s: %v", name, err)
		return
	}
	defer db.Close()

	var version string
	if err := db.SQL().QueryRowContext(ctx, "SHOW server_version_num").Scan(&version); err != nil {
		t.Errorf("storagetest: drop PostgreSQL database %s: %v", name, err)
		return
	}
	stmt := "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"
	if v, _ := strconv.Atoi(version); v < 130000 {
		// WITH (FORCE) is PostgreSQL 13 and later.
		if _, err := db.SQL().ExecContext(ctx,
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
			name); err != nil {
			t.Errorf("storagetest: drop PostgreSQL database %s: %v", name, err)
			return
		}
		stmt = "DROP DATABASE IF EXISTS " + name
	}
	if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
		t.Errorf("storagetest: drop PostgreSQL database %s: %v", name, err)
	}
}

// withDatabase returns the admin DSN pointed at database name instead, in
// either DSN form lib/pq accepts.
func withDatabase(admin, name string) (string, error) {
	if strings.HasPrefix(admin, "postgres://") || strings.HasPrefix(admin, "postgresql://") {
		u, err := url.Parse(admin)
		if err != nil {
			// Only the error's reason: url.Error would quote the password.
			if ue, ok := err.(*url.Error); ok {
				err = ue.Err
			}
			return "", fmt.Errorf("%s is not a valid URL: %v", PostgresEnv, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In key=value form the last occurrence of a key wins.
	return admin + " dbname=" + name, nil
}

// randomHex returns n random bytes in lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
