package storage

import (
	"context"
	"fmt"
	"time"
)

// Login is one successful login to remember: the account and the network
// (a /24 or /64 in CIDR notation) it came from.
type Login struct {
	JID     string
	Network string
	At      time.Time
}

// LoginNetworks is the repository of the networks accounts logged in from.
type LoginNetworks struct {
	db *DB // immutable; never nil
}

// LoginNetworks returns the login networks repository.
func (db *DB) LoginNetworks() *LoginNetworks { return &LoginNetworks{db: db} }

// Record remembers each login, in one transaction. A login for an account
// that does not exist (deleted meanwhile) is skipped; a network already
// known keeps the later of the two times.
func (l *LoginNetworks) Record(ctx context.Context, logins []Login) (err error) {
	if len(logins) == 0 {
		return nil
	}
	tx, err := l.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: record logins: %w", err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// INSERT … SELECT … WHERE EXISTS rather than a foreign key error: the
	// account may have been deleted since it logged in. The WHERE also
	// keeps SQLite from reading ON CONFLICT as part of the SELECT.
	for _, g := range logins {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO login_networks (jid, network, last_login)
			SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = $1)
			ON CONFLICT (jid, network) DO UPDATE SET last_login = excluded.last_login
			WHERE login_networks.last_login < excluded.last_login`,
			g.JID, g.Network, toMillis(g.At)); err != nil {
			return fmt.Errorf("storage: record login of %s: %w", g.JID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: record logins: commit: %w", err)
	}
	return nil
}

// Known reports whether the account jid logged in from network at since or
// later.
func (l *LoginNetworks) Known(ctx context.Context, jid, network string, since time.Time) (bool, error) {
	var n int
	err := l.db.sql.QueryRowContext(ctx, `
		SELECT COUNT(*) FROM login_networks WHERE jid = $1 AND network = $2 AND last_login >= $3`,
		jid, network, toMillis(since)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("storage: login networks of %s: %w", jid, err)
	}
	return n > 0, nil
}

// DeleteOlderThan forgets networks last logged in from before t and
// returns how many it forgot.
func (l *LoginNetworks) DeleteOlderThan(ctx context.Context, t time.Time) (int64, error) {
	res, err := l.db.sql.ExecContext(ctx, `DELETE FROM login_networks WHERE last_login < $1`, toMillis(t))
	if err != nil {
		return 0, fmt.Errorf("storage: sweep login networks: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storage: sweep login networks: %w", err)
	}
	return n, nil
}
