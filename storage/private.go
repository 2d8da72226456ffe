package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PrivateXML is the repository of private XML storage (XEP-0049): per
// account, the elements stored under each namespace.
type PrivateXML struct {
	db *DB // immutable; never nil
}

// PrivateXML returns the private XML repository.
func (db *DB) PrivateXML() *PrivateXML { return &PrivateXML{db: db} }

// Get returns what user stored under the namespace ns; ok is false when
// nothing is.
func (p *PrivateXML) Get(ctx context.Context, user, ns string) (data []byte, ok bool, err error) {
	var s string
	err = p.db.sql.QueryRowContext(ctx, `SELECT xml FROM private_xml WHERE jid = $1 AND ns = $2`, user, ns).Scan(&s)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("storage: private xml %s of %s: %w", ns, user, err)
	}
	return []byte(s), true, nil
}

// Namespaces returns the namespaces under which user stored something.
func (p *PrivateXML) Namespaces(ctx context.Context, user string) ([]string, error) {
	rows, err := p.db.sql.QueryContext(ctx, `SELECT ns FROM private_xml WHERE jid = $1 ORDER BY ns`, user)
	if err != nil {
		return nil, fmt.Errorf("storage: private xml namespaces of %s: %w", user, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ns string
		if err := rows.Scan(&ns); err != nil {
			return nil, fmt.Errorf("storage: private xml namespaces of %s: %w", user, err)
		}
		out = append(out, ns)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: private xml namespaces of %s: %w", user, err)
	}
	return out, nil
}

// Set stores data under each namespace of items (namespace → elements) for
// user in one transaction, replacing what was there. It fails for an
// account that does not exist.
func (p *PrivateXML) Set(ctx context.Context, user string, items map[string][]byte) (err error) {
	tx, err := p.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: set private xml of %s: %w", user, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	for ns, data := range items {
		// TEXT columns get strings: lib/pq sends a []byte as bytea.
		if _, err := tx.ExecContext(ctx, `INSERT INTO private_xml (jid, ns, xml) VALUES ($1, $2, $3)
			ON CONFLICT (jid, ns) DO UPDATE SET xml = excluded.xml`, user, ns, string(data)); err != nil {
			return fmt.Errorf("storage: set private xml %s of %s: %w", ns, user, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: set private xml of %s: commit: %w", user, err)
	}
	return nil
}
