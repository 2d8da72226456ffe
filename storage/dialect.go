package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything that differs between PostgreSQL and SQLite. Code
// outside dialectFor never asks which engine it runs on; it uses these fields.
//
// Placeholders are not among the differences: both engines bind $N to the
// N-th argument (modernc.org/sqlite treats "$1" as a parameter named by its
// ordinal; TestPlaceholders pins this), so query text is shared verbatim.
type dialect struct {
	// name is the driver name given to Open.
	name string

	// open connects to dsn, configures the pool and checks the database
	// answers within ctx.
	open func(ctx context.Context, dsn string) (*sql.DB, error)

	// schema rewrites the engine-neutral tokens of migration files.
	schema *strings.Replacer

	// lockMigrations is executed first in every migration transaction so that
	// two processes migrating the same database take turns. Empty when the
	// transaction's BEGIN already holds the database's write lock.
	lockMigrations string

	// tableExists is a query with one parameter, a table name, that returns
	// a row when that table exists and none otherwise.
	tableExists string

	// isUniqueViolation reports whether err is a PRIMARY KEY or UNIQUE
	// constraint violation.
	isUniqueViolation func(error) bool
}

// migrationLockKey is the pg_advisory_xact_lock key that serialises
// migrations. Any fixed value works as long as nothing else in the database
// uses it; this one is "xmppd" in ASCII.
const migrationLockKey = 0x786d707064

// dialectFor returns the dialect of the named driver. It is the one function
// that knows how the engines differ.
func dialectFor(driver string) (dialect, error) {
	switch driver {
	case DriverSQLite:
		return dialect{
			name: DriverSQLite,
			open: openSQLite,
			schema: strings.NewReplacer(
				"{{BLOB}}", "BLOB",
				// AUTOINCREMENT: ids are never reused, even after the
				// highest row is deleted, so they order rows by insertion.
				"{{AUTOINC}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
				// The rowid itself: rows are stored in its order, and
				// it needs no index of its own.
				"{{ROWID_INT64}}", "INTEGER PRIMARY KEY",
			),
			// Every SQLite transaction here begins IMMEDIATE (see
			// sqliteParams), which already excludes other writers.
			lockMigrations: "",
			tableExists:    `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1`,
			isUniqueViolation: func(err error) bool {
				var se *sqlite.Error
				if !errors.As(err, &se) {
					return false
				}
				// Extended result codes are on in modernc.org/sqlite, so
				// the kind of constraint is visible.
				c := se.Code()
				return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
			},
		}, nil
	case DriverPostgres:
		return dialect{
			name: DriverPostgres,
			open: openPostgres,
			schema: strings.NewReplacer(
				"{{BLOB}}", "BYTEA",
				"{{AUTOINC}}", "BIGSERIAL PRIMARY KEY",
				// A heap is in insertion order anyway; a key would be
				// one more index per row (see 0008_archive.sql).
				"{{ROWID_INT64}}", "BIGINT NOT NULL",
			),
			// Transaction-scoped, so it is released by COMMIT or ROLLBACK
			// and cannot leak when a process dies mid-migration.
			lockMigrations: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
			tableExists:    `SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1`,
			isUniqueViolation: func(err error) bool {
				return pq.As(err, pqerror.UniqueViolation) != nil
			},
		}, nil
	default:
		return dialect{}, fmt.Errorf("storage: unknown driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}
}
