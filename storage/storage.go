package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) when the requested row does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrExists is returned (wrapped) when a row to be created already exists.
var ErrExists = errors.New("storage: already exists")

// Driver names accepted by [Open].
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// DB is an open xmppd database. It is safe for concurrent use; the
// repositories it hands out share its connection pool.
type DB struct {
	sql     *sql.DB // immutable; never nil
	dialect dialect // immutable

	// stmts holds the pool-wide prepared statements of the queries every
	// login makes (see query); nil for SQLite, whose connections keep
	// their own statement cache (sqlite_worker.go).
	stmts *stmtCache

	// archiveConn is SQLite's connection for archive batches (see
	// Archive.Append); nil until the first batch and for PostgreSQL.
	archiveMu   sync.Mutex
	archiveConn *sql.Conn

	// path is SQLite's database file, for the instance lock beside it;
	// "" for PostgreSQL. Immutable.
	path string
	// unlock releases the instance lock (LockInstance); nil when not
	// held. Guarded by lockMu.
	lockMu sync.Mutex
	unlock func()

	// valuesQueries caches the multi-row INSERT texts of imports
	// (valuesQuery), valuesKey → string.
	valuesQueries sync.Map
}

// Open opens the database and checks that it answers before returning.
// driver is [DriverSQLite] or [DriverPostgres].
//
// For SQLite, dsn is a file path; its parent directory is created if missing.
// Driver parameters may follow a '?', as modernc.org/sqlite documents them.
// In-memory databases are refused: each pooled connection would see its own.
//
// For PostgreSQL, dsn is a URL (postgres://user:pass@host:5432/db?sslmode=…)
// or a key=value string (host=… dbname=…) as lib/pq accepts them. No error
// returned by Open contains the password.
//
// Open does not migrate; call [DB.Migrate].
func Open(ctx context.Context, driver, dsn string) (*DB, error) {
	d, err := dialectFor(driver)
	if err != nil {
		return nil, err
	}
	sqldb, err := d.open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	db := &DB{sql: sqldb, dialect: d}
	if driver == DriverPostgres {
		db.stmts = &stmtCache{}
	} else {
		db.path = sqlitePath(dsn)
	}
	return db, nil
}

// Close closes the connection pool.
func (db *DB) Close() error {
	db.archiveMu.Lock()
	if db.archiveConn != nil {
		db.archiveConn.Close()
		db.archiveConn = nil
	}
	db.archiveMu.Unlock()
	if db.stmts != nil {
		db.stmts.close()
	}
	db.releaseInstance()
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Driver returns the engine name, [DriverSQLite] or [DriverPostgres].
func (db *DB) Driver() string { return db.dialect.name }

// SQL returns the underlying pool. It is meant for tests that must look at
// raw rows; production code goes through the typed repositories.
func (db *DB) SQL() *sql.DB { return db.sql }

// toMillis converts t to the portable storage form, Unix milliseconds.
func toMillis(t time.Time) int64 { return t.UnixMilli() }

// fromMillis converts Unix milliseconds back to a UTC time, so that values
// read from either engine compare equal with ==.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// rollback ends a transaction that is being abandoned. Its error is ignored
// on purpose: the caller already returns the error that made it give up, and
// a failed rollback leaves nothing committed.
func rollback(tx *sql.Tx) { _ = tx.Rollback() }
