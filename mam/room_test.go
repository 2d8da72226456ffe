package mam_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	lounge  = "lounge@conference.localhost"
	private = "private@conference.localhost"
)

// createRoom joins a new room as its owner and configures it with the
// given extra fields (persistent always).
func (u *user) createRoom(t *testing.T, room, nick, fields string) {
	t.Helper()
	u.Send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, nick)
	u.Expect(wait, "the room's self-presence", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == room+"/"+nick && e.Contains("201")
	})
	u.Send("<iq type='set' to='%s' id='cfg-%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field>%s</x></query></iq>", room, room, fields)
	if e := u.Expect(wait, "configuration result", func(e xmpptest.Element) bool { return e.Attr("id") == "cfg-"+room }); e.Attr("type") != "result" {
		t.Fatalf("configuring %s: %s", room, e.Raw)
	}
}

// say sends group chat messages and returns the stanza ids of their
// reflections, by the room.
func (u *user) say(t *testing.T, room string, bodies ...string) []string {
	t.Helper()
	var ids []string
	for _, b := range bodies {
		u.Send("<message to='%s' type='groupchat' id='g-%s'><body>%s</body></message>", room, b, b)
		e := u.Expect(wait, "the reflection of "+b, func(e xmpptest.Element) bool { return e.Attr("id") == "g-"+b })
		id := stanzaID(t, e.Raw, room)
		if id == "" {
			t.Fatalf("reflection without the room's stanza id: %s", e.Raw)
		}
		ids = append(ids, id)
	}
	return ids
}

func ids(list []archived) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

// TestRoomArchive: a room's messages are archived with the ids its
// occupants saw; after a restart a user who never joined reads an open
// room's archive, paged; in a members-only room a member reads it and a
// stranger is refused.
func TestRoomArchive(t *testing.T) {
	engines(t, func(t *testing.T, o ...xmpptest.Option) {
		srv := xmpptest.Start(t, o...)
		addUsers(t, srv, "alice", "bob", "carol", "dave")
		alice := login(t, srv, "alice", "a").online()
		alice.createRoom(t, lounge, "Alice", "")
		loungeIDs := alice.say(t, lounge, "one", "two", "three")
		alice.createRoom(t, private, "Alice", "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
		alice.Send("<iq type='set' to='%s' id='aff'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='bob@localhost'/></query></iq>", private)
		alice.Expect(wait, "affiliation result", func(e xmpptest.Element) bool { return e.Attr("id") == "aff" })
		privateIDs := alice.say(t, private, "secret")
		alice.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, srv.Config)

		carol := login(t, srv, "carol", "c")
		res, f := carol.query(t, queryOpts{to: lounge, max: -1})
		if got := bodies(res); !slices.Equal(got, []string{"one", "two", "three"}) || !f.Complete {
			t.Fatalf("a late joiner reads %s: %q %+v", lounge, got, f)
		}
		if !slices.Equal(ids(res), loungeIDs) {
			t.Errorf("archive ids %q, the occupants saw %q", ids(res), loungeIDs)
		}
		for _, a := range res {
			if a.From != lounge || a.MsgFrom != lounge+"/Alice" {
				t.Errorf("result from %q of a message from %q", a.From, a.MsgFrom)
			}
		}
		page, f := carol.query(t, queryOpts{to: lounge, max: 2, before: ptr("")})
		if got := bodies(page); !slices.Equal(got, []string{"two", "three"}) || f.Complete || f.Count != "3" {
			t.Errorf("the room's last page of 2: %q %+v", got, f)
		}

		dave := login(t, srv, "dave", "d")
		if _, f := dave.query(t, queryOpts{to: private, max: -1}); f.Err != "forbidden" {
			t.Errorf("a stranger reads a members-only room's archive: %s", f.Raw)
		}
		bob := login(t, srv, "bob", "b")
		res, _ = bob.query(t, queryOpts{to: private, max: -1})
		if got := bodies(res); !slices.Equal(got, []string{"secret"}) || !slices.Equal(ids(res), privateIDs) {
			t.Errorf("a member reads the members-only room's archive: %q %q, want ids %q", got, ids(res), privateIDs)
		}
		// A password-protected room: readable by its occupants, who
		// gave the password, not by anyone else.
		alice = login(t, srv, "alice", "a2")
		alice.createRoom(t, "secret@conference.localhost", "Alice",
			"<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>sesame</value></field>")
		alice.say(t, "secret@conference.localhost", "hush")
		if _, f := dave.query(t, queryOpts{to: "secret@conference.localhost", max: -1}); f.Err != "not-authorized" {
			t.Errorf("someone outside a password-protected room reads its archive: %s", f.Raw)
		}
		dave.Send("<presence to='secret@conference.localhost/Dave'><x xmlns='http://jabber.org/protocol/muc'><password>sesame</password></x></presence>")
		dave.Expect(wait, "self-presence", func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("from") == "secret@conference.localhost/Dave"
		})
		if res, f := dave.query(t, queryOpts{to: "secret@conference.localhost", max: -1}); f.Err != "" || !slices.Equal(bodies(res), []string{"hush"}) {
			t.Errorf("an occupant reads the password-protected room's archive: %q %s", bodies(res), f.Raw)
		}

		// The room's disco#info says it archives.
		bob.Send("<iq type='get' id='di' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", lounge)
		if e := bob.Expect(wait, "disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "di" }); !e.Contains("urn:xmpp:mam:2") {
			t.Errorf("room disco#info: %s", e.Raw)
		}
	})
}

// logRecords keeps a server's log records.
type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecords) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *logRecords) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecords) WithGroup(string) slog.Handler      { return r }

func (r *logRecords) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// TestArchiveOutage: while the archive table cannot be written, messages
// are still delivered (with their stanza ids), the failure is logged
// once for the burst, and once the table is back every message is in the
// archive.
func TestArchiveOutage(t *testing.T) {
	engines(t, func(t *testing.T, o ...xmpptest.Option) {
		logs := &logRecords{}
		srv := xmpptest.StartLog(t, logs, o...)
		addUsers(t, srv, "alice", "bob")
		alice := login(t, srv, "alice", "a").online()
		bob := login(t, srv, "bob", "b").online()
		db := srv.DB().SQL()
		if _, err := db.Exec(`ALTER TABLE archive RENAME TO archive_away`); err != nil {
			t.Fatal(err)
		}
		var live []string
		for i := range 20 {
			alice.Send("<message to='bob@localhost' type='chat' id='o%d'><body>during %d</body></message>", i, i)
			m := bob.Expect(wait, "message", func(e xmpptest.Element) bool { return e.Attr("id") == "o"+itoa(i) })
			live = append(live, stanzaID(t, m.Raw, "bob@localhost"))
			time.Sleep(20 * time.Millisecond) // several batches fail
		}
		const failed = "ERROR mam: archive write failed; messages wait in memory"
		xmpptest.WaitFor(t, 5*time.Second, func() error {
			if logs.count(failed) == 0 {
				return errorf("no %q logged", failed)
			}
			return nil
		})
		if n := logs.count(failed); n != 1 {
			t.Errorf("%q logged %d times for one outage, want once", failed, n)
		}
		if _, err := db.Exec(`ALTER TABLE archive_away RENAME TO archive`); err != nil {
			t.Fatal(err)
		}
		var res []archived
		xmpptest.WaitFor(t, 10*time.Second, func() error {
			res, _ = bob.query(t, opts(-1))
			if len(res) != 20 {
				return errorf("%d messages archived", len(res))
			}
			return nil
		})
		if !slices.Equal(ids(res), live) {
			t.Errorf("archived ids %q, delivered with %q", ids(res), live)
		}
	})
}
