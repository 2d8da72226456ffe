package openfire

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// layouts are the schema versions the tests build: 22 (Openfire 4.0: no
// allowpm, no log stanzas, no encrypted properties), 26 (4.2: SCRAM
// columns on ofUser, ofPrivate), 38 (5.1: SCRAM columns, subject stanzas,
// private XML in PEP) and 40 (the newest: ofUserScram).
var layouts = []int{22, 26, 38, 40}

// want returns the migration.Data the test database must read as, with
// every JID of of.example moved to domain.
func want(v int, domain string) *migration.Data {
	rd := func(s string) string { return strings.ReplaceAll(s, ofDomain, domain) }
	users := map[string]*migration.User{}
	var list []migration.User
	for i, u := range testUsers {
		mu := migration.User{Username: u.name, Name: strings.ToUpper(u.name[:1]) + u.name[1:], Email: u.name + "@mail.example",
			CreatedAt: time.UnixMilli(1262304000000 + int64(i)*1000).UTC(), Password: u.password}
		if u.scram {
			sk, svk, salt := scramKeys(u.password, "salt-of-"+u.name, 4096)
			mu.Credentials = []storage.Credential{{Mechanism: "SCRAM-SHA-1", Salt: b64(salt), Iterations: 4096, StoredKey: b64(sk), ServerKey: b64(svk)}}
		}
		list = append(list, mu)
	}
	for i := range list {
		users[list[i].Username] = &list[i]
	}
	users["dave"].Password = "" // SCRAM only
	a := users["alice"]
	a.Roster = []storage.RosterItem{
		{Contact: rd("bob@of.example"), Name: "Bob", Groups: []string{"Friends", "Work"}, Subscription: "both", Visible: true},
		{Contact: rd("carol@of.example"), Name: "Carol", Subscription: "to", Visible: true},
		{Contact: rd("dave@of.example"), Groups: []string{"Friends"}, Subscription: "from", Ask: true, Visible: true},
		{Contact: rd("erin@of.example"), Subscription: "none", Ask: true, Visible: true},
		{Contact: "frank@remote.example", Subscription: "none", PendingIn: true},
		{Contact: "grace@remote.example", Name: "Grace", Subscription: "to", PendingIn: true, Visible: true},
	}
	if v >= 33 {
		a.Roster[4].Request = rd(`<presence xmlns="jabber:client" type="subscribe" from="frank@remote.example" to="alice@of.example"><status>let me in</status></presence>`)
	}
	a.VCard = []byte(vcardAlice)
	a.Private = map[string][]byte{"storage:bookmarks": []byte(rd(bookmarks))}
	b := users["bob"]
	b.Roster = []storage.RosterItem{{Contact: rd("alice@of.example"), Name: "Alice", Groups: []string{"Friends"}, Subscription: "both", Visible: true}}
	b.Offline = []storage.OfflineMessage{
		{ID: 10, Stamp: time.UnixMilli(1700000001000).UTC(), Stanza: []byte(rd(offline1))},
		{ID: 11, Stamp: time.UnixMilli(1700000002000).UTC(), Stanza: []byte(rd(offline2))},
	}
	conf, rooms := rd("conference.of.example"), rd("rooms.of.example")
	subjectNick := ""
	if v >= 38 {
		subjectNick = "Alice"
	}
	d := &migration.Data{
		Domain: domain,
		Users:  list,
		SharedGroups: []migration.SharedGroup{
			{Name: "hidden", DisplayName: "Hidden", Members: []string{rd("erin@of.example")}}, // shown to nobody, named by mgmt
			{Name: "mgmt", Description: "Managers", DisplayName: "mgmt", Members: []string{rd("alice@of.example"), "frank@remote.example"}, ShowTo: "groups", ShowToGroups: []string{"staff", "team", "hidden"}},
			{Name: "staff", Description: "All staff", DisplayName: "Staff", Members: []string{rd("alice@of.example"), rd("bob@of.example")}, ShowTo: "everybody"},
			{Name: "team", DisplayName: "Team", Members: []string{rd("carol@of.example"), rd("dave@of.example")}, ShowTo: "members"},
		},
		Rooms: []migration.Room{
			{
				MUCRoom: storage.MUCRoom{JID: "lounge@" + conf, Service: conf, Creator: rd("alice@of.example"), CreatedAt: time.UnixMilli(1600000000001).UTC(),
					Name: "The Lounge", Description: "chat", Public: true, Moderated: true, Password: "sesame", MaxUsers: 50, Whois: "anyone",
					HistoryLength: 30, AllowPM: "moderators", ChangeSubject: true, Archive: true, Subject: "Welcome all", SubjectNick: subjectNick,
					Affiliations: []storage.MUCAffiliation{
						{JID: rd("alice@of.example"), Affiliation: "owner"}, {JID: rd("bob@of.example"), Affiliation: "admin"},
						{JID: rd("carol@of.example"), Affiliation: "member"}, {JID: rd("dave@of.example"), Affiliation: "member"},
						{JID: "frank@remote.example", Affiliation: "member"}, {JID: "mallory@evil.example", Affiliation: "outcast"},
					}},
				Nicks: map[string]string{rd("carol@of.example"): "Caro", "frank@remote.example": "Frankie"},
				Log: []storage.MUCMessage{
					{Seq: 1, Nick: "Alice", Sender: rd("alice@of.example/phone"), Stamp: time.UnixMilli(500).UTC(), Payload: []byte("<subject>Welcome all</subject>")},
					{Seq: 2, ID: "g1", Nick: "Alice", Sender: rd("alice@of.example/phone"), Stamp: time.UnixMilli(1000).UTC(), Payload: []byte("<body>hello</body>")},
					{Seq: 3, Nick: "Bob", Sender: rd("bob@of.example/pc"), Stamp: time.UnixMilli(2000).UTC(), Payload: []byte("<body>a&lt;b</body>")},
				},
			},
			{
				MUCRoom: storage.MUCRoom{JID: "secret@" + rooms, Service: rooms, Creator: rd("dave@of.example"), CreatedAt: time.UnixMilli(1600000000002).UTC(),
					Name: "Secret", MembersOnly: true, MaxUsers: 30, Whois: "moderators", HistoryLength: 25, AllowPM: "anyone",
					Affiliations: []storage.MUCAffiliation{{JID: rd("dave@of.example"), Affiliation: "owner"}}},
			},
		},
	}
	if v < 23 {
		d.Rooms[0].AllowPM = "anyone" // no allowpm column yet
	}
	if v < 24 {
		d.Rooms[0].Log[1].ID = "" // no stanza column yet
	}
	return d
}

func b64(s string) []byte {
	b, err := base64Std(s)
	if err != nil {
		panic(err)
	}
	return b
}

// check compares got with want part by part, so a failure says where.
func check(t *testing.T, got, want *migration.Data) {
	t.Helper()
	show := func(v any) string { b, _ := json.MarshalIndent(v, "", " "); return string(b) }
	if got.Domain != want.Domain {
		t.Errorf("Domain = %q, want %q", got.Domain, want.Domain)
	}
	if len(got.Users) != len(want.Users) {
		t.Fatalf("%d users, want %d: %s", len(got.Users), len(want.Users), show(got.Users))
	}
	for i := range want.Users {
		g, w := got.Users[i], want.Users[i]
		if !reflect.DeepEqual(g, w) {
			t.Errorf("user %s:\n got %s\nwant %s", w.Username, show(g), show(w))
		}
		// A decrypted password verifies against the keys carried with it.
		for _, c := range g.Credentials {
			if g.Password != "" && !verifies(g.Password, c) {
				t.Errorf("user %s: password does not verify against %s", g.Username, c.Mechanism)
			}
		}
	}
	if !reflect.DeepEqual(got.SharedGroups, want.SharedGroups) {
		t.Errorf("shared groups:\n got %s\nwant %s", show(got.SharedGroups), show(want.SharedGroups))
	}
	if !reflect.DeepEqual(got.Rooms, want.Rooms) {
		t.Errorf("rooms:\n got %s\nwant %s", show(got.Rooms), show(want.Rooms))
	}
	// What was found but not carried is said.
	for _, s := range []string{"nobody", "ghost"} {
		if !strings.Contains(strings.Join(got.Skipped, "\n"), s) {
			t.Errorf("Skipped does not mention %s: %q", s, got.Skipped)
		}
	}
}

func read(t *testing.T, opts Options) *migration.Data {
	t.Helper()
	d, err := Read(context.Background(), opts)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return d
}

func TestReadPostgres(t *testing.T) {
	for _, v := range layouts {
		t.Run(name(v), func(t *testing.T) {
			dsn := postgresDSN(t, build(t, v, passwordKey))
			check(t, read(t, Options{DSN: dsn, SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain}), want(v, ofDomain))
		})
	}
}

func TestReadMariaDB(t *testing.T) {
	for _, v := range layouts {
		t.Run(name(v), func(t *testing.T) {
			dsn := mariaDBDSN(t, build(t, v, passwordKey))
			check(t, read(t, Options{DSN: dsn, SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain}), want(v, ofDomain))
		})
	}
}

func TestReadHSQLDB(t *testing.T) {
	for _, v := range layouts {
		t.Run(name(v), func(t *testing.T) {
			p := build(t, v, passwordKey).writeScript(t)
			check(t, read(t, Options{HSQLDBScript: p, SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain}), want(v, ofDomain))
		})
	}
}

func name(v int) string { return "schema" + strconvItoa(v) }
