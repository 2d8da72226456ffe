package storage

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ImportedUser is one account and what belongs to it, as an import
// (package migration) writes it: all of it in one transaction.
type ImportedUser struct {
	// JID is the normalised bare JID.
	JID string
	// CreatedAt is kept for a new account; the current time when zero.
	// An account that exists keeps its own.
	CreatedAt time.Time
	// Credentials, when not empty, replace the account's; when empty, an
	// existing account keeps its own and a new one has none (it cannot
	// log in until given a password).
	Credentials []Credential
	// Roster items are stored over any item of the same contact.
	Roster []RosterItem
	// Offline messages are added, oldest first, except those already
	// stored with the same stamp (to the millisecond) and stanza, so that
	// an import run twice stores each once.
	Offline []OfflineMessage
	// VCard, when not nil, replaces the account's vCard; VCardPhoto is
	// its photo value as package vcard computes it.
	VCard      []byte
	VCardPhoto string
	// Private is stored namespace by namespace over what is there.
	Private map[string][]byte
}

// ImportUser writes u in one transaction: the account (created when
// missing), its credentials, roster, offline messages, vCard and private
// XML. A failure leaves nothing of u written; running it twice with the
// same u changes nothing the second time (but the roster version).
func (db *DB) ImportUser(ctx context.Context, u ImportedUser) (err error) {
	if err := checkAccount(u.JID, u.Credentials); err != nil {
		return fmt.Errorf("storage: import user: %w", err)
	}
	created := u.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: import user %s: %w", u.JID, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	wrap := func(what string, err error) error {
		return fmt.Errorf("storage: import user %s: %s: %w", u.JID, what, err)
	}
	if _, err := db.txExec(ctx, tx, `INSERT INTO accounts (jid, created_at) VALUES ($1, $2) ON CONFLICT (jid) DO NOTHING`,
		u.JID, toMillis(created)); err != nil {
		return wrap("account", err)
	}
	if len(u.Credentials) > 0 {
		if _, err := db.txExec(ctx, tx, `DELETE FROM account_credentials WHERE jid = $1`, u.JID); err != nil {
			return wrap("credentials", err)
		}
		rows := make([][]any, 0, len(u.Credentials))
		for _, c := range u.Credentials {
			rows = append(rows, []any{u.JID, c.Mechanism, c.Salt, c.Iterations, c.StoredKey, c.ServerKey})
		}
		if err := db.insertRows(ctx, tx, `INSERT INTO account_credentials (jid, mechanism, salt, iterations, stored_key, server_key) VALUES `, ``, 6, rows); err != nil {
			return wrap("credentials", err)
		}
	}
	if len(u.Roster) > 0 {
		rows := make([][]any, 0, len(u.Roster))
		for _, it := range u.Roster {
			groups := ""
			if len(it.Groups) > 0 {
				b, err := json.Marshal(it.Groups)
				if err != nil {
					return wrap("roster item "+it.Contact, err)
				}
				groups = string(b)
			}
			if it.Subscription == "" {
				it.Subscription = "none"
			}
			rows = append(rows, []any{u.JID, it.Contact, it.Name, groups, it.Subscription,
				b2i(it.Ask), b2i(it.PendingIn), b2i(it.Approved), b2i(it.Visible), it.Request})
		}
		if err := db.insertRows(ctx, tx, `INSERT INTO roster_items (jid, `+rosterColumns+`) VALUES `,
			` ON CONFLICT (jid, contact) DO UPDATE SET name = excluded.name, groups = excluded.groups,
				subscription = excluded.subscription, ask = excluded.ask, pending_in = excluded.pending_in,
				approved = excluded.approved, visible = excluded.visible, request = excluded.request`, 10, rows); err != nil {
			return wrap("roster", err)
		}
		// Clients that cached the roster under an older version fetch it
		// again.
		if _, err := bumpRosterVersion(ctx, tx, u.JID); err != nil {
			return err
		}
	}
	for _, m := range u.Offline {
		// string, not []byte: lib/pq sends bytes as bytea (see Push).
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO offline_messages (jid, stamp, stanza)
			SELECT $1, CAST($2 AS BIGINT), CAST($3 AS TEXT)
			WHERE NOT EXISTS (SELECT 1 FROM offline_messages WHERE jid = $1 AND stamp = $2 AND stanza = $3)`,
			u.JID, toMillis(m.Stamp), string(m.Stanza)); err != nil {
			return wrap("offline message", err)
		}
	}
	if u.VCard != nil {
		if _, err := db.txExec(ctx, tx, `INSERT INTO vcards (jid, vcard, photo) VALUES ($1, $2, $3)
			ON CONFLICT (jid) DO UPDATE SET vcard = excluded.vcard, photo = excluded.photo`,
			u.JID, string(u.VCard), u.VCardPhoto); err != nil {
			return wrap("vcard", err)
		}
	}
	for ns, data := range u.Private {
		if _, err := db.txExec(ctx, tx, `INSERT INTO private_xml (jid, ns, xml) VALUES ($1, $2, $3)
			ON CONFLICT (jid, ns) DO UPDATE SET xml = excluded.xml`, u.JID, ns, string(data)); err != nil {
			return wrap("private xml "+ns, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap("commit", err)
	}
	return nil
}

// insertChunks are the row counts of insertRows' statements, largest
// first: a fixed few, so that each text can stay prepared (see txExec).
var insertChunks = []int{64, 32, 16, 8, 4, 2, 1}

// insertRows inserts rows (each of width values) with multi-row
// statements: prefix, then "($1, …), (…)", then suffix. One statement per
// row was most of an import's cost.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, prefix, suffix string, width int, rows [][]any) error {
	args := make([]any, 0, width*insertChunks[0])
	for len(rows) > 0 {
		n := 1
		for _, c := range insertChunks {
			if c <= len(rows) {
				n = c
				break
			}
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if _, err := db.txExec(ctx, tx, db.valuesQuery(prefix, suffix, width, n), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

type valuesKey struct {
	prefix, suffix string
	width, n       int
	question       bool
}

// valuesQuery returns prefix + n tuples of width placeholders + suffix.
// On SQLite the placeholders are ?: binding the N-th of hundreds of $N
// parameters makes modernc.org/sqlite look its name up in a list (see
// Archive.appendQuery); PostgreSQL takes only $N.
func (db *DB) valuesQuery(prefix, suffix string, width, n int) string {
	k := valuesKey{prefix, suffix, width, n, db.dialect.name == DriverSQLite}
	if q, ok := db.valuesQueries.Load(k); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(prefix)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range width {
			if j > 0 {
				b.WriteString(", ")
			}
			if k.question {
				b.WriteByte('?')
			} else {
				fmt.Fprintf(&b, "$%d", i*width+j+1)
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(suffix)
	db.valuesQueries.Store(k, b.String())
	return b.String()
}

// ImportedRoomMessage is one message of a room's log, as an import writes
// it into the room's history and archive.
type ImportedRoomMessage struct {
	// Stamp, ID, Nick, Sender and Payload are as in [MUCMessage]; Seq is
	// chosen by ImportRoom.
	MUCMessage
	// Stanza is the message as the room's archive keeps it (package
	// muc's form), or nil to keep it out of the archive.
	Stanza []byte
}

// ImportedRoom is a persistent room as an import writes it.
type ImportedRoom struct {
	// Room is the configuration and affiliations (with their reserved
	// nicks); its History is ignored.
	Room MUCRoom
	// Log is the room's message log, oldest first.
	Log []ImportedRoomMessage
	// StanzaID returns the archive's stanza id for a row of seq (package
	// mam's form); needed when a message of Log has a Stanza.
	StanzaID func(seq int64) string
}

// ImportRoom writes r in one transaction: the room's configuration
// (created or updated), its affiliations (added or updated; others stay),
// and its log into the archive and the last Room.HistoryLength messages
// into the history.
//
// A message already imported is recognised by its content: in the
// archive, a row of the room at the same millisecond with the same nick
// and stanza; in the history, a row with the same stamp, nick and
// payload. So an import run twice adds nothing. An archive row's seq is
// the message's time in microseconds, moved up within its millisecond
// past any seq taken (SQLite's archive seqs are unique across owners).
func (db *DB) ImportRoom(ctx context.Context, r ImportedRoom) (err error) {
	room := r.Room
	if room.JID == "" || room.Service == "" {
		return fmt.Errorf("storage: import muc room %q: empty JID or service", room.JID)
	}
	created := room.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: import muc room %s: %w", room.JID, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	wrap := func(what string, err error) error {
		return fmt.Errorf("storage: import muc room %s: %s: %w", room.JID, what, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO muc_rooms (jid, service, creator, created_at, name, description, public, members_only,
			moderated, password, max_users, whois, history_length, allow_pm, change_subject, archive, subject, subject_nick)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (jid) DO UPDATE SET
			creator = excluded.creator, created_at = excluded.created_at,
			name = excluded.name, description = excluded.description, public = excluded.public,
			members_only = excluded.members_only, moderated = excluded.moderated, password = excluded.password,
			max_users = excluded.max_users, whois = excluded.whois, history_length = excluded.history_length,
			allow_pm = excluded.allow_pm, change_subject = excluded.change_subject, archive = excluded.archive,
			subject = excluded.subject, subject_nick = excluded.subject_nick`,
		room.JID, room.Service, room.Creator, toMillis(created), room.Name, room.Description, room.Public,
		room.MembersOnly, room.Moderated, room.Password, room.MaxUsers, room.Whois, room.HistoryLength,
		room.AllowPM, room.ChangeSubject, room.Archive, room.Subject, room.SubjectNick); err != nil {
		return wrap("room", err)
	}
	for _, a := range room.Affiliations {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO muc_affiliations (room, jid, affiliation, reason, nick) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, reason = excluded.reason,
				nick = CASE WHEN excluded.nick = '' THEN muc_affiliations.nick ELSE excluded.nick END`,
			room.JID, a.JID, a.Affiliation, a.Reason, a.Nick); err != nil {
			return wrap("affiliation of "+a.JID, err)
		}
	}
	if len(r.Log) > 0 {
		if err := db.importRoomLog(ctx, tx, r); err != nil {
			return wrap("log", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap("commit", err)
	}
	return nil
}

// importRoomLog writes r.Log into the archive and the history (see
// ImportRoom).
func (db *DB) importRoomLog(ctx context.Context, tx *sql.Tx, r ImportedRoom) error {
	room := r.Room.JID
	lo, hi := r.Log[0].Stamp.UnixMilli(), r.Log[0].Stamp.UnixMilli()
	for _, m := range r.Log {
		lo, hi = min(lo, m.Stamp.UnixMilli()), max(hi, m.Stamp.UnixMilli())
	}
	type key struct {
		ms         int64
		nick, body string
	}
	// What the archive holds in the log's time range: every seq taken,
	// and this room's rows by content.
	taken := map[int64]bool{}
	archived := map[key]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT seq, owner, with_resource, stanza FROM archive WHERE seq >= $1 AND seq < $2`,
		lo*1000, (hi+1)*1000)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq int64
		var owner, nick string
		var stanza []byte
		if err := rows.Scan(&seq, &owner, &nick, &stanza); err != nil {
			rows.Close()
			return err
		}
		taken[seq] = true
		if owner == room {
			archived[key{seq / 1000, nick, string(stanza)}] = true
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	histKept := map[key]bool{}
	var lastSeq int64
	rows, err = tx.QueryContext(ctx, `SELECT seq, stamp, nick, payload FROM muc_history WHERE room = $1`, room)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq, stamp int64
		var nick string
		var payload []byte
		if err := rows.Scan(&seq, &stamp, &nick, &payload); err != nil {
			rows.Close()
			return err
		}
		lastSeq = max(lastSeq, seq)
		histKept[key{stamp, nick, string(payload)}] = true
	}
	if err := rows.Close(); err != nil {
		return err
	}

	var arch, hist [][]any
	// Only the last HistoryLength messages can stay in the history.
	histFrom := len(r.Log) - max(r.Room.HistoryLength, 0)
	for i, m := range r.Log {
		ms := m.Stamp.UnixMilli()
		if m.Stanza != nil && r.StanzaID != nil && !archived[key{ms, m.Nick, string(m.Stanza)}] {
			seq := ms * 1000
			for taken[seq] && seq < ms*1000+999 {
				seq++
			}
			if taken[seq] {
				return fmt.Errorf("message at %s: more than 1,000 messages in one millisecond", m.Stamp.UTC().Format(time.RFC3339Nano))
			}
			taken[seq] = true
			archived[key{ms, m.Nick, string(m.Stanza)}] = true
			arch = append(arch, []any{room, seq, r.StanzaID(seq), room, m.Nick, false, m.Stanza})
		}
		if i >= histFrom && !histKept[key{ms, m.Nick, string(m.Payload)}] {
			histKept[key{ms, m.Nick, string(m.Payload)}] = true
			lastSeq++
			hist = append(hist, []any{room, lastSeq, m.ID, m.Nick, m.Sender, ms, bytes.Clone(m.Payload)})
		}
	}
	if err := db.insertRows(ctx, tx, `INSERT INTO archive (owner, seq, id, with_jid, with_resource, outgoing, stanza) VALUES `, ``, 7, arch); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := db.insertRows(ctx, tx, `INSERT INTO muc_history (room, seq, id, nick, sender, stamp, payload) VALUES `, ``, 7, hist); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if len(hist) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM muc_history WHERE room = $1 AND seq <= $2`,
			room, lastSeq-int64(max(r.Room.HistoryLength, 0))); err != nil {
			return fmt.Errorf("history: trim: %w", err)
		}
	}
	return nil
}
