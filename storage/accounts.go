package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Credential is what the server keeps to verify one SASL SCRAM mechanism
// (RFC 5802 §3): the salt and iteration count sent to the client, and the
// StoredKey and ServerKey derived from the password. Neither the password nor
// SaltedPassword is stored: both would let anyone who reads the database log
// in.
type Credential struct {
	Mechanism  string // "SCRAM-SHA-1" or "SCRAM-SHA-256"
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is a local user.
type Account struct {
	// JID is the normalised bare JID, e.g. alice@example.org. storage compares
	// it byte for byte; normalising is the caller's job (see auth.NormalizeJID).
	JID string
	// Credentials holds at most one entry per mechanism.
	Credentials []Credential
	// CreatedAt is when the account was created, to the millisecond, in UTC.
	// Create fills in the current time when it is zero.
	CreatedAt time.Time
}

// Accounts is the repository of accounts and their credentials.
type Accounts struct {
	db *DB // immutable; never nil
}

// Accounts returns the accounts repository.
func (db *DB) Accounts() *Accounts { return &Accounts{db: db} }

// Create stores a new account with its credentials, all or nothing. It
// returns an error wrapping [ErrExists] when an account with that JID exists.
func (a *Accounts) Create(ctx context.Context, acct Account) (err error) {
	if err := checkAccount(acct.JID, acct.Credentials); err != nil {
		return fmt.Errorf("storage: create account: %w", err)
	}
	created := acct.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}

	tx, err := a.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: create account %s: %w", acct.JID, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// Insert and let the primary key decide, rather than check first: a
	// check-then-insert races with a concurrent Create of the same JID.
	_, err = tx.ExecContext(ctx, `INSERT INTO accounts (jid, created_at) VALUES ($1, $2)`,
		acct.JID, toMillis(created))
	if a.db.dialect.isUniqueViolation(err) {
		return fmt.Errorf("storage: create account %s: %w", acct.JID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("storage: create account %s: %w", acct.JID, err)
	}
	if err := insertCredentials(ctx, tx, acct.JID, acct.Credentials); err != nil {
		return fmt.Errorf("storage: create account %s: %w", acct.JID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: create account %s: commit: %w", acct.JID, err)
	}
	return nil
}

// Credential returns jid's credential for one SCRAM mechanism, or an error
// wrapping [ErrNotFound] when the account does not exist or has none for
// that mechanism (a credential row exists only with its account).
//
// It is what every SASL exchange reads: one primary-key lookup in one
// table, where [Accounts.Get] joins the accounts table too, which on
// PostgreSQL costs a second relation to lock and scan per login.
func (a *Accounts) Credential(ctx context.Context, jid, mechanism string) (Credential, error) {
	rows, err := a.db.query(ctx, `
		SELECT salt, iterations, stored_key, server_key
		FROM account_credentials WHERE jid = $1 AND mechanism = $2`, jid, mechanism)
	if err != nil {
		return Credential{}, fmt.Errorf("storage: %s credential of %s: %w", mechanism, jid, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Credential{}, fmt.Errorf("storage: %s credential of %s: %w", mechanism, jid, err)
		}
		return Credential{}, fmt.Errorf("storage: %s credential of %s: %w", mechanism, jid, ErrNotFound)
	}
	c := Credential{Mechanism: mechanism}
	if err := rows.Scan(&c.Salt, &c.Iterations, &c.StoredKey, &c.ServerKey); err != nil {
		return Credential{}, fmt.Errorf("storage: %s credential of %s: %w", mechanism, jid, err)
	}
	return c, rows.Close()
}

// Get returns the account with its credentials, sorted by mechanism, or an
// error wrapping [ErrNotFound].
func (a *Accounts) Get(ctx context.Context, jid string) (Account, error) {
	// One statement, so the account and its credentials come from the same
	// snapshot even while SetCredentials runs.
	rows, err := a.db.query(ctx, `
		SELECT a.created_at, c.mechanism, c.salt, c.iterations, c.stored_key, c.server_key
		FROM accounts a LEFT JOIN account_credentials c ON c.jid = a.jid
		WHERE a.jid = $1`, jid)
	if err != nil {
		return Account{}, fmt.Errorf("storage: get account %s: %w", jid, err)
	}
	defer rows.Close()

	acct := Account{JID: jid}
	found := false
	for rows.Next() {
		var (
			created   int64
			mechanism sql.NullString
			iter      sql.NullInt64
			c         Credential
		)
		if err := rows.Scan(&created, &mechanism, &c.Salt, &iter, &c.StoredKey, &c.ServerKey); err != nil {
			return Account{}, fmt.Errorf("storage: get account %s: %w", jid, err)
		}
		found = true
		acct.CreatedAt = fromMillis(created)
		if mechanism.Valid { // NULL: an account without credentials
			c.Mechanism, c.Iterations = mechanism.String, int(iter.Int64)
			acct.Credentials = append(acct.Credentials, c)
		}
	}
	if err := rows.Err(); err != nil {
		return Account{}, fmt.Errorf("storage: get account %s: %w", jid, err)
	}
	if !found {
		return Account{}, fmt.Errorf("storage: get account %s: %w", jid, ErrNotFound)
	}
	// Sorted in Go for the same reason as in List.
	slices.SortFunc(acct.Credentials, func(x, y Credential) int { return strings.Compare(x.Mechanism, y.Mechanism) })
	return acct, nil
}

// SetCredentials replaces all credentials of an account with creds, in one
// transaction. It returns an error wrapping [ErrNotFound] when there is no
// such account.
func (a *Accounts) SetCredentials(ctx context.Context, jid string, creds []Credential) (err error) {
	if err := checkAccount(jid, creds); err != nil {
		return fmt.Errorf("storage: set credentials: %w", err)
	}
	tx, err := a.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// A no-op UPDATE both tells whether the account exists and locks its row
	// until commit on PostgreSQL, so a concurrent Delete cannot slip in
	// between this check and the inserts. (SQLite's BEGIN IMMEDIATE already
	// holds the database's write lock.) SELECT … FOR UPDATE would do the
	// same on PostgreSQL only.
	res, err := tx.ExecContext(ctx, `UPDATE accounts SET created_at = created_at WHERE jid = $1`, jid)
	if err != nil {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, err)
	} else if n == 0 {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM account_credentials WHERE jid = $1`, jid); err != nil {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, err)
	}
	if err := insertCredentials(ctx, tx, jid, creds); err != nil {
		return fmt.Errorf("storage: set credentials of %s: %w", jid, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: set credentials of %s: commit: %w", jid, err)
	}
	return nil
}

// CountWithout returns how many accounts have credentials, but none for
// mechanism: accounts imported with SCRAM-SHA-1 keys only lack
// SCRAM-SHA-256's until their password is known again. (Accounts without
// any credential cannot log in at all and are not counted.)
func (a *Accounts) CountWithout(ctx context.Context, mechanism string) (int, error) {
	var n int
	err := a.db.sql.QueryRowContext(ctx, `SELECT count(DISTINCT c.jid) FROM account_credentials c
		WHERE NOT EXISTS (SELECT 1 FROM account_credentials d WHERE d.jid = c.jid AND d.mechanism = $1)`, mechanism).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("storage: count accounts without %s: %w", mechanism, err)
	}
	return n, nil
}

// Delete removes an account and, through ON DELETE CASCADE, its
// credentials, roster, offline messages, block list, login networks and
// shared group memberships;
// its message archive and archive preferences, which have no foreign key
// (rooms own archives too), are deleted with it in the same transaction.
// It returns an error wrapping [ErrNotFound] when there is no such
// account.
func (a *Accounts) Delete(ctx context.Context, jid string) (err error) {
	tx, err := a.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: delete account %s: %w", jid, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// A member of a shared group leaves it with the account (ON DELETE
	// CASCADE); servers reload the groups when the version moves.
	if _, err := tx.ExecContext(ctx, `UPDATE shared_groups_version SET version = version + 1
		WHERE id = 1 AND EXISTS (SELECT 1 FROM shared_group_members WHERE jid = $1)`, jid); err != nil {
		return fmt.Errorf("storage: delete account %s: %w", jid, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE jid = $1`, jid)
	if err != nil {
		return fmt.Errorf("storage: delete account %s: %w", jid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: delete account %s: %w", jid, err)
	}
	if n == 0 {
		return fmt.Errorf("storage: delete account %s: %w", jid, ErrNotFound)
	}
	for _, q := range []string{
		`DELETE FROM archive WHERE owner = $1`,
		`DELETE FROM archive_prefs WHERE owner = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, jid); err != nil {
			return fmt.Errorf("storage: delete account %s: archive: %w", jid, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: delete account %s: commit: %w", jid, err)
	}
	return nil
}

// List returns every account sorted by JID (byte order). The Credentials of
// the listed accounts are left empty: listing is for administration, and
// keys have no business travelling there. Use [Accounts.Get] for them.
func (a *Accounts) List(ctx context.Context) ([]Account, error) {
	rows, err := a.db.sql.QueryContext(ctx, `SELECT jid, created_at FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("storage: list accounts: %w", err)
	}
	defer rows.Close()
	var accts []Account
	for rows.Next() {
		var acct Account
		var created int64
		if err := rows.Scan(&acct.JID, &created); err != nil {
			return nil, fmt.Errorf("storage: list accounts: %w", err)
		}
		acct.CreatedAt = fromMillis(created)
		accts = append(accts, acct)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list accounts: %w", err)
	}
	// Sorted here rather than by ORDER BY: PostgreSQL orders TEXT by the
	// database's collation (often en_US), SQLite by bytes, and the two
	// engines must agree.
	slices.SortFunc(accts, func(x, y Account) int { return strings.Compare(x.JID, y.JID) })
	return accts, nil
}

// Exists reports whether an account with that JID exists.
func (a *Accounts) Exists(ctx context.Context, jid string) (bool, error) {
	var one int
	err := a.db.sql.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1`, jid).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("storage: account exists %s: %w", jid, err)
	}
	return true, nil
}

// insertCredentials adds creds for jid inside tx.
func insertCredentials(ctx context.Context, tx *sql.Tx, jid string, creds []Credential) error {
	for _, c := range creds {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO account_credentials (jid, mechanism, salt, iterations, stored_key, server_key)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			jid, c.Mechanism, c.Salt, c.Iterations, c.StoredKey, c.ServerKey); err != nil {
			return fmt.Errorf("insert %s credential: %w", c.Mechanism, err)
		}
	}
	return nil
}

// checkAccount rejects what the schema would reject with a less helpful
// message, and duplicate mechanisms, whose primary-key violation would
// otherwise be mistaken for a duplicate account.
func checkAccount(jid string, creds []Credential) error {
	if jid == "" {
		return errors.New("empty JID")
	}
	seen := make(map[string]bool, len(creds))
	for _, c := range creds {
		switch {
		case c.Mechanism == "":
			return fmt.Errorf("%s: credential without mechanism", jid)
		case seen[c.Mechanism]:
			return fmt.Errorf("%s: two %s credentials", jid, c.Mechanism)
		case len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0:
			return fmt.Errorf("%s: %s credential lacks salt or keys", jid, c.Mechanism)
		case c.Iterations <= 0:
			return fmt.Errorf("%s: %s credential has %d iterations", jid, c.Mechanism, c.Iterations)
		}
		seen[c.Mechanism] = true
	}
	return nil
}
