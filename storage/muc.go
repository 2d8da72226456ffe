package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MUCRoom is a persistent multi-user chat room (XEP-0045): its
// configuration, subject, affiliations and recent history. storage keeps
// the values as given; their meaning is package muc's.
type MUCRoom struct {
	JID           string // room bare JID, e.g. lounge@conference.example.org
	Service       string // the room's domain, e.g. conference.example.org
	Creator       string // bare JID of the user who created it
	CreatedAt     time.Time
	Name          string
	Description   string
	Public        bool
	MembersOnly   bool
	Moderated     bool
	Password      string // "" when not password-protected
	MaxUsers      int
	Whois         string // "moderators" or "anyone"
	HistoryLength int
	AllowPM       string // "anyone", "participants", "moderators" or "none"
	ChangeSubject bool
	Archive       bool // the room archives its messages (XEP-0313)
	Subject       string
	SubjectNick   string

	// Affiliations are the room's non-"none" affiliations, sorted by JID.
	Affiliations []MUCAffiliation
	// History holds the room's kept messages, oldest first. SaveRoom
	// ignores it; AppendHistory adds to it.
	History []MUCMessage
}

// MUCAffiliation is the lasting relation of a bare JID with a room.
type MUCAffiliation struct {
	JID         string // bare JID
	Affiliation string // "owner", "admin", "member" or "outcast"
	Reason      string
	// Nick is the room nickname JID has reserved (XEP-0045 §7.12), "" for
	// none. SetAffiliation keeps it while JID stays affiliated.
	Nick string
}

// MUCMessage is one message of a room's history.
type MUCMessage struct {
	Seq     int64  // increasing within the room
	ID      string // the message's id attribute
	Nick    string // the sender's nick when it was sent
	Sender  string // the sender's real full JID
	Stamp   time.Time
	Payload []byte // the message's children
}

// MUC is the repository of persistent multi-user chat rooms.
type MUC struct {
	db *DB // immutable; never nil
}

// MUC returns the multi-user chat repository.
func (db *DB) MUC() *MUC { return &MUC{db: db} }

// Rooms returns every room of service with its affiliations and history,
// sorted by JID.
func (m *MUC) Rooms(ctx context.Context, service string) ([]MUCRoom, error) {
	rows, err := m.db.sql.QueryContext(ctx, `
		SELECT jid, creator, created_at, name, description, public, members_only, moderated,
		       password, max_users, whois, history_length, allow_pm, change_subject, archive, subject, subject_nick
		FROM muc_rooms WHERE service = $1`, service)
	if err != nil {
		return nil, fmt.Errorf("storage: muc rooms of %s: %w", service, err)
	}
	defer rows.Close()
	var rooms []MUCRoom
	for rows.Next() {
		r := MUCRoom{Service: service}
		var created int64
		if err := rows.Scan(&r.JID, &r.Creator, &created, &r.Name, &r.Description, &r.Public, &r.MembersOnly,
			&r.Moderated, &r.Password, &r.MaxUsers, &r.Whois, &r.HistoryLength, &r.AllowPM, &r.ChangeSubject,
			&r.Archive, &r.Subject, &r.SubjectNick); err != nil {
			return nil, fmt.Errorf("storage: muc rooms of %s: %w", service, err)
		}
		r.CreatedAt = fromMillis(created)
		rooms = append(rooms, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: muc rooms of %s: %w", service, err)
	}
	rows.Close()
	// Sorted in Go: the engines' collations differ (see Accounts.List).
	slices.SortFunc(rooms, func(a, b MUCRoom) int { return strings.Compare(a.JID, b.JID) })
	index := make(map[string]int, len(rooms))
	for i, r := range rooms {
		index[r.JID] = i
	}

	if err := m.scanEach(ctx, `
		SELECT a.room, a.jid, a.affiliation, a.reason, a.nick
		FROM muc_affiliations a JOIN muc_rooms r ON r.jid = a.room WHERE r.service = $1`, service,
		func(rows *sql.Rows) error {
			var room string
			var a MUCAffiliation
			if err := rows.Scan(&room, &a.JID, &a.Affiliation, &a.Reason, &a.Nick); err != nil {
				return err
			}
			if i, ok := index[room]; ok {
				rooms[i].Affiliations = append(rooms[i].Affiliations, a)
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("storage: muc affiliations of %s: %w", service, err)
	}
	if err := m.scanEach(ctx, `
		SELECT h.room, h.seq, h.id, h.nick, h.sender, h.stamp, h.payload
		FROM muc_history h JOIN muc_rooms r ON r.jid = h.room WHERE r.service = $1`, service,
		func(rows *sql.Rows) error {
			var room string
			var h MUCMessage
			var stamp int64
			if err := rows.Scan(&room, &h.Seq, &h.ID, &h.Nick, &h.Sender, &stamp, &h.Payload); err != nil {
				return err
			}
			h.Stamp = fromMillis(stamp)
			if i, ok := index[room]; ok {
				rooms[i].History = append(rooms[i].History, h)
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("storage: muc history of %s: %w", service, err)
	}
	for i := range rooms {
		slices.SortFunc(rooms[i].Affiliations, func(a, b MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
		slices.SortFunc(rooms[i].History, func(a, b MUCMessage) int { return cmpInt64(a.Seq, b.Seq) })
	}
	return rooms, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanEach runs query with arg and calls fn for each row.
func (m *MUC) scanEach(ctx context.Context, query, arg string, fn func(*sql.Rows) error) error {
	rows, err := m.db.sql.QueryContext(ctx, query, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SaveRoom creates or updates a room's configuration and subject and
// replaces its affiliations with room.Affiliations, in one transaction.
// The history already stored is kept; room.History is ignored.
func (m *MUC) SaveRoom(ctx context.Context, room MUCRoom) (err error) {
	if room.JID == "" || room.Service == "" {
		return fmt.Errorf("storage: save muc room %q: empty JID or service", room.JID)
	}
	tx, err := m.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: save muc room %s: %w", room.JID, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	created := room.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	// INSERT … ON CONFLICT is in both engines (SQLite 3.24, PostgreSQL 9.5).
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO muc_rooms (jid, service, creator, created_at, name, description, public, members_only,
			moderated, password, max_users, whois, history_length, allow_pm, change_subject, archive, subject, subject_nick)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (jid) DO UPDATE SET
			name = excluded.name, description = excluded.description, public = excluded.public,
			members_only = excluded.members_only, moderated = excluded.moderated, password = excluded.password,
			max_users = excluded.max_users, whois = excluded.whois, history_length = excluded.history_length,
			allow_pm = excluded.allow_pm, change_subject = excluded.change_subject, archive = excluded.archive,
			subject = excluded.subject, subject_nick = excluded.subject_nick`,
		room.JID, room.Service, room.Creator, toMillis(created), room.Name, room.Description, room.Public,
		room.MembersOnly, room.Moderated, room.Password, room.MaxUsers, room.Whois, room.HistoryLength,
		room.AllowPM, room.ChangeSubject, room.Archive, room.Subject, room.SubjectNick); err != nil {
		return fmt.Errorf("storage: save muc room %s: %w", room.JID, err)
	}
	// Reserved nicks stay with the JIDs that keep an affiliation, so that
	// a caller that does not track them (a configuration change) does not
	// erase them.
	nicks, err := reservedNicks(ctx, tx, room.JID)
	if err != nil {
		return fmt.Errorf("storage: save muc room %s: nicks: %w", room.JID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE room = $1`, room.JID); err != nil {
		return fmt.Errorf("storage: save muc room %s: affiliations: %w", room.JID, err)
	}
	for _, a := range room.Affiliations {
		if a.Nick == "" {
			a.Nick = nicks[a.JID]
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO muc_affiliations (room, jid, affiliation, reason, nick) VALUES ($1, $2, $3, $4, $5)`,
			room.JID, a.JID, a.Affiliation, a.Reason, a.Nick); err != nil {
			return fmt.Errorf("storage: save muc room %s: affiliation of %s: %w", room.JID, a.JID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: save muc room %s: commit: %w", room.JID, err)
	}
	return nil
}

// reservedNicks returns the reserved nicks of room's affiliated JIDs, by
// JID.
func reservedNicks(ctx context.Context, tx *sql.Tx, room string) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT jid, nick FROM muc_affiliations WHERE room = $1 AND nick <> ''`, room)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	nicks := map[string]string{}
	for rows.Next() {
		var j, n string
		if err := rows.Scan(&j, &n); err != nil {
			return nil, err
		}
		nicks[j] = n
	}
	return nicks, rows.Err()
}

// SetAffiliation sets the affiliation of a.JID with room; an Affiliation
// of "none" (or "") removes it. It returns an error wrapping
// [ErrNotFound] when the room is not stored.
func (m *MUC) SetAffiliation(ctx context.Context, room string, a MUCAffiliation) (err error) {
	tx, err := m.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: set muc affiliation of %s in %s: %w", a.JID, room, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if err := touchRoom(ctx, tx, room); err != nil {
		return fmt.Errorf("storage: set muc affiliation of %s in %s: %w", a.JID, room, err)
	}
	if a.Affiliation == "" || a.Affiliation == "none" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2`, room, a.JID); err != nil {
			return fmt.Errorf("storage: set muc affiliation of %s in %s: %w", a.JID, room, err)
		}
	} else {
		// An upsert, so that a reserved nick (set by an import, or by a
		// later registration) survives a change of affiliation; a.Nick,
		// when given, replaces it.
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO muc_affiliations (room, jid, affiliation, reason, nick) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, reason = excluded.reason,
				nick = CASE WHEN excluded.nick = '' THEN muc_affiliations.nick ELSE excluded.nick END`,
			room, a.JID, a.Affiliation, a.Reason, a.Nick); err != nil {
			return fmt.Errorf("storage: set muc affiliation of %s in %s: %w", a.JID, room, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: set muc affiliation of %s in %s: commit: %w", a.JID, room, err)
	}
	return nil
}

// touchRoom checks that room is stored and, on PostgreSQL, locks its row
// until the transaction ends, so that a concurrent DeleteRoom cannot slip
// in before the rows that refer to it are written.
func touchRoom(ctx context.Context, tx *sql.Tx, room string) error {
	res, err := tx.ExecContext(ctx, `UPDATE muc_rooms SET created_at = created_at WHERE jid = $1`, room)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetSubject records a room's subject and the nick of who set it. It
// returns an error wrapping [ErrNotFound] when the room is not stored.
func (m *MUC) SetSubject(ctx context.Context, room, subject, nick string) error {
	res, err := m.db.sql.ExecContext(ctx, `UPDATE muc_rooms SET subject = $2, subject_nick = $3 WHERE jid = $1`,
		room, subject, nick)
	if err != nil {
		return fmt.Errorf("storage: set muc subject of %s: %w", room, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: set muc subject of %s: %w", room, err)
	}
	if n == 0 {
		return fmt.Errorf("storage: set muc subject of %s: %w", room, ErrNotFound)
	}
	return nil
}

// AppendHistory adds msg to the history of room and deletes what falls
// out of the last keep messages (by Seq). It returns an error wrapping
// [ErrNotFound] when the room is not stored.
func (m *MUC) AppendHistory(ctx context.Context, room string, msg MUCMessage, keep int) (err error) {
	tx, err := m.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: append muc history of %s: %w", room, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if err := touchRoom(ctx, tx, room); err != nil {
		return fmt.Errorf("storage: append muc history of %s: %w", room, err)
	}
	if keep > 0 {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO muc_history (room, seq, id, nick, sender, stamp, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			room, msg.Seq, msg.ID, msg.Nick, msg.Sender, toMillis(msg.Stamp), msg.Payload); err != nil {
			return fmt.Errorf("storage: append muc history of %s: %w", room, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM muc_history WHERE room = $1 AND seq <= $2`,
		room, msg.Seq-int64(keep)); err != nil {
		return fmt.Errorf("storage: append muc history of %s: trim: %w", room, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: append muc history of %s: commit: %w", room, err)
	}
	return nil
}

// DeleteRoom removes a room with its affiliations and history, in one
// transaction. Deleting a room that is not stored is not an error.
func (m *MUC) DeleteRoom(ctx context.Context, room string) (err error) {
	tx, err := m.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: delete muc room %s: %w", room, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// Children first: the result must not depend on SQLite's
	// foreign_keys pragma.
	for _, q := range []string{
		`DELETE FROM muc_history WHERE room = $1`,
		`DELETE FROM muc_affiliations WHERE room = $1`,
		`DELETE FROM muc_rooms WHERE jid = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, room); err != nil {
			return fmt.Errorf("storage: delete muc room %s: %w", room, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: delete muc room %s: commit: %w", room, err)
	}
	return nil
}

// DeleteUser removes every affiliation of the bare JID user with every
// room, and its name as the creator of the rooms it created (which then
// have creator ""), in one transaction, so that an account created later
// with that JID inherits neither. It returns the rooms where user was an
// owner and no owner is left, sorted: they go on existing without one.
func (m *MUC) DeleteUser(ctx context.Context, user string) (ownerless []string, err error) {
	tx, err := m.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	// The rooms user owns that have no other owner, read in the
	// transaction that deletes. (On PostgreSQL an owner added or removed
	// by a concurrent transaction may be missed: the list is for the
	// administrator to read, and nothing depends on it.)
	rows, err := tx.QueryContext(ctx, `
		SELECT a.room FROM muc_affiliations a
		WHERE a.jid = $1 AND a.affiliation = 'owner' AND NOT EXISTS (
			SELECT 1 FROM muc_affiliations o
			WHERE o.room = a.room AND o.affiliation = 'owner' AND o.jid <> $1)`, user)
	if err != nil {
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
	}
	for rows.Next() {
		var room string
		if err := rows.Scan(&room); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
		}
		ownerless = append(ownerless, room)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE jid = $1`, user); err != nil {
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: %w", user, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE muc_rooms SET creator = '' WHERE creator = $1`, user); err != nil {
		return nil, fmt.Errorf("storage: forget %s as muc room creator: %w", user, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storage: delete muc affiliations of %s: commit: %w", user, err)
	}
	// Sorted in Go: the engines' collations differ (see Accounts.List).
	slices.Sort(ownerless)
	return ownerless, nil
}
