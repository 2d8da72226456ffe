package storage_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

func importedUser(jid string, items int) storage.ImportedUser {
	u := storage.ImportedUser{
		JID:         jid,
		CreatedAt:   time.UnixMilli(1_600_000_000_000).UTC(),
		Credentials: []storage.Credential{cred("SCRAM-SHA-1", 1), cred("SCRAM-SHA-256", 2)},
		Offline: []storage.OfflineMessage{
			{Stamp: time.UnixMilli(1_700_000_000_001).UTC(), Stanza: []byte("<message from='x@localhost'><body>one</body></message>")},
			{Stamp: time.UnixMilli(1_700_000_000_002).UTC(), Stanza: []byte("<message from='x@localhost'><body>two</body></message>")},
		},
		VCard:      []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"),
		VCardPhoto: "",
		Private:    map[string][]byte{"storage:bookmarks": []byte("<storage xmlns='storage:bookmarks'/>")},
	}
	for i := range items {
		u.Roster = append(u.Roster, storage.RosterItem{
			Contact: fmt.Sprintf("c%03d@localhost", i), Name: fmt.Sprint("C", i), Groups: []string{"G"},
			Subscription: "both", Visible: true,
		})
	}
	u.Roster = append(u.Roster, storage.RosterItem{Contact: "asker@localhost", Subscription: "none", PendingIn: true, Request: "<presence type='subscribe'/>"})
	return u
}

// TestImportUser writes a user with everything it holds, twice (nothing
// is duplicated), on every engine.
func TestImportUser(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		u := importedUser("alice@localhost", 150) // more than one multi-row chunk
		for range 2 {
			if err := db.ImportUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		acct, err := db.Accounts().Get(ctx, u.JID)
		if err != nil {
			t.Fatal(err)
		}
		if !acct.CreatedAt.Equal(u.CreatedAt) || len(acct.Credentials) != 2 {
			t.Errorf("account %+v", acct)
		}
		all, err := db.Rosters().All(ctx, u.JID)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 151 {
			t.Errorf("roster has %d rows, want 151", len(all))
		}
		if i := slices.IndexFunc(all, func(it storage.RosterItem) bool { return it.Contact == "asker@localhost" }); i < 0 || !all[i].PendingIn || all[i].Visible {
			t.Errorf("pending-in item lost: %+v", all)
		}
		msgs, err := db.Offline().List(ctx, u.JID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 2 || string(msgs[0].Stanza) != string(u.Offline[0].Stanza) || !msgs[1].Stamp.Equal(u.Offline[1].Stamp) {
			t.Errorf("offline messages %+v", msgs)
		}
		vc, _, ok, err := db.VCards().Get(ctx, u.JID)
		if err != nil || !ok || string(vc) != string(u.VCard) {
			t.Errorf("vcard %q %v %v", vc, ok, err)
		}
		x, ok, err := db.PrivateXML().Get(ctx, u.JID, "storage:bookmarks")
		if err != nil || !ok || string(x) != "<storage xmlns='storage:bookmarks'/>" {
			t.Errorf("private %q %v %v", x, ok, err)
		}
	})
}

// TestImportUserAtomic makes the vCard insert fail (a trigger), after the
// account, credentials, roster and offline messages were written in the
// same transaction: nothing of the user may remain.
func TestImportUserAtomic(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		var stmts []string
		if db.Driver() == storage.DriverSQLite {
			stmts = []string{`CREATE TRIGGER boom BEFORE INSERT ON vcards WHEN NEW.jid = 'bob@localhost'
				BEGIN SELECT RAISE(ABORT, 'boom'); END`}
		} else {
			stmts = []string{
				`CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN
					IF NEW.jid = 'bob@localhost' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER boom BEFORE INSERT ON vcards FOR EACH ROW EXECUTE FUNCTION boom()`,
			}
		}
		for _, q := range stmts {
			if _, err := db.SQL().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.ImportUser(ctx, importedUser("alice@localhost", 3)); err != nil {
			t.Fatal(err)
		}
		if err := db.ImportUser(ctx, importedUser("bob@localhost", 100)); err == nil {
			t.Fatal("ImportUser of bob succeeded despite the failing vCard insert")
		}
		for _, table := range []string{"accounts", "account_credentials", "roster_items", "roster_versions", "offline_messages", "vcards", "private_xml"} {
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE jid = 'bob@localhost'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s holds %d rows of bob after the failed import", table, n)
			}
		}
		if ok, _ := db.Accounts().Exists(ctx, "alice@localhost"); !ok {
			t.Error("alice, imported before, is gone")
		}
	})
}

// TestImportRoom writes a room with affiliations, reserved nicks and a
// log, twice: the archive and history hold each message once, the
// history its last HistoryLength messages; nicks survive SaveRoom and
// SetAffiliation.
func TestImportRoom(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const room = "lounge@conference.localhost"
		r := storage.ImportedRoom{
			Room: storage.MUCRoom{
				JID: room, Service: "conference.localhost", Creator: "alice@localhost", Name: "Lounge",
				MaxUsers: 10, Whois: "moderators", HistoryLength: 3, AllowPM: "anyone", Archive: true,
				Affiliations: []storage.MUCAffiliation{
					{JID: "alice@localhost", Affiliation: "owner"},
					{JID: "bob@localhost", Affiliation: "member", Nick: "Bobby"},
				},
			},
			StanzaID: func(seq int64) string { return fmt.Sprint("id", seq) },
		}
		base := time.UnixMilli(1_700_000_000_000).UTC()
		for i := range 5 {
			p := fmt.Appendf(nil, "<body>m%d</body>", i)
			r.Log = append(r.Log, storage.ImportedRoomMessage{
				// Two messages in one millisecond.
				MUCMessage: storage.MUCMessage{ID: fmt.Sprint("m", i), Nick: "Bobby", Sender: "bob@localhost/r", Stamp: base.Add(time.Duration(i/2) * time.Millisecond), Payload: p},
				Stanza:     append(append([]byte("<message type='groupchat' from='"+room+"/Bobby'>"), p...), "</message>"...),
			})
		}
		for range 2 {
			if err := db.ImportRoom(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		rooms, err := db.MUC().Rooms(ctx, "conference.localhost")
		if err != nil {
			t.Fatal(err)
		}
		if len(rooms) != 1 {
			t.Fatalf("%d rooms", len(rooms))
		}
		got := rooms[0]
		if len(got.History) != 3 || string(got.History[0].Payload) != "<body>m2</body>" || string(got.History[2].Payload) != "<body>m4</body>" {
			t.Errorf("history %+v", got.History)
		}
		if len(got.Affiliations) != 2 || got.Affiliations[1].Nick != "Bobby" {
			t.Errorf("affiliations %+v", got.Affiliations)
		}
		n, err := db.Archive().Count(ctx, storage.ArchiveQuery{Owner: room})
		if err != nil || n != 5 {
			t.Errorf("archive holds %d messages (%v), want 5", n, err)
		}
		// A configuration change (SaveRoom without nicks) and a change of
		// affiliation keep the nick.
		got.Affiliations[1].Nick = ""
		if err := db.MUC().SaveRoom(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := db.MUC().SetAffiliation(ctx, room, storage.MUCAffiliation{JID: "bob@localhost", Affiliation: "admin"}); err != nil {
			t.Fatal(err)
		}
		rooms, _ = db.MUC().Rooms(ctx, "conference.localhost")
		if a := rooms[0].Affiliations[1]; a.Nick != "Bobby" || a.Affiliation != "admin" {
			t.Errorf("after SaveRoom and SetAffiliation: %+v", a)
		}
	})
}

// TestLockInstance: a second DB on the same database cannot take the
// lock until the first is closed; another database can.
func TestLockInstance(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := t.Context()
			a := storagetest.Open(t, e)
			b := storagetest.Open(t, e)
			other := storagetest.Open(t, map[string]func(testing.TB) storagetest.Engine{
				"sqlite": storagetest.SQLite, "postgres": storagetest.Postgres}[e.Name](t))
			if err := a.LockInstance(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.LockInstance(ctx); !errors.Is(err, storage.ErrLocked) {
				t.Fatalf("second lock: %v, want ErrLocked", err)
			}
			if err := other.LockInstance(ctx); err != nil {
				t.Fatalf("lock of another database: %v", err)
			}
			a.Close()
			if err := b.LockInstance(ctx); err != nil {
				t.Fatalf("lock after the holder closed: %v", err)
			}
		})
	}
}
