package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastActivity is the repository of accounts' last logouts (XEP-0012).
type LastActivity struct {
	db *DB // immutable; never nil
}

// LastActivity returns the last activity repository.
func (db *DB) LastActivity() *LastActivity { return &LastActivity{db: db} }

// Record stores that user's last available resource went away at at,
// with status the text of its unavailable presence, replacing what was
// stored: one statement. An account that does not exist (deleted
// meanwhile) is skipped.
func (l *LastActivity) Record(ctx context.Context, user string, at time.Time, status string) error {
	// The WHERE also keeps SQLite from reading ON CONFLICT as a join's ON.
	_, err := l.db.sql.ExecContext(ctx, `INSERT INTO last_activity (jid, logout_at, status)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = $1)
		ON CONFLICT (jid) DO UPDATE SET logout_at = excluded.logout_at, status = excluded.status`,
		user, toMillis(at), status)
	if err != nil {
		return fmt.Errorf("storage: record last activity of %s: %w", user, err)
	}
	return nil
}

// Get returns when user last logged out and the status text then; at is
// the zero time when nothing is stored.
func (l *LastActivity) Get(ctx context.Context, user string) (at time.Time, status string, err error) {
	var ms int64
	err = l.db.sql.QueryRowContext(ctx, `SELECT logout_at, status FROM last_activity WHERE jid = $1`, user).Scan(&ms, &status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, "", nil
	case err != nil:
		return time.Time{}, "", fmt.Errorf("storage: last activity of %s: %w", user, err)
	}
	return fromMillis(ms), status, nil
}
