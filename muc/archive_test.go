package muc_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage/storagetest"
)

const (
	fieldArchive    = "muc#roomconfig_enablearchiving"
	fieldPersistent = "muc#roomconfig_persistentroom"
)

// createPersistent makes u create room as a persistent room, with extra
// fields in its first configuration, and drops what it received.
func (u *user) createPersistent(t *testing.T, room, nick, extra string) {
	t.Helper()
	if got := u.join(room, nick, ""); len(got) != 2 || !strings.Contains(got[0].Raw, "201") {
		t.Fatalf("%s creating %s: %q", u.name, room, got)
	}
	u.configure(t, room, field(fieldPersistent, "1")+extra)
}

// archiveSetting returns the value of the archiving field in the
// configuration form of room as u, an owner, gets it; "" when the form
// has no such field.
func (u *user) archiveSetting(t *testing.T, room string) string {
	t.Helper()
	u.Send("<iq type='get' id='form' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", room)
	got := u.sync()
	if len(got) != 1 || got[0].Attr("type") != "result" {
		t.Fatalf("%s asking for the form of %s: %q", u.name, room, got)
	}
	m := regexp.MustCompile(`type='boolean' var='` + fieldArchive + `'><value>([^<]*)</value></field>`).FindStringSubmatch(canon(t, got[0].Raw))
	if m == nil {
		return ""
	}
	return m[1]
}

// features returns the features of room's disco#info as u gets it.
func (u *user) features(t *testing.T, room string) []string {
	t.Helper()
	u.Send("<iq type='get' id='info' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room)
	got := u.sync()
	if len(got) != 1 || got[0].Attr("type") != "result" {
		t.Fatalf("%s asking for the disco#info of %s: %q", u.name, room, got)
	}
	var fs []string
	for _, m := range regexp.MustCompile(`<feature var='([^']*)'`).FindAllStringSubmatch(got[0].Raw, -1) {
		fs = append(fs, m[1])
	}
	return fs
}

var archiveFeatures = []string{"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"}

// TestArchiveStanzaID: in a room that archives, a group chat message with
// a body goes to the archive once, as the room broadcasts it, and every
// copy (the sender's included) and the history carry the stanza id the
// archive gave, by the room; a stanza-id claiming to be the room's is
// removed first, another stays. Subject changes and messages without a
// body are not archived.
func TestArchiveStanzaID(t *testing.T) {
	a := startArchived(t, storagetest.SQLite(t))
	alice, bob := a.login(t, "alice"), a.login(t, "bob")
	alice.createPersistent(t, lounge, "Alice", "")
	bob.join(lounge, "Bob", "")
	alice.sync()

	// The forged one in another case: the same JID.
	for i, by := range []string{lounge, "LOUNGE@Conference.localhost"} {
		id := fmt.Sprintf("m%d", i+1)
		bob.Send("<message to='%s' type='groupchat' id='%s'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='forged'/>"+
			"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='own'/></message>", lounge, id, by)
		gotBob, gotAlice := bob.sync(), alice.sync()
		appends, _, _ := a.archive.take()
		if len(appends) != 1 {
			t.Fatalf("message %s: %d Append calls, want 1: %+v", id, len(appends), appends)
		}
		ap := appends[0]
		wantMsg := "<message type='groupchat' id='" + id + "' from='" + lounge + "/Bob'><body>hi</body>" +
			"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='own'/></message>"
		if ap.room != lounge || ap.nick != "Bob" || canon(t, ap.msg) != canon(t, wantMsg) || strings.Contains(ap.msg, " to=") {
			t.Errorf("message %s: Append(%q, %q, %q), want (%q, %q, %q)", id, ap.room, ap.nick, ap.msg, lounge, "Bob", wantMsg)
		}
		if got := stanzaIDs(t, ap.msg); !slices.Equal(got, []string{"bob@localhost own"}) {
			t.Errorf("message %s: archived stanza ids %q, want only bob's", id, got)
		}
		for _, c := range []struct {
			u   *user
			got []xmpptest.Element
		}{{bob, gotBob}, {alice, gotAlice}} {
			expect(t, c.u.name, c.got, "<message from='"+lounge+"/Bob' to='"+c.u.full+"' type='groupchat' id='"+id+"'><body>hi</body>"+
				"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='own'/><stanza-id xmlns='urn:xmpp:sid:0' by='"+lounge+"' id='"+ap.id+"'/></message>")
			if len(c.got) == 1 {
				if got, want := stanzaIDs(t, c.got[0].Raw), []string{"bob@localhost own", lounge + " " + ap.id}; !slices.Equal(got, want) {
					t.Errorf("message %s: %s got stanza ids %q, want %q", id, c.u.name, got, want)
				}
			}
		}
	}

	// Not archived: a subject change, a message without a body.
	alice.Send("<message to='%s' type='groupchat' id='s'><subject>Fire</subject></message>", lounge)
	alice.sync()
	bob.Send("<message to='%s' type='groupchat' id='c'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", lounge)
	expect(t, "bob", bob.sync(),
		"<message from='"+lounge+"/Alice' to='"+bob.full+"' type='groupchat' id='s'><subject>Fire</subject></message>",
		"<message from='"+lounge+"/Bob' to='"+bob.full+"' type='groupchat' id='c'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.sync()
	if appends, _, _ := a.archive.take(); len(appends) != 0 {
		t.Errorf("Append called for a subject change or a message without a body: %+v", appends)
	}

	// The history has the stanza ids.
	carol := a.login(t, "carol")
	got := carol.join(lounge, "Carol", "")
	var ids [][]string
	for _, e := range got {
		if strings.Contains(e.Raw, "<body>") {
			ids = append(ids, stanzaIDs(t, e.Raw))
		}
	}
	want := [][]string{{"bob@localhost own", lounge + " arch-1"}, {"bob@localhost own", lounge + " arch-2"}}
	if !slices.EqualFunc(ids, want, slices.Equal) {
		t.Errorf("history stanza ids %q, want %q", ids, want)
	}
}

// TestForgedStanzaID: without an archive, or in a room that does not
// archive, a stanza-id claiming to be the room's is removed too, another
// stays, and nothing is added. Without an archive, neither the form nor
// disco#info mention archives.
func TestForgedStanzaID(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (login func(string) *user, archive *recordArchive)
	}{
		{"no archive", func(t *testing.T) (func(string) *user, *recordArchive) {
			srv := xmpptest.Start(t, noUserArchive)
			return func(name string) *user { return login(t, srv, name) }, nil
		}},
		{"archiving off", func(t *testing.T) (func(string) *user, *recordArchive) {
			a := startArchived(t, storagetest.SQLite(t))
			return func(name string) *user { return a.login(t, name) }, a.archive
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			login, archive := tc.start(t)
			alice, bob := login("alice"), login("bob")
			alice.createRoom(t, lounge, "Alice") // temporary: not archived
			bob.join(lounge, "Bob", "")
			alice.sync()
			bob.Send("<message to='%s' type='groupchat' id='m'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='forged'/>"+
				"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='own'/></message>", lounge, lounge)
			for _, u := range []*user{bob, alice} {
				got := u.sync()
				expect(t, u.name, got, "<message from='"+lounge+"/Bob' to='"+u.full+"' type='groupchat' id='m'><body>hi</body>"+
					"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='own'/></message>")
				if len(got) == 1 {
					if ids := stanzaIDs(t, got[0].Raw); !slices.Equal(ids, []string{"bob@localhost own"}) {
						t.Errorf("%s got stanza ids %q, want only bob's", u.name, ids)
					}
				}
			}
			for _, f := range alice.features(t, lounge) {
				if slices.Contains(archiveFeatures, f) {
					t.Errorf("disco#info of a room that does not archive lists %s", f)
				}
			}
			setting := alice.archiveSetting(t, lounge)
			if archive == nil {
				if setting != "" {
					t.Errorf("without an archive the form has %s = %q", fieldArchive, setting)
				}
				return
			}
			if setting != "0" {
				t.Errorf("%s of a temporary room = %q, want 0", fieldArchive, setting)
			}
			if appends, _, _ := archive.take(); len(appends) != 0 {
				t.Errorf("Append called in a room that does not archive: %+v", appends)
			}
		})
	}
}

// TestArchiveSetting: muc#roomconfig_enablearchiving is on for a room
// persistent from its first configuration and off for a temporary one;
// a room made persistent later keeps its setting unless the form changes
// it; a change is announced (170, 171), stored, and there after a
// restart. On both storage engines.
func TestArchiveSetting(t *testing.T) {
	for _, engine := range []struct {
		name string
		e    func(t *testing.T) storagetest.Engine
	}{
		{"sqlite", func(t *testing.T) storagetest.Engine { return storagetest.SQLite(t) }},
		{"postgres", func(t *testing.T) storagetest.Engine { return storagetest.Postgres(t) }},
	} {
		t.Run(engine.name, func(t *testing.T) { testArchiveSetting(t, engine.e(t)) })
	}
}

func testArchiveSetting(t *testing.T, e storagetest.Engine) {
	const (
		temp  = "temp@" + service
		quiet = "quiet@" + service
	)
	a := startArchived(t, e)
	alice, bob := a.login(t, "alice"), a.login(t, "bob")
	alice.createRoom(t, temp, "Alice")
	alice.createPersistent(t, lounge, "Alice", "")
	alice.createPersistent(t, quiet, "Alice", field(fieldArchive, "0"))
	for _, c := range []struct{ room, want string }{{temp, "0"}, {lounge, "1"}, {quiet, "0"}} {
		if got := alice.archiveSetting(t, c.room); got != c.want {
			t.Errorf("%s of new %s = %q, want %q", fieldArchive, c.room, got, c.want)
		}
	}
	alice.configure(t, temp, field(fieldPersistent, "1"))
	if got := alice.archiveSetting(t, temp); got != "0" {
		t.Errorf("%s of %s made persistent = %q, want 0 (kept)", fieldArchive, temp, got)
	}
	alice.Send("<iq type='set' id='c' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>",
		lounge, field(fieldArchive, "perhaps"))
	expectError(t, "alice", alice.sync(), lounge, "modify", "not-acceptable")

	// Changes are announced with 104 and 170 or 171.
	bob.join(lounge, "Bob", "")
	alice.sync()
	status := func(room, to string, codes ...int) string {
		var b strings.Builder
		for _, c := range codes {
			fmt.Fprintf(&b, "<status code='%d'/>", c)
		}
		return "<message from='" + room + "' to='" + to + "' type='groupchat'><x xmlns='http://jabber.org/protocol/muc#user'>" + b.String() + "</x></message>"
	}
	expect(t, "alice", alice.configure(t, lounge, field(fieldArchive, "0")), status(lounge, alice.full, 104, 171))
	expect(t, "bob", bob.sync(), status(lounge, bob.full, 104, 171))
	expect(t, "alice", alice.configure(t, temp, field(fieldArchive, "1")), status(temp, alice.full, 104, 170))
	expect(t, "alice", alice.configure(t, temp, field(fieldArchive, "1")), status(temp, alice.full, 104))

	for _, u := range []*user{alice, bob} {
		u.Close()
	}
	a.restart(t)
	alice = relogin(t, a.Server, "alice")
	for _, c := range []struct{ room, want string }{{temp, "1"}, {lounge, "0"}, {quiet, "0"}} {
		if got := alice.archiveSetting(t, c.room); got != c.want {
			t.Errorf("%s of %s after restart = %q, want %q", fieldArchive, c.room, got, c.want)
		}
	}
	// And the rooms do as their setting says.
	for _, room := range []string{lounge, temp} {
		alice.join(room, "Alice", "")
		alice.Send("<message to='%s' type='groupchat' id='m'><body>hi</body></message>", room)
		alice.sync()
	}
	appends, _, _ := a.archive.take()
	if len(appends) != 1 || appends[0].room != temp {
		t.Errorf("Append calls after restart: %+v, want one for %s", appends, temp)
	}
}

// TestArchiveDisco: a room's disco#info lists MAM and stanza ids while
// the room archives.
func TestArchiveDisco(t *testing.T) {
	a := startArchived(t, storagetest.SQLite(t))
	alice := a.login(t, "alice")
	alice.createPersistent(t, lounge, "Alice", "")
	if got := alice.features(t, lounge); !slices.Equal(got[len(got)-3:], archiveFeatures) {
		t.Errorf("disco#info of a room that archives: %q, want it to end with %q", got, archiveFeatures)
	}
	alice.configure(t, lounge, field(fieldArchive, "0"))
	for _, f := range alice.features(t, lounge) {
		if slices.Contains(archiveFeatures, f) {
			t.Errorf("disco#info of a room that stopped archiving lists %s", f)
		}
	}
}

// TestArchiveQuery: MAM requests to a room that archives reach the
// archive when the requester may read it: in a members-only room its
// members, admins and owners; in another anyone; never an outcast. The
// archive's result messages come first, then the IQ result with its
// payload; its errors go back as stanza errors. A room that does not
// archive refuses with service-unavailable.
func TestArchiveQuery(t *testing.T) {
	const (
		club = "club@" + service
		temp = "temp@" + service
	)
	a := startArchived(t, storagetest.SQLite(t))
	alice := a.login(t, "alice")
	users := map[string]*user{"alice": alice}
	for _, name := range []string{"bob", "carol", "dave", "erin"} {
		users[name] = a.login(t, name)
	}
	alice.createPersistent(t, club, "Alice", field("muc#roomconfig_membersonly", "1"))
	alice.adminSet(club, "a", "<item jid='bob@localhost' affiliation='member'/><item jid='carol@localhost' affiliation='admin'/>"+
		"<item jid='dave@localhost' affiliation='outcast'/>")
	alice.createPersistent(t, lounge, "Alice", "")
	alice.adminSet(lounge, "a", "<item jid='dave@localhost' affiliation='outcast'/>")
	alice.createRoom(t, temp, "Alice")
	a.archive.take()

	const (
		query     = "<query xmlns='urn:xmpp:mam:2' queryid='%s'/>"
		metadata  = "<metadata xmlns='urn:xmpp:mam:2'/>"
		forbidden = "forbidden"
	)
	for i, tc := range []struct {
		who, room, typ, payload string
		errType, errCond        string // "" when the archive answers
	}{
		0:  {"bob", club, "set", query, "", ""},
		1:  {"carol", club, "set", query, "", ""},
		2:  {"alice", club, "get", metadata, "", ""},
		3:  {"erin", club, "set", query, "cancel", forbidden},
		4:  {"dave", club, "set", query, "auth", forbidden},
		5:  {"dave", club, "get", metadata, "auth", forbidden},
		6:  {"erin", lounge, "set", query, "", ""},
		7:  {"erin", lounge, "get", query, "", ""},
		8:  {"dave", lounge, "set", query, "auth", forbidden},
		9:  {"erin", temp, "set", query, "cancel", "service-unavailable"},
		10: {"alice", temp, "get", metadata, "cancel", "service-unavailable"},
		11: {"erin", lounge, "set", metadata, "cancel", "service-unavailable"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			u := users[tc.who]
			payload := tc.payload
			if strings.Contains(payload, "%s") {
				payload = fmt.Sprintf(payload, fmt.Sprint("q", i))
			}
			u.Send("<iq type='%s' id='mam' to='%s'>%s</iq>", tc.typ, tc.room, payload)
			got := u.sync()
			_, queries, _ := a.archive.take()
			if tc.errCond != "" {
				expectError(t, tc.who, got, tc.room, tc.errType, tc.errCond)
				if len(queries) != 0 {
					t.Errorf("the archive was asked: %+v", queries)
				}
				return
			}
			qid := ""
			if strings.Contains(tc.payload, "queryid") {
				qid = fmt.Sprint("q", i)
			}
			expect(t, tc.who, got,
				"<message from='"+tc.room+"' to='"+u.full+"'><result xmlns='urn:xmpp:mam:2' queryid='"+qid+"' id='arch-1'><forwarded xmlns='urn:xmpp:forward:0'>"+
					"<message type='groupchat' from='"+tc.room+"/Old'><body>old</body></message></forwarded></result></message>",
				"<iq type='result' id='mam' from='"+tc.room+"' to='"+u.full+"'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>")
			if len(queries) != 1 || queries[0].room != tc.room || queries[0].from != u.full || queries[0].typ != tc.typ ||
				queries[0].payload.Space != "urn:xmpp:mam:2" {
				t.Errorf("archive queries %+v, want one of %s to %s", queries, u.full, tc.room)
			}
		})
	}

	t.Run("archive errors", func(t *testing.T) {
		bob := users["bob"]
		bob.Send("<iq type='set' id='r' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='refuse'/></iq>", lounge)
		expectError(t, "bob", bob.sync(), lounge, "cancel", "item-not-found")
		bob.Send("<iq type='set' id='f' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='fail'/></iq>", lounge)
		expectError(t, "bob", bob.sync(), lounge, "wait", "internal-server-error")
	})
}

// TestArchiveForget: a room destroyed by its owner has its archive
// deleted, and so has a temporary room that archived when its last
// occupant leaves; one that never did is not asked about.
func TestArchiveForget(t *testing.T) {
	const (
		temp  = "temp@" + service
		quiet = "quiet@" + service
	)
	a := startArchived(t, storagetest.SQLite(t))
	alice := a.login(t, "alice")
	alice.createPersistent(t, lounge, "Alice", "")
	alice.Send("<iq type='set' id='d' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>", lounge)
	alice.sync()
	if _, _, forgot := a.archive.take(); !slices.Equal(forgot, []string{lounge}) {
		t.Errorf("after destroying %s, Forget(%q)", lounge, forgot)
	}

	alice.createRoom(t, quiet, "Alice")
	alice.Send("<message to='%s' type='groupchat' id='m'><body>hi</body></message>", quiet)
	alice.Send("<presence type='unavailable' to='%s/Alice'/>", quiet)
	alice.sync()
	if _, _, forgot := a.archive.take(); len(forgot) != 0 {
		t.Errorf("after the last occupant left a room that did not archive, Forget(%q)", forgot)
	}

	alice.createRoom(t, temp, "Alice")
	alice.configure(t, temp, field(fieldArchive, "1"))
	alice.Send("<message to='%s' type='groupchat' id='m'><body>hi</body></message>", temp)
	alice.Send("<presence type='unavailable' to='%s/Alice'/>", temp)
	alice.sync()
	appends, _, forgot := a.archive.take()
	if len(appends) != 1 || !slices.Equal(forgot, []string{temp}) {
		t.Errorf("a temporary room that archived, left empty: Append %+v, Forget(%q); want one Append and Forget(%s)", appends, forgot, temp)
	}
}
