package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestMUC runs one sequence of multi-user chat repository operations,
// unchanged, on every engine. Steps share the database and run in order.
func TestMUC(t *testing.T) {
	storagetest.Run(t, testMUC)
}

// testMUC is TestMUC on one engine; the room values it changes are its own.
func testMUC(t *testing.T, db *storage.DB) {
	created := time.UnixMilli(1_700_000_000_123).UTC()
	lounge := storage.MUCRoom{
		JID: "lounge@conference.localhost", Service: "conference.localhost", Creator: "alice@localhost",
		CreatedAt: created, Name: "The Lounge", Description: "Talk — café ✓", Public: true,
		MembersOnly: true, Moderated: false, Password: "s3cret", MaxUsers: 50, Whois: "anyone",
		HistoryLength: 3, AllowPM: "participants", ChangeSubject: true, Archive: true,
		Affiliations: []storage.MUCAffiliation{
			{JID: "alice@localhost", Affiliation: "owner"},
			{JID: "bob@localhost", Affiliation: "member", Reason: "friend"},
		},
	}
	// Another service's room, which Rooms must leave out.
	other := storage.MUCRoom{JID: "x@muc.example.org", Service: "muc.example.org", Creator: "zed@localhost",
		CreatedAt: created, Whois: "moderators", AllowPM: "anyone", MaxUsers: 10}
	msg := func(seq int64) storage.MUCMessage {
		return storage.MUCMessage{Seq: seq, ID: fmt.Sprintf("m%d", seq), Nick: "alice", Sender: "alice@localhost/phone",
			Stamp: created.Add(time.Duration(seq) * time.Second), Payload: []byte(fmt.Sprintf("<body>%d &amp; ✓</body>", seq))}
	}
	rooms := func(ctx context.Context, m *storage.MUC, service string) ([]storage.MUCRoom, error) {
		return m.Rooms(ctx, service)
	}
	wantRooms := func(ctx context.Context, m *storage.MUC, want ...storage.MUCRoom) error {
		got, err := rooms(ctx, m, "conference.localhost")
		if err != nil {
			return err
		}
		if len(got) == 0 && len(want) == 0 {
			return nil
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("Rooms =\n%+v\nwant\n%+v", got, want)
		}
		return nil
	}

	steps := []struct {
		name string
		run  func(ctx context.Context, m *storage.MUC) error
	}{
		{"no rooms", func(ctx context.Context, m *storage.MUC) error { return wantRooms(ctx, m) }},
		{"save rooms", func(ctx context.Context, m *storage.MUC) error {
			if err := m.SaveRoom(ctx, lounge); err != nil {
				return err
			}
			return m.SaveRoom(ctx, other)
		}},
		{"load lounge", func(ctx context.Context, m *storage.MUC) error { return wantRooms(ctx, m, lounge) }},
		{"update configuration and affiliations", func(ctx context.Context, m *storage.MUC) error {
			lounge.Name, lounge.Public, lounge.MembersOnly, lounge.Password = "Lounge", false, false, ""
			lounge.Archive = false
			lounge.Affiliations = []storage.MUCAffiliation{
				{JID: "alice@localhost", Affiliation: "owner"},
				{JID: "carol@localhost", Affiliation: "admin"},
			}
			if err := m.SaveRoom(ctx, lounge); err != nil {
				return err
			}
			return wantRooms(ctx, m, lounge)
		}},
		{"set affiliation", func(ctx context.Context, m *storage.MUC) error {
			if err := m.SetAffiliation(ctx, lounge.JID, storage.MUCAffiliation{JID: "mallory@localhost", Affiliation: "outcast", Reason: "spam"}); err != nil {
				return err
			}
			if err := m.SetAffiliation(ctx, lounge.JID, storage.MUCAffiliation{JID: "carol@localhost", Affiliation: "member"}); err != nil {
				return err
			}
			if err := m.SetAffiliation(ctx, lounge.JID, storage.MUCAffiliation{JID: "alice@localhost", Affiliation: "none"}); err != nil {
				return err
			}
			lounge.Affiliations = []storage.MUCAffiliation{
				{JID: "carol@localhost", Affiliation: "member"},
				{JID: "mallory@localhost", Affiliation: "outcast", Reason: "spam"},
			}
			return wantRooms(ctx, m, lounge)
		}},
		{"set affiliation in unknown room", func(ctx context.Context, m *storage.MUC) error {
			err := m.SetAffiliation(ctx, "nope@conference.localhost", storage.MUCAffiliation{JID: "a@localhost", Affiliation: "member"})
			if !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("err = %v, want ErrNotFound", err)
			}
			return nil
		}},
		{"set subject", func(ctx context.Context, m *storage.MUC) error {
			if err := m.SetSubject(ctx, lounge.JID, "Fire & brimstone", "alice"); err != nil {
				return err
			}
			lounge.Subject, lounge.SubjectNick = "Fire & brimstone", "alice"
			if err := m.SetSubject(ctx, "nope@conference.localhost", "x", "y"); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("subject of unknown room: err = %v, want ErrNotFound", err)
			}
			return wantRooms(ctx, m, lounge)
		}},
		{"append history keeps the last three", func(ctx context.Context, m *storage.MUC) error {
			for seq := int64(1); seq <= 5; seq++ {
				if err := m.AppendHistory(ctx, lounge.JID, msg(seq), 3); err != nil {
					return err
				}
			}
			lounge.History = []storage.MUCMessage{msg(3), msg(4), msg(5)}
			return wantRooms(ctx, m, lounge)
		}},
		{"save keeps history", func(ctx context.Context, m *storage.MUC) error {
			if err := m.SaveRoom(ctx, lounge); err != nil {
				return err
			}
			return wantRooms(ctx, m, lounge)
		}},
		{"append with keep 0 empties history", func(ctx context.Context, m *storage.MUC) error {
			if err := m.AppendHistory(ctx, lounge.JID, msg(6), 0); err != nil {
				return err
			}
			lounge.History = nil
			return wantRooms(ctx, m, lounge)
		}},
		{"append to unknown room", func(ctx context.Context, m *storage.MUC) error {
			if err := m.AppendHistory(ctx, "nope@conference.localhost", msg(1), 3); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("err = %v, want ErrNotFound", err)
			}
			return nil
		}},
		{"delete room", func(ctx context.Context, m *storage.MUC) error {
			if err := m.AppendHistory(ctx, lounge.JID, msg(7), 3); err != nil {
				return err
			}
			if err := m.DeleteRoom(ctx, lounge.JID); err != nil {
				return err
			}
			if err := m.DeleteRoom(ctx, lounge.JID); err != nil {
				return fmt.Errorf("second delete: %w", err)
			}
			if err := wantRooms(ctx, m); err != nil {
				return err
			}
			// Nothing of it is left behind for a room of the same name.
			fresh := storage.MUCRoom{JID: lounge.JID, Service: lounge.Service, Creator: "bob@localhost",
				CreatedAt: created, Whois: "moderators", AllowPM: "anyone", MaxUsers: 5}
			if err := m.SaveRoom(ctx, fresh); err != nil {
				return err
			}
			return wantRooms(ctx, m, fresh)
		}},
		{"a room stored without archive archives", func(ctx context.Context, m *storage.MUC) error {
			// As a room stored before the archive column was added: its
			// default is to archive.
			if _, err := db.SQL().ExecContext(ctx, `
				INSERT INTO muc_rooms (jid, service, creator, created_at, name, description, public, members_only,
					moderated, password, max_users, whois, history_length, allow_pm, change_subject, subject, subject_nick)
				VALUES ('old@conference.localhost', 'conference.localhost', 'zed@localhost', 0, '', '', FALSE, FALSE,
					FALSE, '', 10, 'moderators', 0, 'anyone', FALSE, '', '')`); err != nil {
				return err
			}
			got, err := rooms(ctx, m, "conference.localhost")
			if err != nil {
				return err
			}
			for _, r := range got {
				if r.JID == "old@conference.localhost" {
					if !r.Archive {
						return fmt.Errorf("Archive = false, want the column's default, true")
					}
					return m.DeleteRoom(ctx, r.JID)
				}
			}
			return fmt.Errorf("Rooms = %+v, without old@conference.localhost", got)
		}},
		{"other service untouched", func(ctx context.Context, m *storage.MUC) error {
			got, err := rooms(ctx, m, "muc.example.org")
			if err != nil {
				return err
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], other) {
				return fmt.Errorf("Rooms(muc.example.org) = %+v, want [%+v]", got, other)
			}
			return nil
		}},
	}
	m := db.MUC()
	for _, s := range steps {
		if err := s.run(t.Context(), m); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
}

// TestMUCDeleteUser: a deleted user's affiliations go from every room,
// its name from the rooms it created, and the rooms it alone owned are
// named; other users' affiliations and the rooms themselves stay. On
// every engine.
func TestMUCDeleteUser(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		m := db.MUC()
		room := func(name, creator string, affs ...storage.MUCAffiliation) storage.MUCRoom {
			return storage.MUCRoom{JID: name + "@conference.localhost", Service: "conference.localhost", Creator: creator,
				CreatedAt: time.UnixMilli(1_700_000_000_000).UTC(), Whois: "moderators", AllowPM: "anyone", MaxUsers: 10,
				Affiliations: affs}
		}
		aff := func(j, a string) storage.MUCAffiliation { return storage.MUCAffiliation{JID: j, Affiliation: a} }
		const alice, bob = "alice@localhost", "bob@localhost"
		all := []storage.MUCRoom{
			// alice the only owner: left without one.
			room("alone", alice, aff(alice, "owner"), aff(bob, "member")),
			// alice and bob own it: bob stays owner.
			room("shared", alice, aff(alice, "owner"), aff(bob, "owner")),
			// alice an admin, outcast elsewhere: removed, not listed.
			room("bobs", bob, aff(alice, "admin"), aff(bob, "owner")),
			room("banned", bob, aff(alice, "outcast"), aff(bob, "owner")),
			// Nothing of alice's.
			room("other", bob, aff(bob, "owner")),
		}
		for _, r := range all {
			if err := m.SaveRoom(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		ownerless, err := m.DeleteUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"alone@conference.localhost"}; !reflect.DeepEqual(ownerless, want) {
			t.Errorf("ownerless = %q, want %q", ownerless, want)
		}
		got, err := m.Rooms(ctx, "conference.localhost")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]storage.MUCRoom{
			"alone@conference.localhost":  room("alone", "", aff(bob, "member")),
			"shared@conference.localhost": room("shared", "", aff(bob, "owner")),
			"bobs@conference.localhost":   room("bobs", bob, aff(bob, "owner")),
			"banned@conference.localhost": room("banned", bob, aff(bob, "owner")),
			"other@conference.localhost":  room("other", bob, aff(bob, "owner")),
		}
		if len(got) != len(want) {
			t.Fatalf("%d rooms after DeleteUser, want %d: %+v", len(got), len(want), got)
		}
		for _, r := range got {
			if !reflect.DeepEqual(r, want[r.JID]) {
				t.Errorf("after DeleteUser:\n%+v\nwant\n%+v", r, want[r.JID])
			}
		}
		// Again: nothing left to delete, nothing to report.
		if ownerless, err := m.DeleteUser(ctx, alice); err != nil || len(ownerless) != 0 {
			t.Errorf("second DeleteUser = %q, %v; want nothing", ownerless, err)
		}
	})
}
