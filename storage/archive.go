package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"
)

// ArchivedMessage is one message in an archive (XEP-0313).
type ArchivedMessage struct {
	Owner        string // bare JID of the archive: an account or a room
	Seq          int64  // µs since the epoch; unique and increasing
	ID           string // stanza id (XEP-0359)
	With         string // bare JID of the other party
	WithResource string // its resource; for a room, the sender's nick
	Outgoing     bool   // the owner sent it
	Stanza       []byte // the message as archived
}

// Archive is the repository of message archives and archiving
// preferences (XEP-0313).
type Archive struct {
	db *DB // immutable; never nil
}

// Archive returns the message archive repository.
func (db *DB) Archive() *Archive { return &Archive{db: db} }

// appendChunk is the most rows one INSERT of Append carries: 7 parameters
// each, well under both engines' limits on bound parameters.
const appendChunk = 100

// Append stores msgs in one transaction. A row whose (Owner, Seq) is
// already stored is skipped, so a batch retried after an error that may
// have hidden a commit is harmless.
//
// Rows go in multi-row INSERTs of appendChunk rows, then of 64, 32, …, 1
// for the rest: one statement per row was most of the cost of archiving,
// and a fixed set of sizes keeps the statement texts few enough to stay
// prepared (see DB.txExec).
//
// On PostgreSQL the rows go by COPY, which costs the server and the
// client about 40 % less per row than the INSERTs (13.5 against 22.7 µs
// per row in batches of 2,000); COPY cannot skip a row already stored,
// so a batch that meets one (a retry after a hidden commit) is written
// again with the INSERTs.
func (a *Archive) Append(ctx context.Context, msgs []ArchivedMessage) (err error) {
	if len(msgs) == 0 {
		return nil
	}
	if a.db.dialect.name == DriverPostgres {
		err := a.copyIn(ctx, msgs)
		if err == nil || !a.db.dialect.isUniqueViolation(err) {
			return err
		}
	}
	return a.insert(ctx, msgs)
}

// copyIn stores msgs with one COPY, in one transaction.
func (a *Archive) copyIn(ctx context.Context, msgs []ArchivedMessage) (err error) {
	tx, err := a.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	st, err := tx.PrepareContext(ctx, pq.CopyIn("archive", "owner", "seq", "id", "with_jid", "with_resource", "outgoing", "stanza"))
	if err != nil {
		return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
	}
	defer st.Close()
	for _, m := range msgs {
		if _, err := st.ExecContext(ctx, m.Owner, m.Seq, m.ID, m.With, m.WithResource, m.Outgoing, m.Stanza); err != nil {
			return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
		}
	}
	if _, err := st.ExecContext(ctx); err != nil { // the end of the COPY
		return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: archive messages: commit: %w", err)
	}
	return nil
}

// insert stores msgs with multi-row INSERTs that skip rows already
// stored, in one transaction.
func (a *Archive) insert(ctx context.Context, msgs []ArchivedMessage) (err error) {
	var tx *sql.Tx
	if a.db.dialect.name == DriverSQLite {
		a.db.archiveMu.Lock()
		defer a.db.archiveMu.Unlock()
		tx, err = a.sqliteTx(ctx)
	} else {
		tx, err = a.db.sql.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("storage: archive %d messages: %w", len(msgs), err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	args := make([]any, 0, 7*appendChunk)
	for len(msgs) > 0 {
		n := appendSize(len(msgs))
		args = args[:0]
		for _, m := range msgs[:n] {
			args = append(args, m.Owner, m.Seq, m.ID, m.With, m.WithResource, m.Outgoing, m.Stanza)
		}
		if _, err := a.db.txExec(ctx, tx, a.appendQuery(n), args...); err != nil {
			return fmt.Errorf("storage: archive %d messages: %w", n, err)
		}
		msgs = msgs[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: archive messages: commit: %w", err)
	}
	return nil
}

// archiveCacheKiB is the page cache of SQLite's archive connection.
// A batch adds an entry to each index at the end of each owner's and each
// conversation's range: a page per owner and per conversation in the
// batch, more than SQLite's default cache (2 MiB) holds, which then
// spilled pages to the WAL in the middle of the transaction and read them
// back. With 64 MiB (filled only as pages are used), a batch of 2,500
// messages among 1,000 users cost 39 instead of 53 µs of CPU per message
// (docs/performance.md).
const archiveCacheKiB = 64 << 10

// sqliteTx begins a transaction on SQLite's archive connection, opening
// it first if needed. The caller holds archiveMu. Batches go through one
// connection of their own so that its cache stays warm with the index
// pages the next batch will touch again; the pool's connections keep the
// default cache.
func (a *Archive) sqliteTx(ctx context.Context) (*sql.Tx, error) {
	if a.db.archiveConn == nil {
		c, err := a.db.sql.Conn(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", archiveCacheKiB)); err != nil {
			c.Close()
			return nil, err
		}
		a.db.archiveConn = c
	}
	tx, err := a.db.archiveConn.BeginTx(ctx, nil)
	if err != nil {
		// The connection may be broken: the next batch opens another.
		a.db.archiveConn.Close()
		a.db.archiveConn = nil
	}
	return tx, err
}

// appendSize is how many of n rows the next INSERT of Append carries:
// appendChunk, or else the largest power of two not above n.
func appendSize(n int) int {
	if n >= appendChunk {
		return appendChunk
	}
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}

// appendQueries holds the INSERT texts for each size appendSize returns,
// built once: [0] with $N placeholders, [1] with ? (see appendQuery).
var appendQueries = func() [2]map[int]string {
	qs := [2]map[int]string{{}, {}}
	for n := appendChunk; n > 0; n = appendSize(n - 1) {
		qs[0][n] = buildAppendQuery(n, false)
		qs[1][n] = buildAppendQuery(n, true)
		if n == 1 {
			break
		}
	}
	return qs
}()

// appendQuery is the INSERT of n rows. On SQLite it uses ? placeholders:
// binding the N-th of 700 $N parameters makes modernc.org/sqlite look its
// name up in a list, a fifth of a batch's cost; ? has no name to look up.
// PostgreSQL takes only $N.
func (a *Archive) appendQuery(n int) string {
	if a.db.dialect.name == DriverSQLite {
		return appendQueries[1][n]
	}
	return appendQueries[0][n]
}

func buildAppendQuery(n int, question bool) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO archive (owner, seq, id, with_jid, with_resource, outgoing, stanza) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		if question {
			b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			continue
		}
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d)", 7*i+1, 7*i+2, 7*i+3, 7*i+4, 7*i+5, 7*i+6, 7*i+7)
	}
	b.WriteString(` ON CONFLICT DO NOTHING`)
	return b.String()
}

// MaxQuerySeqs is the most values [ArchiveQuery.Seqs] may hold: a page
// of ids a client names (XEP-0313 §4.1.5), not a bulk export.
const MaxQuerySeqs = 100

// ArchiveQuery selects rows of one archive. A zero bound is no bound.
type ArchiveQuery struct {
	Owner        string
	With         string // bare JID; "" = any
	WithResource string // with With: only this resource; "" = any (ignored without With)
	Start, End   int64  // inclusive seq bounds (XEP-0313 start and end)
	// After and Before are exclusive seq bounds (XEP-0059 paging).
	After, Before int64
	// Seqs, when not nil, admits only these seqs (XEP-0313 'ids'), at
	// most 100; empty, it admits none.
	Seqs []int64
	// Limit is the most rows Query returns; 0 = no limit.
	Limit int
	// Newest has Query return rows from the newest down (seq
	// descending), the last page first; otherwise oldest first.
	Newest bool
}

const archiveColumns = `owner, seq, id, with_jid, with_resource, outgoing, stanza`

// archiveQuerySQL returns the statement and arguments that Query (count
// false) or Count (count true) runs for q; ok is false when q matches
// nothing without asking (Seqs empty).
//
// The text is assembled from a fixed set of clauses, one per filter that
// is set, so that without Seqs the distinct texts are a few hundred at
// most and each can stay prepared (see archiveRun). Seqs are padded to a
// power of two by repeating the last value, which bounds their texts too.
// ORDER BY seq alone: with owner (and with_jid) fixed by
// equality, the index archive_owner (owner, seq) or archive_with
// (owner, with_jid, seq) yields the rows in order, read forwards or
// backwards, and the LIMIT stops the scan; TestArchivePlans checks that
// PostgreSQL plans it so.
func archiveQuerySQL(q ArchiveQuery, count bool) (query string, args []any, ok bool, err error) {
	if len(q.Seqs) > MaxQuerySeqs {
		return "", nil, false, fmt.Errorf("%d ids, more than %d: %w", len(q.Seqs), MaxQuerySeqs, ErrLimit)
	}
	if q.Seqs != nil && len(q.Seqs) == 0 {
		return "", nil, false, nil
	}
	var b strings.Builder
	if count {
		b.WriteString(`SELECT COUNT(*) FROM archive WHERE owner = $1`)
	} else {
		b.WriteString(`SELECT ` + archiveColumns + ` FROM archive WHERE owner = $1`)
	}
	args = append(args, q.Owner)
	cond := func(clause string, v any) {
		args = append(args, v)
		b.WriteString(" AND " + clause + " $" + strconv.Itoa(len(args)))
	}
	if q.With != "" {
		cond("with_jid =", q.With)
		if q.WithResource != "" {
			cond("with_resource =", q.WithResource)
		}
	}
	if q.Start != 0 {
		cond("seq >=", q.Start)
	}
	if q.End != 0 {
		cond("seq <=", q.End)
	}
	if !count && q.After != 0 {
		cond("seq >", q.After)
	}
	if !count && q.Before != 0 {
		cond("seq <", q.Before)
	}
	if q.Seqs != nil {
		b.WriteString(" AND seq IN (")
		n := 1
		for n < len(q.Seqs) {
			n *= 2
		}
		n = min(n, MaxQuerySeqs)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, q.Seqs[min(i, len(q.Seqs)-1)])
			b.WriteString("$" + strconv.Itoa(len(args)))
		}
		b.WriteString(")")
	}
	if count {
		return b.String(), args, true, nil
	}
	if q.Newest {
		b.WriteString(" ORDER BY seq DESC")
	} else {
		b.WriteString(" ORDER BY seq")
	}
	if q.Limit > 0 {
		args = append(args, q.Limit)
		b.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	}
	return b.String(), args, true, nil
}

// Query returns the rows of q.Owner's archive that q selects, at most
// q.Limit, oldest first or, with q.Newest, newest first. More than 100
// q.Seqs is an error wrapping [ErrLimit].
func (a *Archive) Query(ctx context.Context, q ArchiveQuery) ([]ArchivedMessage, error) {
	query, args, ok, err := archiveQuerySQL(q, false)
	if err != nil {
		return nil, fmt.Errorf("storage: query archive of %s: %w", q.Owner, err)
	}
	if !ok {
		return nil, nil
	}
	rows, err := a.archiveRun(ctx, q, query, args)
	if err != nil {
		return nil, fmt.Errorf("storage: query archive of %s: %w", q.Owner, err)
	}
	msgs, err := scanArchived(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: query archive of %s: %w", q.Owner, err)
	}
	return msgs, nil
}

// archiveRun runs the text archiveQuerySQL built for q. Queries by ids
// are not prepared: they are rare (a client resolving a few ids), and
// their padded IN lists would multiply the texts kept prepared on every
// PostgreSQL connection by nine.
func (a *Archive) archiveRun(ctx context.Context, q ArchiveQuery, query string, args []any) (*sql.Rows, error) {
	if q.Seqs != nil {
		return a.db.sql.QueryContext(ctx, query, args...)
	}
	return a.db.query(ctx, query, args...)
}

// Count returns how many rows of q.Owner's archive match q's Owner, With,
// WithResource, Start, End and Seqs, ignoring its paging (After, Before,
// Limit, Newest): the XEP-0059 count of the whole result set.
func (a *Archive) Count(ctx context.Context, q ArchiveQuery) (int, error) {
	query, args, ok, err := archiveQuerySQL(q, true)
	if err != nil {
		return 0, fmt.Errorf("storage: count archive of %s: %w", q.Owner, err)
	}
	if !ok {
		return 0, nil
	}
	rows, err := a.archiveRun(ctx, q, query, args)
	if err != nil {
		return 0, fmt.Errorf("storage: count archive of %s: %w", q.Owner, err)
	}
	defer rows.Close()
	var n int
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("storage: count archive of %s: %w", q.Owner, err)
	}
	return n, nil
}

// Get returns the row (owner, seq), or an error wrapping [ErrNotFound].
func (a *Archive) Get(ctx context.Context, owner string, seq int64) (ArchivedMessage, error) {
	msgs, err := a.rows(ctx, `SELECT `+archiveColumns+` FROM archive WHERE owner = $1 AND seq = $2`, owner, seq)
	if err != nil {
		return ArchivedMessage{}, fmt.Errorf("storage: get archived message %s/%d: %w", owner, seq, err)
	}
	if len(msgs) == 0 {
		return ArchivedMessage{}, fmt.Errorf("storage: get archived message %s/%d: %w", owner, seq, ErrNotFound)
	}
	return msgs[0], nil
}

// Bounds returns the oldest and newest rows of owner's archive, which
// XEP-0313's metadata query reports; ok is false when it is empty.
func (a *Archive) Bounds(ctx context.Context, owner string) (first, last ArchivedMessage, ok bool, err error) {
	// Two index probes, one from each end, rather than MIN and MAX
	// joined back to their rows.
	for _, end := range []struct {
		q   string
		dst *ArchivedMessage
	}{
		{`SELECT ` + archiveColumns + ` FROM archive WHERE owner = $1 ORDER BY seq LIMIT 1`, &first},
		{`SELECT ` + archiveColumns + ` FROM archive WHERE owner = $1 ORDER BY seq DESC LIMIT 1`, &last},
	} {
		msgs, err := a.rows(ctx, end.q, owner)
		if err != nil {
			return ArchivedMessage{}, ArchivedMessage{}, false, fmt.Errorf("storage: bounds of archive of %s: %w", owner, err)
		}
		if len(msgs) == 0 {
			return ArchivedMessage{}, ArchivedMessage{}, false, nil
		}
		*end.dst = msgs[0]
	}
	return first, last, true, nil
}

// MaxSeq returns the highest seq in any archive, 0 when all are empty, so
// that a restarted server never hands out a seq again even if its clock
// went back.
//
// On SQLite seq is the rowid, and this is one probe. On PostgreSQL no
// index leads with seq (none of the queries on a running server needs
// one, and each index costs every Append), so this reads the whole
// table: it is meant for startup only (235 ms for 1M rows here).
func (a *Archive) MaxSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := a.db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM archive`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("storage: highest archive seq: %w", err)
	}
	return seq, nil
}

// Delete removes owner's rows with a seq below before, or all of owner's
// rows when before is 0, and returns how many it removed.
func (a *Archive) Delete(ctx context.Context, owner string, before int64) (int64, error) {
	var (
		res sql.Result
		err error
	)
	if before == 0 {
		res, err = a.db.sql.ExecContext(ctx, `DELETE FROM archive WHERE owner = $1`, owner)
	} else {
		res, err = a.db.sql.ExecContext(ctx, `DELETE FROM archive WHERE owner = $1 AND seq < $2`, owner, before)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: delete archive of %s: %w", owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storage: delete archive of %s: %w", owner, err)
	}
	return n, nil
}

// DeleteOlder removes every owner's rows with a seq below before (the
// retention sweep) and returns how many it removed.
//
// It deletes owner by owner, each in a statement of its own, rather than
// in one statement over the table: that would be one long transaction
// (on PostgreSQL a scan of the whole archive, where seq leads no index),
// and on SQLite the archive writer, appending all the while, would wait
// on it for as long and could pass its busy timeout. A failure leaves the owners before it swept.
func (a *Archive) DeleteOlder(ctx context.Context, before int64) (int64, error) {
	return a.eachOwner(ctx, "delete archived messages before "+strconv.FormatInt(before, 10),
		`DELETE FROM archive WHERE owner = $1 AND seq < $2`, before)
}

// Trim keeps at most max rows of each owner's archive, the newest, and
// returns how many it deleted. A max below 1 is an error: it would empty
// every archive, which is Delete's job, not a limit's.
//
// Owner by owner, as DeleteOlder and for the same reason; each owner's
// cut is found and applied in one statement, so rows appended meanwhile
// (newer than the cut) are kept.
func (a *Archive) Trim(ctx context.Context, max int) (int64, error) {
	if max < 1 {
		return 0, fmt.Errorf("storage: trim archives to %d messages: want at least 1", max)
	}
	// The subquery is the seq of the (max+1)-th newest row, NULL (nothing
	// to delete) when there are not that many.
	return a.eachOwner(ctx, fmt.Sprintf("trim archives to %d messages", max), `
		DELETE FROM archive WHERE owner = $1 AND seq <= (
			SELECT s.seq FROM archive s WHERE s.owner = $1 ORDER BY s.seq DESC LIMIT 1 OFFSET $2)`, max)
}

// eachOwner runs q with each owner that has rows, and arg, and returns
// the rows it affected in all. Owners are walked one index probe at a
// time (the next owner after the last), not with SELECT DISTINCT, which
// would read every row.
func (a *Archive) eachOwner(ctx context.Context, what, q string, arg any) (int64, error) {
	var total int64
	owner := ""
	for {
		err := a.db.sql.QueryRowContext(ctx,
			`SELECT owner FROM archive WHERE owner > $1 ORDER BY owner LIMIT 1`, owner).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("storage: %s: %w", what, err)
		}
		res, err := a.db.sql.ExecContext(ctx, q, owner, arg)
		if err != nil {
			return total, fmt.Errorf("storage: %s: %s: %w", what, owner, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("storage: %s: %s: %w", what, owner, err)
		}
		total += n
	}
}

// rows runs one of the fixed queries above and reads its rows.
func (a *Archive) rows(ctx context.Context, q string, args ...any) ([]ArchivedMessage, error) {
	rows, err := a.db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanArchived(rows)
}

// scanArchived reads rows of archiveColumns and closes rows.
func scanArchived(rows *sql.Rows) ([]ArchivedMessage, error) {
	defer rows.Close()
	var msgs []ArchivedMessage
	for rows.Next() {
		var m ArchivedMessage
		if err := rows.Scan(&m.Owner, &m.Seq, &m.ID, &m.With, &m.WithResource, &m.Outgoing, &m.Stanza); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// ArchivePrefs are one owner's archiving preferences (XEP-0313 §6).
type ArchivePrefs struct {
	Owner   string
	Default string   // "always", "never" or "roster"
	Always  []string // JIDs whose messages are always archived
	Never   []string // JIDs whose messages are never archived
}

// AllPrefs returns the preferences of every owner that set them, sorted
// by owner (byte order), for the archiver to hold in memory.
func (a *Archive) AllPrefs(ctx context.Context) ([]ArchivePrefs, error) {
	rows, err := a.db.sql.QueryContext(ctx, `SELECT owner, default_mode, always, never FROM archive_prefs`)
	if err != nil {
		return nil, fmt.Errorf("storage: archive preferences: %w", err)
	}
	defer rows.Close()
	var all []ArchivePrefs
	for rows.Next() {
		var p ArchivePrefs
		var always, never string
		if err := rows.Scan(&p.Owner, &p.Default, &always, &never); err != nil {
			return nil, fmt.Errorf("storage: archive preferences: %w", err)
		}
		p.Always, p.Never = splitJIDs(always), splitJIDs(never)
		all = append(all, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: archive preferences: %w", err)
	}
	// Sorted in Go, as in Accounts.List: the engines' collations differ.
	slices.SortFunc(all, func(x, y ArchivePrefs) int { return strings.Compare(x.Owner, y.Owner) })
	return all, nil
}

// SetPrefs stores p, replacing the owner's earlier preferences.
func (a *Archive) SetPrefs(ctx context.Context, p ArchivePrefs) error {
	if p.Owner == "" {
		return errors.New("storage: set archive preferences: empty owner")
	}
	// The lists are stored one JID a line; a JID cannot hold a newline
	// (RFC 7622 forbids control characters), but a caller's bug must not
	// split one into two.
	for _, j := range slices.Concat(p.Always, p.Never) {
		if j == "" || strings.ContainsAny(j, "\r\n") {
			return fmt.Errorf("storage: set archive preferences of %s: invalid JID %q", p.Owner, j)
		}
	}
	if _, err := a.db.sql.ExecContext(ctx, `
		INSERT INTO archive_prefs (owner, default_mode, always, never) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner) DO UPDATE SET default_mode = excluded.default_mode,
			always = excluded.always, never = excluded.never`,
		p.Owner, p.Default, strings.Join(p.Always, "\n"), strings.Join(p.Never, "\n")); err != nil {
		return fmt.Errorf("storage: set archive preferences of %s: %w", p.Owner, err)
	}
	return nil
}

// splitJIDs undoes strings.Join(jids, "\n"), giving nil for none.
func splitJIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
