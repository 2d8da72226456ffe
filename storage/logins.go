package storage

import (
	"context"
	"fmt"
	"strings"
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

// recordChunk is the most logins one statement inserts: 3 parameters
// each, well under SQLite's and PostgreSQL's limits.
const recordChunk = 256

// Record remembers logins, in one transaction. A login for an account that
// does not exist (deleted meanwhile) is skipped; a network already known
// keeps the later of the two times.
func (l *LoginNetworks) Record(ctx context.Context, logins []Login) (err error) {
	logins = latestLogins(logins)
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
	for len(logins) > 0 {
		n := min(len(logins), recordChunk)
		q, args := recordQuery(logins[:n])
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("storage: record %d logins: %w", n, err)
		}
		logins = logins[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: record logins: commit: %w", err)
	}
	return nil
}

// recordQuery is one multi-row upsert of logins: one statement, not one
// per login, which on a cold start (every login a first) was most of the
// cost of remembering. INSERT … SELECT … WHERE EXISTS rather than a foreign
// key error: the account may have been deleted since it logged in; the
// WHERE also keeps SQLite from reading ON CONFLICT as part of the SELECT.
// Both engines name the columns of VALUES column1, column2, ….
func recordQuery(logins []Login) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 3*len(logins))
	b.WriteString(`INSERT INTO login_networks (jid, network, last_login)
		SELECT v.column1, v.column2, v.column3 FROM (VALUES `)
	for i, g := range logins {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d, $%d, CAST($%d AS BIGINT))", 3*i+1, 3*i+2, 3*i+3)
		args = append(args, g.JID, g.Network, toMillis(g.At))
	}
	b.WriteString(`) AS v
		WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.jid = v.column1)
		ON CONFLICT (jid, network) DO UPDATE SET last_login = excluded.last_login
		WHERE login_networks.last_login < excluded.last_login`)
	return b.String(), args
}

// latestLogins returns logins with one entry per account and network, the
// latest: PostgreSQL refuses a statement that would update one row twice.
func latestLogins(logins []Login) []Login {
	type key struct{ jid, network string }
	at := make(map[key]int, len(logins))
	out := logins[:0:0]
	for _, g := range logins {
		k := key{g.JID, g.Network}
		if i, ok := at[k]; ok {
			if g.At.After(out[i].At) {
				out[i].At = g.At
			}
			continue
		}
		at[k] = len(out)
		out = append(out, g)
	}
	return out
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
