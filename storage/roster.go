package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// RosterItem is one contact in a user's roster with its subscription state
// (RFC 6121 §2.1.2 and Appendix A).
type RosterItem struct {
	Contact      string   // bare JID
	Name         string   // "" when unset
	Groups       []string // sorted, no duplicates
	Subscription string   // "none", "to", "from" or "both"
	Ask          bool     // pending-out: the owner asked to subscribe
	PendingIn    bool     // the contact asked to subscribe; no answer yet
	Approved     bool     // subscription pre-approved by the owner
	Visible      bool     // part of the roster; false: kept only for PendingIn
	Request      string   // the pending inbound subscribe stanza, to redeliver
}

// Rosters is the repository of rosters.
type Rosters struct {
	db *DB // immutable; never nil
}

// Rosters returns the roster repository.
func (db *DB) Rosters() *Rosters { return &Rosters{db: db} }

const rosterColumns = `contact, name, groups, subscription, ask, pending_in, approved, visible, request`

func scanRosterItem(sc interface{ Scan(...any) error }) (RosterItem, error) {
	var it RosterItem
	var groups string
	var ask, pin, appr, vis int
	if err := sc.Scan(&it.Contact, &it.Name, &groups, &it.Subscription, &ask, &pin, &appr, &vis, &it.Request); err != nil {
		return it, err
	}
	if groups != "" {
		if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
			return it, fmt.Errorf("groups of %s: %w", it.Contact, err)
		}
	}
	it.Ask, it.PendingIn, it.Approved, it.Visible = ask != 0, pin != 0, appr != 0, vis != 0
	return it, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Items returns the visible items of user's roster, sorted by contact, and
// the roster version.
func (r *Rosters) Items(ctx context.Context, user string) ([]RosterItem, int64, error) {
	tx, err := r.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: r.db.dialect.name == DriverPostgres})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: roster of %s: %w", user, err)
	}
	defer rollback(tx)
	rows, err := tx.QueryContext(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE jid = $1 AND visible = 1`, user)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: roster of %s: %w", user, err)
	}
	defer rows.Close()
	var items []RosterItem
	for rows.Next() {
		it, err := scanRosterItem(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("storage: roster of %s: %w", user, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("storage: roster of %s: %w", user, err)
	}
	ver, err := rosterVersion(ctx, tx, user)
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(items, func(a, b RosterItem) int { return compareStrings(a.Contact, b.Contact) })
	return items, ver, tx.Commit()
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func rosterVersion(ctx context.Context, q queryer, user string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT version FROM roster_versions WHERE jid = $1`, user).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: roster version of %s: %w", user, err)
	}
	return v, nil
}

// Version returns the roster version of user (0 for a roster never
// changed).
func (r *Rosters) Version(ctx context.Context, user string) (int64, error) {
	return rosterVersion(ctx, r.db.sql, user)
}

// Get returns the item of contact in user's roster, visible or not, and
// whether there is one.
func (r *Rosters) Get(ctx context.Context, user, contact string) (RosterItem, bool, error) {
	row := r.db.sql.QueryRowContext(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE jid = $1 AND contact = $2`, user, contact)
	it, err := scanRosterItem(row)
	if errors.Is(err, sql.ErrNoRows) {
		return RosterItem{}, false, nil
	}
	if err != nil {
		return RosterItem{}, false, fmt.Errorf("storage: roster item %s of %s: %w", contact, user, err)
	}
	return it, true, nil
}

// Put stores it in user's roster, replacing what was there, and returns
// the roster version after the change. With bump, the version is bumped
// when the item is visible or was visible before; without, the change is
// one the user cannot see (a pending request) and the version stays.
func (r *Rosters) Put(ctx context.Context, user string, it RosterItem, bump bool) (ver int64, err error) {
	groups := ""
	if len(it.Groups) > 0 {
		b, err := json.Marshal(it.Groups)
		if err != nil {
			return 0, fmt.Errorf("storage: roster item %s: %w", it.Contact, err)
		}
		groups = string(b)
	}
	if it.Subscription == "" {
		it.Subscription = "none"
	}
	tx, err := r.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("storage: put roster item %s of %s: %w", it.Contact, user, err)
	}
	defer rollback(tx)
	var wasVisible int
	err = tx.QueryRowContext(ctx, `SELECT visible FROM roster_items WHERE jid = $1 AND contact = $2`, user, it.Contact).Scan(&wasVisible)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("storage: put roster item %s of %s: %w", it.Contact, user, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO roster_items (jid, `+rosterColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (jid, contact) DO UPDATE SET name = $3, groups = $4, subscription = $5, ask = $6,
			pending_in = $7, approved = $8, visible = $9, request = $10`,
		user, it.Contact, it.Name, groups, it.Subscription, b2i(it.Ask), b2i(it.PendingIn), b2i(it.Approved), b2i(it.Visible), it.Request)
	if err != nil {
		return 0, fmt.Errorf("storage: put roster item %s of %s: %w", it.Contact, user, err)
	}
	if bump && (it.Visible || wasVisible != 0) {
		ver, err = bumpRosterVersion(ctx, tx, user)
	} else {
		ver, err = rosterVersion(ctx, tx, user)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("storage: put roster item %s of %s: %w", it.Contact, user, err)
	}
	return ver, nil
}

func bumpRosterVersion(ctx context.Context, tx *sql.Tx, user string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roster_versions (jid, version) VALUES ($1, 1)
		ON CONFLICT (jid) DO UPDATE SET version = roster_versions.version + 1 RETURNING version`, user).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("storage: bump roster version of %s: %w", user, err)
	}
	return v, nil
}

// Delete removes contact from user's roster and returns the roster version
// after the change. Deleting an absent item is not an error.
func (r *Rosters) Delete(ctx context.Context, user, contact string) (ver int64, err error) {
	tx, err := r.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("storage: delete roster item %s of %s: %w", contact, user, err)
	}
	defer rollback(tx)
	var visible int
	err = tx.QueryRowContext(ctx, `DELETE FROM roster_items WHERE jid = $1 AND contact = $2 RETURNING visible`, user, contact).Scan(&visible)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ver, err = rosterVersion(ctx, tx, user)
	case err != nil:
		return 0, fmt.Errorf("storage: delete roster item %s of %s: %w", contact, user, err)
	case visible != 0:
		ver, err = bumpRosterVersion(ctx, tx, user)
	default:
		ver, err = rosterVersion(ctx, tx, user)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("storage: delete roster item %s of %s: %w", contact, user, err)
	}
	return ver, nil
}

// Unsubscribe ends every subscription between contact (an account being
// deleted) and the users who have it in their rosters, as the unsubscribe
// and unsubscribed Prosody and ejabberd send on deletion would: each item
// stays, with subscription "none" and no pending request either way nor
// pre-approval, and an item kept only for contact's request (invisible)
// goes. So an account created later with that JID gets no one's presence
// and no approval it did not ask for. The roster version of each owner
// whose visible item changed is bumped. It returns how many owners that
// is.
func (r *Rosters) Unsubscribe(ctx context.Context, contact string) (owners int, err error) {
	tx, err := r.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
	}
	defer rollback(tx)
	rows, err := tx.QueryContext(ctx, `SELECT jid FROM roster_items WHERE contact = $1 AND visible = 1
		AND (subscription <> 'none' OR ask <> 0 OR pending_in <> 0 OR approved <> 0)`, contact)
	if err != nil {
		return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
	}
	var bump []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			rows.Close()
			return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
		}
		bump = append(bump, j)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
	}
	rows.Close()
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_items WHERE contact = $1 AND visible = 0`, contact); err != nil {
		return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE roster_items SET subscription = 'none', ask = 0, pending_in = 0,
		approved = 0, request = '' WHERE contact = $1`, contact); err != nil {
		return 0, fmt.Errorf("storage: unsubscribe %s: %w", contact, err)
	}
	for _, j := range bump {
		if _, err := bumpRosterVersion(ctx, tx, j); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("storage: unsubscribe %s: commit: %w", contact, err)
	}
	return len(bump), nil
}

// Count returns the number of rows kept for user, visible or not (both
// count toward the roster size limit).
func (r *Rosters) Count(ctx context.Context, user string) (int, error) {
	var n int
	if err := r.db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster_items WHERE jid = $1`, user).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: count roster of %s: %w", user, err)
	}
	return n, nil
}

// PendingIn returns the items of user with an unanswered inbound
// subscription request.
func (r *Rosters) PendingIn(ctx context.Context, user string) ([]RosterItem, error) {
	items, err := r.items(ctx, user, ` AND pending_in = 1`)
	if err != nil {
		return nil, fmt.Errorf("storage: pending subscriptions of %s: %w", user, err)
	}
	return items, nil
}

// All returns every row of user's roster, visible or kept only for a
// pending request, sorted by contact: what the roster service needs to
// know of an account while it is online, in one query.
func (r *Rosters) All(ctx context.Context, user string) ([]RosterItem, error) {
	items, err := r.items(ctx, user, ``)
	if err != nil {
		return nil, fmt.Errorf("storage: roster rows of %s: %w", user, err)
	}
	return items, nil
}

func (r *Rosters) items(ctx context.Context, user, where string) ([]RosterItem, error) {
	rows, err := r.db.query(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE jid = $1`+where+` ORDER BY contact`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []RosterItem
	for rows.Next() {
		it, err := scanRosterItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}
