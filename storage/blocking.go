package storage

import (
	"context"
	"fmt"
)

// Blocklists is the repository of block lists (XEP-0191).
type Blocklists struct {
	db *DB // immutable; never nil
}

// Blocklists returns the block list repository.
func (db *DB) Blocklists() *Blocklists { return &Blocklists{db: db} }

// Owners returns the accounts whose block list is not empty, so that a
// server can skip looking up everyone else's.
func (b *Blocklists) Owners(ctx context.Context) ([]string, error) {
	return b.strings(ctx, "owners of block lists", `SELECT DISTINCT jid FROM blocklist`)
}

// List returns the JIDs user blocks, sorted.
func (b *Blocklists) List(ctx context.Context, user string) ([]string, error) {
	return b.strings(ctx, "block list of "+user, `SELECT blocked FROM blocklist WHERE jid = $1 ORDER BY blocked`, user)
}

func (b *Blocklists) strings(ctx context.Context, what, q string, args ...any) ([]string, error) {
	rows, err := b.db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", what, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	return out, nil
}

// Block adds JIDs to user's block list in one transaction; ones already
// there are kept.
func (b *Blocklists) Block(ctx context.Context, user string, jids []string) (err error) {
	return b.change(ctx, "block for "+user, `INSERT INTO blocklist (jid, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING`, user, jids)
}

// Unblock removes JIDs from user's block list in one transaction; ones
// not there are ignored. No JIDs empties the list.
func (b *Blocklists) Unblock(ctx context.Context, user string, jids []string) error {
	if len(jids) == 0 {
		if _, err := b.db.sql.ExecContext(ctx, `DELETE FROM blocklist WHERE jid = $1`, user); err != nil {
			return fmt.Errorf("storage: unblock all for %s: %w", user, err)
		}
		return nil
	}
	return b.change(ctx, "unblock for "+user, `DELETE FROM blocklist WHERE jid = $1 AND blocked = $2`, user, jids)
}

func (b *Blocklists) change(ctx context.Context, what, q, user string, jids []string) (err error) {
	tx, err := b.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	for _, j := range jids {
		if _, err := tx.ExecContext(ctx, q, user, j); err != nil {
			return fmt.Errorf("storage: %s: %s: %w", what, j, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return nil
}
