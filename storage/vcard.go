package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// VCards is the repository of vCards (XEP-0054), one per account.
type VCards struct {
	db *DB // immutable; never nil
}

// VCards returns the vCard repository.
func (db *DB) VCards() *VCards { return &VCards{db: db} }

// Get returns user's vCard element and its photo value; ok is false when
// the account has none.
func (v *VCards) Get(ctx context.Context, user string) (vcard []byte, photo string, ok bool, err error) {
	var s string
	err = v.db.sql.QueryRowContext(ctx, `SELECT vcard, photo FROM vcards WHERE jid = $1`, user).Scan(&s, &photo)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, "", false, nil
	case err != nil:
		return nil, "", false, fmt.Errorf("storage: vcard of %s: %w", user, err)
	}
	return []byte(s), photo, true, nil
}

// Photo returns the photo value of user's vCard alone (what presence
// needs at login); ok is false when the account has no vCard.
func (v *VCards) Photo(ctx context.Context, user string) (photo string, ok bool, err error) {
	err = v.db.sql.QueryRowContext(ctx, `SELECT photo FROM vcards WHERE jid = $1`, user).Scan(&photo)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("storage: vcard photo of %s: %w", user, err)
	}
	return photo, true, nil
}

// WithPhoto returns the accounts whose vCard has a photo value (not ”),
// so that the presence of every other account needs no read at login.
func (v *VCards) WithPhoto(ctx context.Context) ([]string, error) {
	rows, err := v.db.sql.QueryContext(ctx, `SELECT jid FROM vcards WHERE photo <> ''`)
	if err != nil {
		return nil, fmt.Errorf("storage: vcards with a photo: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("storage: vcards with a photo: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: vcards with a photo: %w", err)
	}
	return out, nil
}

// Set stores user's vCard, replacing any. It fails for an account that
// does not exist.
func (v *VCards) Set(ctx context.Context, user string, vcard []byte, photo string) error {
	// TEXT columns get strings: lib/pq sends a []byte as bytea.
	_, err := v.db.sql.ExecContext(ctx, `INSERT INTO vcards (jid, vcard, photo) VALUES ($1, $2, $3)
		ON CONFLICT (jid) DO UPDATE SET vcard = excluded.vcard, photo = excluded.photo`, user, string(vcard), photo)
	if err != nil {
		return fmt.Errorf("storage: set vcard of %s: %w", user, err)
	}
	return nil
}
