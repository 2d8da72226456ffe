package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

func TestMigrate(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			ctx := t.Context()
			db, err := storage.Open(ctx, e.Driver, e.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if db.Driver() != e.Driver {
				t.Errorf("Driver() = %q, want %q", db.Driver(), e.Driver)
			}

			if v, err := db.SchemaVersion(ctx); err != nil || v != 0 {
				t.Fatalf("SchemaVersion before Migrate = %d, %v; want 0, nil", v, err)
			}
			start := time.Now().Add(-time.Second)
			applied, err := db.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) == 0 || applied[0] != "0001_accounts" {
				t.Fatalf("first Migrate applied %q, want it to start with 0001_accounts", applied)
			}
			v, err := db.SchemaVersion(ctx)
			if err != nil || v != len(applied) {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(applied))
			}

			again, err := db.Migrate(ctx)
			if err != nil || len(again) != 0 {
				t.Fatalf("second Migrate = %q, %v; want nothing applied", again, err)
			}
			if v2, _ := db.SchemaVersion(ctx); v2 != v {
				t.Fatalf("SchemaVersion after second Migrate = %d, want %d", v2, v)
			}

			var (
				version   int
				name      string
				appliedAt int64
			)
			if err := db.SQL().QueryRowContext(ctx,
				`SELECT version, name, applied_at FROM schema_version WHERE version = 1`).
				Scan(&version, &name, &appliedAt); err != nil {
				t.Fatal(err)
			}
			if name != "accounts" || appliedAt < start.UnixMilli() || appliedAt > time.Now().UnixMilli() {
				t.Errorf("schema_version row 1 = (%d, %q, %d), want (1, accounts, about %d)", version, name, appliedAt, start.UnixMilli())
			}
		})
	}
}

// TestMigrateConcurrently has several pools migrate one fresh database at the
// same time, as several xmppd processes starting together would: every
// migration is applied exactly once and nobody fails.
func TestMigrateConcurrently(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			const n = 4
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				total []string
			)
			for range n {
				wg.Go(func() {
					db, err := storage.Open(t.Context(), e.Driver, e.DSN)
					if err != nil {
						t.Error(err)
						return
					}
					defer db.Close()
					applied, err := db.Migrate(t.Context())
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					total = append(total, applied...)
					mu.Unlock()
				})
			}
			wg.Wait()
			db := storagetest.Open(t, e)
			v, err := db.SchemaVersion(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(total) != v {
				t.Errorf("migrations applied %d times in all (%q), want %d", len(total), total, v)
			}
		})
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		if _, err := db.SQL().ExecContext(ctx,
			`INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
			9999, "from_the_future", 0); err != nil {
			t.Fatal(err)
		}
		_, err := db.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Migrate on a newer schema: err = %v, want one saying it is newer", err)
		}
	})
}

func TestMigrateRefusesRenamedStep(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		if _, err := db.SQL().ExecContext(ctx, `UPDATE schema_version SET name = 'something_else' WHERE version = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Migrate(ctx); err == nil {
			t.Fatal("Migrate accepted a schema_version whose step 1 has another name")
		}
	})
}

// TestPlaceholders pins what lets both engines share query text: $N binds
// the N-th argument, in any order and any number of times.
func TestPlaceholders(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		var a, b, c string
		if err := db.SQL().QueryRowContext(t.Context(),
			`SELECT CAST($2 AS TEXT), CAST($1 AS TEXT), CAST($2 AS TEXT)`, "one", "two").Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
		if a != "two" || b != "one" || c != "two" {
			t.Errorf("SELECT $2, $1, $2 with (one, two) = %s, %s, %s; want two, one, two", a, b, c)
		}
	})
}

// TestSQLitePragmasOnEveryConnection holds several pooled connections at
// once and checks each got the settings, not just the first.
func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLite(t))
	ctx := t.Context()
	want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000", "synchronous": "1", "wal_autocheckpoint": "4000"}
	for i := range 4 {
		conn, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close() // held, so the next Conn is a new connection
		for pragma, w := range want {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(got, w) {
				t.Errorf("connection %d: PRAGMA %s = %q, want %q", i, pragma, got, w)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	cases := []struct {
		name, driver, dsn, want string
	}{
		{"unknown driver", "mysql", "x", `unknown driver "mysql"`},
		{"sqlite memory", storage.DriverSQLite, ":memory:", "not a file path"},
		{"sqlite uri", storage.DriverSQLite, "file:x.db", "not a file path"},
		{"sqlite empty", storage.DriverSQLite, "", "empty database path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := storage.Open(ctx, c.driver, c.dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "storage: ") {
				t.Errorf("err = %q, want it to start with storage: and contain %q", err, c.want)
			}
		})
	}
}

// TestOpenPostgresHidesPassword opens DSNs that fail, in every way we can
// think of, and checks the password never reaches the error text.
func TestOpenPostgresHidesPassword(t *testing.T) {
	const pw = "Sup3rS3cretPw"
	cases := []struct {
		name string
		dsn  string
		want string // must appear in the error
	}{
		// Port 1 on loopback: nothing listens, so the dial is refused at once.
		{"url unreachable", "postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=disable",
			"cannot reach PostgreSQL at 127.0.0.1:1 (database test)"},
		{"keyvalue unreachable", "host=127.0.0.1 port=1 user=postgres password=" + pw + " dbname=test sslmode=disable",
			"cannot reach PostgreSQL at 127.0.0.1:1 (database test)"},
		{"keyvalue quoted unreachable", "host=127.0.0.1 port=1 password='" + pw + " x' dbname=test sslmode=disable",
			"cannot reach PostgreSQL at 127.0.0.1:1 (database test)"},
		{"url password in query", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&password=" + pw,
			"cannot reach PostgreSQL at 127.0.0.1:1 (database test)"},
		{"url bad port", "postgres://postgres:" + pw + "@127.0.0.1:notaport/test", "invalid PostgreSQL DSN"},
		{"url bad escape in password", "postgres://postgres:" + pw + "%zz@127.0.0.1/test", "password is malformed"},
		{"keyvalue unterminated quote", "host=127.0.0.1 password='" + pw, "invalid PostgreSQL DSN"},
		{"keyvalue stray word", "host=127.0.0.1 password=" + pw + " " + pw + "x", "invalid PostgreSQL DSN"},
		{"unknown option", "postgres://postgres:" + pw + "@127.0.0.1:1/test?nosuchoption=1", "PostgreSQL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			db, err := storage.Open(ctx, storage.DriverPostgres, c.dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			for e := error(err); e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), pw[:8]) {
					t.Errorf("error chain contains the password: %q", e.Error())
				}
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("err = %q, want it to contain %q", msg, c.want)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestDependencies enforces ARCHITECTURE.md's arrows: storage is the bottom
// layer and imports no other xmppd package.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"xmppd.dev/xmppd/storage", "xmppd.dev/xmppd/storage/storagetest").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "xmppd.dev/xmppd/") && p != "xmppd.dev/xmppd/storage" && p != "xmppd.dev/xmppd/storage/storagetest" {
			t.Errorf("storage depends on %s", p)
		}
	}
}

// TestPoolKeepsConnections checks that connections opened for a burst of
// concurrent queries stay in the pool afterwards. database/sql's default
// keeps only two idle; the others were closed on release, and the next
// burst paid for opening them again (for SQLite: the file, the schema,
// the pragmas and every prepared statement).
func TestPoolKeepsConnections(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const burst = 8 // SQLite's pool bound; PostgreSQL's is larger
		sqldb := db.SQL()
		for wave := range 2 {
			var conns []*sql.Conn
			for range burst {
				c, err := sqldb.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.PingContext(ctx); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				c.Close()
			}
			st := sqldb.Stats()
			if st.MaxIdleClosed != 0 || st.MaxIdleTimeClosed != 0 {
				t.Fatalf("wave %d: %d connections closed as surplus idle and %d as idle too long, want none", wave, st.MaxIdleClosed, st.MaxIdleTimeClosed)
			}
			if st.Idle < burst {
				t.Fatalf("wave %d: %d idle connections after %d connections in use at once, want all %d kept", wave, st.Idle, burst, burst)
			}
		}
	})
}

// TestLoginQueriesPrepared checks that on PostgreSQL the lookups every login
// makes run as prepared statements, each prepared once per connection
// rather than parsed and planned per query.
func TestLoginQueriesPrepared(t *testing.T) {
	e := storagetest.Postgres(t)
	e.Require(t)
	db := storagetest.Open(t, e)
	ctx := t.Context()
	// One connection, so that pg_prepared_statements (which shows the
	// current session's) sees what the lookups prepared.
	db.SQL().SetMaxOpenConns(1)
	if err := db.Accounts().Create(ctx, storage.Account{JID: "alice@localhost", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := db.Accounts().Get(ctx, "alice@localhost"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Rosters().All(ctx, "alice@localhost"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Offline().List(ctx, "alice@localhost", 0, 100); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.SQL().QueryContext(ctx, `SELECT statement FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join(strings.Fields(s), " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"account_credentials", "roster_items", "offline_messages"} {
		n := 0
		for _, s := range got {
			if strings.Contains(s, table) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d prepared statements on %s after three logins' lookups, want 1; prepared: %q", n, table, got)
		}
	}
}
