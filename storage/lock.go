package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrLocked is returned (wrapped) by [DB.LockInstance] when another
// process, or another DB of this one, holds the database's instance lock:
// a server is running on it, or an import or export is.
var ErrLocked = errors.New("storage: database in use by a running xmppd")

// instanceLockKey is the pg_advisory_lock key of the instance lock,
// distinct from migrationLockKey ("xmppd!" in ASCII).
const instanceLockKey = 0x786d70706421

// LockInstance takes the database's instance lock, held until [DB.Close]:
// the server takes it at start, and the commands that must not run beside
// a server (imports and exports) take it too, so that they refuse to run
// while one does. It fails with an error wrapping [ErrLocked] when it is
// held elsewhere.
//
// On PostgreSQL it is a session advisory lock held by a connection kept
// for it (advisory locks are per database, so servers on other databases
// of the same PostgreSQL do not conflict); it goes with the connection,
// so a process that dies releases it. On SQLite it is an flock(2) on the
// file beside the database named like it with ".lock" appended; the
// kernel releases it with the process. Locks are per open file, so two
// DBs of one process on the same file conflict too.
func (db *DB) LockInstance(ctx context.Context) error {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.unlock != nil {
		return nil
	}
	switch db.dialect.name {
	case DriverPostgres:
		c, err := db.sql.Conn(ctx)
		if err != nil {
			return fmt.Errorf("storage: instance lock: %w", err)
		}
		var ok bool
		if err := c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(instanceLockKey)).Scan(&ok); err != nil {
			c.Close()
			return fmt.Errorf("storage: instance lock: %w", err)
		}
		if !ok {
			c.Close()
			return fmt.Errorf("%w (PostgreSQL advisory lock %d is held by another session)", ErrLocked, int64(instanceLockKey))
		}
		db.unlock = func() {
			// Closing the connection ends the session and its lock; the
			// explicit unlock is for a pool that would keep it open.
			_, _ = c.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(instanceLockKey))
			c.Close()
		}
	case DriverSQLite:
		path := db.path + ".lock"
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("storage: instance lock: %w", err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			if errors.Is(err, errWouldBlock) {
				return fmt.Errorf("%w (%s is locked)", ErrLocked, path)
			}
			return fmt.Errorf("storage: instance lock %s: %w", path, err)
		}
		db.unlock = func() { f.Close() } // closing the file releases its flock
	}
	return nil
}

// releaseInstance releases the instance lock if db holds it.
func (db *DB) releaseInstance() {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.unlock != nil {
		db.unlock()
		db.unlock = nil
	}
}

// sqlitePath returns the file path of a SQLite DSN.
func sqlitePath(dsn string) string {
	path, _, _ := strings.Cut(dsn, "?")
	return path
}
