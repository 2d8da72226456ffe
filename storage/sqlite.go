package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeoutMillis is how long a connection waits for another
// connection's write lock before failing with SQLITE_BUSY. Writes here are
// short transactions, so five seconds only runs out when something is wrong.
const sqliteBusyTimeoutMillis = 5000

// sqliteMaxOpenConns bounds the pool. Each modernc.org/sqlite connection
// carries its own page cache and libc state, and SQLite admits one writer at a
// time anyway; more connections than this only queue on the file lock.
const sqliteMaxOpenConns = 8

// sqliteParams are the modernc.org/sqlite DSN parameters applied to every new
// connection of the pool. PRAGMAs are per connection (except journal_mode,
// which is persistent), so setting them once after Open would miss
// connections the pool opens later.
func sqliteParams() url.Values {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMillis))
	// WAL lets readers run while one writer commits.
	q.Add("_pragma", "journal_mode(WAL)")
	// SQLite leaves foreign keys off by default; ON DELETE CASCADE needs them.
	q.Add("_pragma", "foreign_keys(1)")
	// In WAL mode NORMAL is durable across application crashes; only a power
	// loss can roll back the last commits, and the database stays consistent.
	q.Add("_pragma", "synchronous(NORMAL)")
	// Statement journals (a multi-row INSERT that may stop half-way keeps
	// one) and temporary tables in memory, not in temporary files: a
	// batch of the archive otherwise wrote and read a file a page at a
	// time, a sixth of its cost.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Checkpoint the WAL into the database file every 4,000 pages (16 MiB)
	// rather than SQLite's 1,000: a page that several commits change (the
	// archive's index pages) is copied back once per checkpoint, and the
	// archive's batches cost about a third less CPU (docs/performance.md).
	q.Add("_pragma", "wal_autocheckpoint(4000)")
	// After a checkpoint, a WAL grown past this under a burst of writes is
	// cut back, so that the file does not keep its largest size forever.
	q.Add("_pragma", "journal_size_limit(67108864)")
	// BEGIN IMMEDIATE takes the write lock at the start, where the busy
	// timeout applies. A DEFERRED transaction that reads and then writes
	// fails at once with SQLITE_BUSY when another writer got in between,
	// whatever the timeout.
	q.Set("_txlock", "immediate")
	return q
}

// openSQLite opens the SQLite file named by dsn (a path, optionally followed
// by '?' and further driver parameters), creating its directory if needed,
// and verifies that the connection settings took effect.
func openSQLite(ctx context.Context, dsn string) (*sql.DB, error) {
	path, extra, _ := strings.Cut(dsn, "?")
	switch {
	case path == "":
		return nil, fmt.Errorf("storage: sqlite: empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// An in-memory database is private to one connection, so a pool
		// would scatter the data over several databases. "file:" URIs are
		// refused so that the path to create is unambiguous.
		return nil, fmt.Errorf("storage: sqlite: %q is not a file path", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("storage: sqlite: create directory for %s: %w", path, err)
		}
	}

	q := sqliteParams()
	if extra != "" {
		more, err := url.ParseQuery(extra)
		if err != nil {
			return nil, fmt.Errorf("storage: sqlite: parameters of %s: %w", path, err)
		}
		for k, vs := range more {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
	}

	// Connections run their SQLite calls on a goroutine of their own (see
	// sqlite_worker.go); the driver is our own value, not the one
	// registered globally.
	sqldb := sql.OpenDB(sqliteConnector{dsn: path + "?" + q.Encode(), drv: &sqlite.Driver{}})
	sqldb.SetMaxOpenConns(sqliteMaxOpenConns)
	// database/sql keeps 2 idle connections by default and closes the
	// rest as they come back: under a burst of logins most queries then
	// opened a connection afresh (file, schema, pragmas) and lost its
	// statement cache. Keep them all, as for PostgreSQL.
	sqldb.SetMaxIdleConns(sqliteMaxOpenConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	// Switching a new file to WAL needs a moment of exclusive access; a
	// second process opening the same new file at that instant gets
	// SQLITE_BUSY from the pragma, where the busy timeout does not apply.
	// Such a connection is dropped and the check tried again.
	var err error
	for attempt := 1; ; attempt++ {
		err = checkSQLite(ctx, sqldb)
		if err == nil || !isSQLiteBusy(err) || attempt == 50 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
	if err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("storage: sqlite: open %s: %w", path, err)
	}
	return sqldb, nil
}

// isSQLiteBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED.
func isSQLiteBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// checkSQLite reads back the settings sqliteParams asks for. The driver
// runs _pragma values verbatim, so a typo or a file system without shared
// memory (which WAL needs) would otherwise go unnoticed.
func checkSQLite(ctx context.Context, sqldb *sql.DB) error {
	want := []struct{ pragma, value string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", fmt.Sprint(sqliteBusyTimeoutMillis)},
		{"synchronous", "1"}, // NORMAL
		{"temp_store", "2"},  // MEMORY
		{"wal_autocheckpoint", "4000"},
		{"journal_size_limit", "67108864"},
	}
	conn, err := sqldb.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, w := range want {
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA "+w.pragma).Scan(&got); err != nil {
			return fmt.Errorf("read PRAGMA %s: %w", w.pragma, err)
		}
		if !strings.EqualFold(got, w.value) {
			return fmt.Errorf("PRAGMA %s is %q, want %q", w.pragma, got, w.value)
		}
	}
	return nil
}
