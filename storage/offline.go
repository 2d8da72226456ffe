package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrLimit is returned (wrapped) when storing a row would go over a limit
// the caller set, such as the number of offline messages per account.
var ErrLimit = errors.New("storage: limit reached")

// OfflineMessage is a message kept for an account that had no available
// resource to take it (XEP-0160).
type OfflineMessage struct {
	// ID orders one account's messages by arrival; ids are never reused.
	ID int64
	// Stamp is when the message was stored, to the millisecond, in UTC.
	Stamp time.Time
	// Stanza is the serialised message as it was routed.
	Stanza []byte
}

// OfflineQueue is how many messages are kept for one account.
type OfflineQueue struct {
	JID      string // bare JID
	Messages int
}

// Offline is the repository of offline messages.
type Offline struct {
	db *DB // immutable; never nil
}

// Offline returns the offline message repository.
func (db *DB) Offline() *Offline { return &Offline{db: db} }

// OfflineLimits bound what [Offline.Push] keeps for one account. A field
// of 0 sets no bound.
type OfflineLimits struct {
	// Messages is the most messages kept.
	Messages int
	// Bytes is the most bytes kept: the sum of the stored stanzas' sizes.
	Bytes int
}

// Push stores stanza for the account jid, stamped stamp, and returns its
// id once the row is committed. When storing it would take the account
// over lim (it already has lim.Messages messages, or its stanzas and this
// one would come to more than lim.Bytes bytes), nothing is stored and the
// error wraps [ErrLimit]; an unknown account gives an error wrapping
// [ErrNotFound].
//
// The check and the insert are atomic with respect to other Pushes for
// the same account: the account's row is locked first (on SQLite the
// transaction's BEGIN IMMEDIATE already excludes other writers).
func (o *Offline) Push(ctx context.Context, jid string, stamp time.Time, stanza []byte, lim OfflineLimits) (id int64, err error) {
	tx, err := o.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("storage: push offline message for %s: %w", jid, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// The no-op UPDATE tells whether the account exists and, on
	// PostgreSQL, holds its row until commit, so that two Pushes for one
	// account cannot both see room for one more message.
	res, err := tx.ExecContext(ctx, `UPDATE accounts SET created_at = created_at WHERE jid = $1`, jid)
	if err != nil {
		return 0, fmt.Errorf("storage: push offline message for %s: %w", jid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("storage: push offline message for %s: %w", jid, err)
	} else if n == 0 {
		return 0, fmt.Errorf("storage: push offline message for %s: %w", jid, ErrNotFound)
	}
	if lim.Bytes > 0 && len(stanza) > lim.Bytes {
		return 0, fmt.Errorf("storage: push offline message for %s: %d bytes, more than the %d allowed: %w",
			jid, len(stanza), lim.Bytes, ErrLimit)
	}
	if lim.Messages > 0 || lim.Bytes > 0 {
		// octet_length is in both engines (SQLite 3.43, PostgreSQL): the
		// stored text's size in bytes (UTF-8, as len(stanza) counts),
		// which neither engine reads the whole value to learn. The sum
		// visits the table's rows where the count alone reads only the
		// index (on SQLite, 1,000 pushes into one queue: 0.17 → 0.35 s),
		// so it is left out when there is no byte limit.
		q := `SELECT COUNT(*), 0 FROM offline_messages WHERE jid = $1`
		if lim.Bytes > 0 {
			q = `SELECT COUNT(*), COALESCE(SUM(octet_length(stanza)), 0) FROM offline_messages WHERE jid = $1`
		}
		var n int
		var size int64
		if err := tx.QueryRowContext(ctx, q, jid).Scan(&n, &size); err != nil {
			return 0, fmt.Errorf("storage: push offline message for %s: count: %w", jid, err)
		}
		if lim.Messages > 0 && n >= lim.Messages {
			return 0, fmt.Errorf("storage: push offline message for %s: %d stored: %w", jid, n, ErrLimit)
		}
		if lim.Bytes > 0 && size+int64(len(stanza)) > int64(lim.Bytes) {
			return 0, fmt.Errorf("storage: push offline message for %s: %d bytes stored, %d more would pass %d: %w",
				jid, size, len(stanza), lim.Bytes, ErrLimit)
		}
	}
	// string, not []byte: lib/pq would send bytes as bytea, and a TEXT
	// column would then hold their escaped form.
	if err := tx.QueryRowContext(ctx,
		`INSERT INTO offline_messages (jid, stamp, stanza) VALUES ($1, $2, $3) RETURNING id`,
		jid, toMillis(stamp), string(stanza)).Scan(&id); err != nil {
		return 0, fmt.Errorf("storage: push offline message for %s: %w", jid, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("storage: push offline message for %s: commit: %w", jid, err)
	}
	return id, nil
}

// List returns up to limit messages of the account jid with an id above
// after, oldest first. Pass after = 0 for the first page, then the id of
// the last message returned.
func (o *Offline) List(ctx context.Context, jid string, after int64, limit int) ([]OfflineMessage, error) {
	rows, err := o.db.query(ctx, `
		SELECT id, stamp, stanza FROM offline_messages
		WHERE jid = $1 AND id > $2 ORDER BY id LIMIT $3`, jid, after, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: list offline messages of %s: %w", jid, err)
	}
	defer rows.Close()
	var msgs []OfflineMessage
	for rows.Next() {
		var m OfflineMessage
		var stamp int64
		if err := rows.Scan(&m.ID, &stamp, &m.Stanza); err != nil {
			return nil, fmt.Errorf("storage: list offline messages of %s: %w", jid, err)
		}
		m.Stamp = fromMillis(stamp)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list offline messages of %s: %w", jid, err)
	}
	return msgs, nil
}

// deleteChunk bounds the ids in one DELETE statement, well below either
// engine's limit on bound parameters.
const deleteChunk = 500

// Delete removes the offline messages with the given ids. Ids that do not
// exist (already deleted) are not an error.
func (o *Offline) Delete(ctx context.Context, ids ...int64) error {
	return deleteIDs(ctx, o.db, "offline_messages", "offline messages", ids)
}

// deleteIDs deletes the rows of table whose id is in ids, in statements of
// at most deleteChunk ids; what names the rows in errors.
func deleteIDs[T int64 | string](ctx context.Context, db *DB, table, what string, ids []T) error {
	for chunk := range slices.Chunk(ids, deleteChunk) {
		var q strings.Builder
		q.WriteString(`DELETE FROM ` + table + ` WHERE id IN (`)
		args := make([]any, len(chunk))
		for i, id := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("$" + strconv.Itoa(i+1))
			args[i] = id
		}
		q.WriteString(")")
		if _, err := db.sql.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("storage: delete %d %s: %w", len(chunk), what, err)
		}
	}
	return nil
}

// DeleteOlderThan removes every offline message stored before t and
// returns how many it removed.
func (o *Offline) DeleteOlderThan(ctx context.Context, t time.Time) (int64, error) {
	res, err := o.db.sql.ExecContext(ctx, `DELETE FROM offline_messages WHERE stamp < $1`, toMillis(t))
	if err != nil {
		return 0, fmt.Errorf("storage: delete offline messages before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storage: delete offline messages before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// Count returns the number of offline messages kept for the account jid.
func (o *Offline) Count(ctx context.Context, jid string) (int, error) {
	var n int
	if err := o.db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline_messages WHERE jid = $1`, jid).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: count offline messages of %s: %w", jid, err)
	}
	return n, nil
}

// Queues returns, for every account with offline messages, how many it
// has, sorted by JID (byte order).
func (o *Offline) Queues(ctx context.Context) ([]OfflineQueue, error) {
	rows, err := o.db.sql.QueryContext(ctx, `SELECT jid, COUNT(*) FROM offline_messages GROUP BY jid`)
	if err != nil {
		return nil, fmt.Errorf("storage: count offline messages: %w", err)
	}
	defer rows.Close()
	var qs []OfflineQueue
	for rows.Next() {
		var q OfflineQueue
		if err := rows.Scan(&q.JID, &q.Messages); err != nil {
			return nil, fmt.Errorf("storage: count offline messages: %w", err)
		}
		qs = append(qs, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: count offline messages: %w", err)
	}
	// Sorted in Go, as in Accounts.List: the engines' collations differ.
	slices.SortFunc(qs, func(x, y OfflineQueue) int { return strings.Compare(x.JID, y.JID) })
	return qs, nil
}
