package storage

import (
	"context"
	"fmt"
	"time"
)

// PushRegistration is one XEP-0357 registration of an account: where to
// send its push notifications.
type PushRegistration struct {
	Account string // bare JID
	Service string // the app server's JID
	Node    string
	Options string // the publish-options form as XML, "" for none
	Created time.Time
}

// Push is the repository of push notification registrations (XEP-0357).
type Push struct {
	db *DB // immutable; never nil
}

// Push returns the push registration repository.
func (db *DB) Push() *Push { return &Push{db: db} }

// Owners returns the accounts with at least one registration, so that a
// server can skip everyone else's messages.
func (p *Push) Owners(ctx context.Context) ([]string, error) {
	rows, err := p.db.sql.QueryContext(ctx, `SELECT DISTINCT jid FROM push_registrations`)
	if err != nil {
		return nil, fmt.Errorf("storage: owners of push registrations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("storage: owners of push registrations: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: owners of push registrations: %w", err)
	}
	return out, nil
}

// List returns user's registrations, oldest first.
func (p *Push) List(ctx context.Context, user string) ([]PushRegistration, error) {
	rows, err := p.db.sql.QueryContext(ctx, `SELECT service, node, options, created_at FROM push_registrations
		WHERE jid = $1 ORDER BY created_at, service, node`, user)
	if err != nil {
		return nil, fmt.Errorf("storage: push registrations of %s: %w", user, err)
	}
	defer rows.Close()
	var out []PushRegistration
	for rows.Next() {
		r := PushRegistration{Account: user}
		var ms int64
		if err := rows.Scan(&r.Service, &r.Node, &r.Options, &ms); err != nil {
			return nil, fmt.Errorf("storage: push registrations of %s: %w", user, err)
		}
		r.Created = fromMillis(ms)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: push registrations of %s: %w", user, err)
	}
	return out, nil
}

// Enable stores r, replacing the options of a registration with the same
// account, service and node (a client enabling again, XEP-0357 §5), and
// then removes the account's oldest registrations beyond max (0: no
// bound), in one transaction. It returns what it removed. An account
// that does not exist is an error (the key).
func (p *Push) Enable(ctx context.Context, r PushRegistration, max int) (removed []PushRegistration, err error) {
	what := "enable push for " + r.Account
	tx, err := p.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if _, err := tx.ExecContext(ctx, `INSERT INTO push_registrations (jid, service, node, options, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (jid, service, node) DO UPDATE SET options = excluded.options, created_at = excluded.created_at`,
		r.Account, r.Service, r.Node, r.Options, toMillis(r.Created)); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", what, err)
	}
	if max > 0 {
		var others []PushRegistration // oldest first
		rows, err := tx.QueryContext(ctx, `SELECT service, node, created_at FROM push_registrations
			WHERE jid = $1 AND NOT (service = $2 AND node = $3) ORDER BY created_at, service, node`, r.Account, r.Service, r.Node)
		if err != nil {
			return nil, fmt.Errorf("storage: %s: %w", what, err)
		}
		for rows.Next() {
			old := PushRegistration{Account: r.Account}
			var ms int64
			if err := rows.Scan(&old.Service, &old.Node, &ms); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storage: %s: %w", what, err)
			}
			old.Created = fromMillis(ms)
			others = append(others, old)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("storage: %s: %w", what, err)
		}
		// The one just enabled always stays.
		if excess := len(others) + 1 - max; excess > 0 {
			removed = others[:excess]
		}
		for _, old := range removed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM push_registrations WHERE jid = $1 AND service = $2 AND node = $3`,
				old.Account, old.Service, old.Node); err != nil {
				return nil, fmt.Errorf("storage: %s: %w", what, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return removed, nil
}

// Disable removes user's registrations with service and node, or all of
// service's when node is "" (XEP-0357 §6), and returns how many it
// removed.
func (p *Push) Disable(ctx context.Context, user, service, node string) (int, error) {
	q, args := `DELETE FROM push_registrations WHERE jid = $1 AND service = $2 AND node = $3`, []any{user, service, node}
	if node == "" {
		q, args = `DELETE FROM push_registrations WHERE jid = $1 AND service = $2`, args[:2]
	}
	res, err := p.db.sql.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("storage: disable push for %s at %s: %w", user, service, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storage: disable push for %s at %s: %w", user, service, err)
	}
	return int(n), nil
}
