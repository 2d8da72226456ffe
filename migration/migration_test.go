package migration_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/migration/openfirexml"
	"xmppd.dev/xmppd/migration/xep0227"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
	"xmppd.dev/xmppd/vcard"
)

const domain = "localhost"

// offlineStamp is when populate's first offline message was stored.
var offlineStamp = time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()

// populate writes, through the repositories as the server would, two
// users with everything an export carries.
func populate(t *testing.T, db *storage.DB) {
	t.Helper()
	ctx := t.Context()
	a := auth.New(db.Accounts(), auth.MinIterations)
	for _, u := range []struct{ local, pw string }{{"alice", "alice-pw"}, {"bob", "bob-pw"}} {
		if err := a.Create(ctx, jid.MustParse(u.local+"@"+domain), u.pw); err != nil {
			t.Fatal(err)
		}
	}
	r := db.Rosters()
	for _, p := range []struct {
		owner string
		it    storage.RosterItem
	}{
		{"alice@localhost", storage.RosterItem{Contact: "bob@localhost", Name: "Bob & co", Groups: []string{"Friends", "Work"}, Subscription: "both", Visible: true}},
		{"alice@localhost", storage.RosterItem{Contact: "carol@elsewhere.example", Subscription: "none", Ask: true, Visible: true}},
		{"alice@localhost", storage.RosterItem{Contact: "dave@elsewhere.example", Subscription: "none", PendingIn: true, Request: "<presence type='subscribe' from='dave@elsewhere.example'/>"}},
		{"bob@localhost", storage.RosterItem{Contact: "alice@localhost", Subscription: "both", Approved: false, Visible: true}},
	} {
		if _, err := r.Put(ctx, p.owner, p.it, true); err != nil {
			t.Fatal(err)
		}
	}
	// Recent: the server's sweep deletes old offline messages at start.
	stamp := offlineStamp
	for _, m := range []string{
		"<message from='bob@localhost/phone' to='alice@localhost' type='chat' id='m1'><body>hello &lt;alice&gt;</body></message>",
		"<message from='carol@elsewhere.example/x' to='alice@localhost' type='chat'><body>second</body><thread>t</thread></message>",
	} {
		if _, err := db.Offline().Push(ctx, "alice@localhost", stamp, []byte(m), storage.OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		stamp = stamp.Add(time.Second)
	}
	vc, photo, err := vcard.Parse([]byte("<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard>"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.VCards().Set(ctx, "alice@localhost", vc, photo); err != nil {
		t.Fatal(err)
	}
	if err := db.PrivateXML().Set(ctx, "alice@localhost", map[string][]byte{
		"storage:bookmarks": []byte("<storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' autojoin='true'></conference></storage>"),
		"urn:x:notes":       []byte("<notes xmlns='urn:x:notes'>n</notes>"),
	}); err != nil {
		t.Fatal(err)
	}
}

// snapshot is what storage holds of the domain's users, for comparing two
// databases; offline message ids are left out (each database numbers its
// own).
func snapshot(t *testing.T, db *storage.DB) *migration.Data {
	t.Helper()
	d, err := migration.ReadStorage(t.Context(), db, domain)
	if err != nil {
		t.Fatal(err)
	}
	for i := range d.Users {
		for k := range d.Users[i].Offline {
			d.Users[i].Offline[k].ID = 0
		}
	}
	return d
}

func startOn(t *testing.T, e storagetest.Engine) *xmpptest.Server {
	t.Helper()
	return xmpptest.Start(t, func(c *config.Config) {
		c.Storage.Driver, c.Storage.DSN = e.Driver, e.DSN
	})
}

// TestXEP0227RoundTrip exports a populated database to a XEP-0227 file,
// imports the file into a fresh database (twice), and finds the same
// state; then a server on it lets the users log in with their passwords
// over SCRAM-SHA-1, SCRAM-SHA-256 and PLAIN and serves their roster,
// offline messages and vCard.
func TestXEP0227RoundTrip(t *testing.T) {
	for _, pair := range [][2]storagetest.Engine{
		{storagetest.SQLite(t), storagetest.SQLite(t)},
		{storagetest.Postgres(t), storagetest.Postgres(t)},
	} {
		t.Run(pair[0].Name, func(t *testing.T) {
			ctx := t.Context()
			src := storagetest.Open(t, pair[0])
			populate(t, src)
			var file bytes.Buffer
			if err := xep0227.Write(&file, snapshot(t, src)); err != nil {
				t.Fatal(err)
			}
			want := snapshot(t, src)

			dstEngine := pair[1]
			dst := storagetest.Open(t, dstEngine)
			for run := range 2 {
				d, err := xep0227.Read(bytes.NewReader(file.Bytes()), "export.xml")
				if err != nil {
					t.Fatal(err)
				}
				rep, err := migration.Write(ctx, dst, d, migration.WriteOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Users != 2 || rep.RosterItems != 4 || rep.OfflineMessages != 2 || rep.VCards != 1 || rep.PrivateXML != 2 {
					t.Errorf("run %d: report %+v", run, rep)
				}
				if got := snapshot(t, dst); !reflect.DeepEqual(got, want) {
					t.Fatalf("run %d: imported state differs from the exported one:\n got %+v\nwant %+v", run, got, want)
				}
			}
			dst.Close()

			srv := startOn(t, dstEngine)
			for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256, sasl.Plain} {
				c := srv.Login(t, jid.MustParse("bob@localhost"), "bob-pw", xmpptest.LoginOptions{Resource: m.Name, Mechs: []sasl.Mechanism{m}})
				c.Close()
			}
			alice := srv.Login(t, jid.MustParse("alice@localhost"), "alice-pw", xmpptest.LoginOptions{Resource: "r"})
			checkAlice(t, alice)

			// The server holds the instance lock: an import would be
			// refused.
			other, err := storage.Open(ctx, dstEngine.Driver, dstEngine.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if err := other.LockInstance(ctx); !errors.Is(err, storage.ErrLocked) {
				t.Errorf("LockInstance while the server runs: %v, want ErrLocked", err)
			}
		})
	}
}

// checkAlice asserts, over XMPP, what populate gave alice.
func checkAlice(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	c.Send("<presence/>")
	var msgs []string
	dave := false
	deadline := time.After(5 * time.Second)
	for len(msgs) < 2 || !dave {
		select {
		case e := <-c.Elements():
			switch {
			case e.Name.Local == "message":
				msgs = append(msgs, e.Raw)
			case e.Name.Local == "presence" && e.Attr("type") == "subscribe" && strings.HasPrefix(e.Attr("from"), "dave@"):
				dave = true
			}
		case <-deadline:
			t.Fatalf("after 5s: offline messages %q, dave's request presented again: %v", msgs, dave)
		}
	}
	if !strings.Contains(msgs[0], "hello &lt;alice&gt;") || !strings.Contains(msgs[0], offlineStamp.Format("2006-01-02T15:04:05.000Z")) || !strings.Contains(msgs[1], "second") {
		t.Errorf("offline messages: %q", msgs)
	}
	c.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	r := c.Expect(5*time.Second, "roster result", func(e xmpptest.Element) bool { return e.Attr("id") == "r1" })
	for _, s := range []string{"jid='bob@localhost'", "Bob &amp; co", "<group>Friends</group>", "<group>Work</group>", "carol@elsewhere.example"} {
		if !strings.Contains(r.Raw, s) {
			t.Errorf("roster lacks %s: %s", s, r.Raw)
		}
	}
	if strings.Contains(r.Raw, "dave@") {
		t.Errorf("roster shows the item kept only for dave's request: %s", r.Raw)
	}
	c.Send("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
	v := c.Expect(5*time.Second, "vCard result", func(e xmpptest.Element) bool { return e.Attr("id") == "v1" })
	if !strings.Contains(v.Raw, "Alice Liddell") {
		t.Errorf("vCard: %s", v.Raw)
	}
}

const openfireXML = `<?xml version="1.0" encoding="UTF-8"?>
<Openfire>
  <User>
    <Username>Alice</Username>
    <Password>s3cret pass</Password>
    <Email>alice@example.org</Email>
    <Name>Alice A.</Name>
    <CreationDate>1600000000000</CreationDate>
    <ModifiedDate>1600000000000</ModifiedDate>
    <Roster>
      <Item jid="bob@old.example" askstatus="-1" recvstatus="-1" substatus="3" name="Bob">
        <Group>Friends</Group>
      </Item>
      <Item jid="carol@other.example" askstatus="0" recvstatus="-1" substatus="0" name="">
      </Item>
      <Item jid="gone@other.example" askstatus="-1" recvstatus="-1" substatus="-1"/>
      <Item jid="dave@other.example" askstatus="-1" recvstatus="1" substatus="0"/>
    </Roster>
  </User>
  <User>
    <Username>bob</Username>
    <Password></Password>
    <Roster/>
  </User>
  <User>
    <Username>bad user</Username>
    <Password>x</Password>
  </User>
</Openfire>`

// TestOpenfireXML imports the User Import/Export plugin's file with its
// domain rewritten; alice logs in with her password over every mechanism
// and sees her roster and the vCard made of her name and address; bob,
// without a password, and the invalid username are reported.
func TestOpenfireXML(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := t.Context()
			db := storagetest.Open(t, e)
			d, err := openfirexml.Read(strings.NewReader(openfireXML), "users.xml", "old.example")
			if err != nil {
				t.Fatal(err)
			}
			d.RewriteDomain(domain)
			// A dry run first: it writes nothing.
			rep, err := migration.Write(ctx, db, d, migration.WriteOptions{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if accts, _ := db.Accounts().List(ctx); len(accts) != 0 {
				t.Fatalf("dry run wrote accounts: %+v", accts)
			}
			if rep.Users != 2 || rep.RosterItems != 3 || len(rep.Invalid) != 1 || len(rep.NoPassword) != 1 ||
				rep.NoPassword[0].Who != "bob@localhost" || rep.DerivedFromPassword != 1 {
				t.Errorf("dry run report %+v", rep)
			}
			rep2, err := migration.Write(ctx, db, d, migration.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep, rep2) {
				t.Errorf("dry run and import reports differ:\n%+v\n%+v", rep, rep2)
			}
			items, err := db.Rosters().All(ctx, "alice@localhost")
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 3 || items[0].Contact != "bob@localhost" || items[0].Subscription != "both" || items[0].Groups[0] != "Friends" ||
				items[1].Contact != "carol@other.example" || !items[1].Ask ||
				items[2].Contact != "dave@other.example" || !items[2].PendingIn || items[2].Visible {
				t.Errorf("alice's roster %+v", items)
			}
			db.Close()

			srv := startOn(t, e)
			for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256, sasl.Plain} {
				c := srv.Login(t, jid.MustParse("alice@localhost"), "s3cret pass", xmpptest.LoginOptions{Resource: m.Name, Mechs: []sasl.Mechanism{m}})
				c.Close()
			}
			c := srv.Login(t, jid.MustParse("alice@localhost"), "s3cret pass", xmpptest.LoginOptions{Resource: "r"})
			c.Send("<presence/>")
			c.Expect(5*time.Second, "dave's request", func(e xmpptest.Element) bool {
				return e.Name.Local == "presence" && e.Attr("type") == "subscribe" && e.Attr("from") == "dave@other.example"
			})
			c.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
			if r := c.Expect(5*time.Second, "roster", func(e xmpptest.Element) bool { return e.Attr("id") == "r1" }); !strings.Contains(r.Raw, "<item jid='bob@localhost' name='Bob' subscription='both'><group>Friends</group></item>") ||
				!strings.Contains(r.Raw, "carol@other.example") || strings.Contains(r.Raw, "dave@") {
				t.Errorf("roster: %s", r.Raw)
			}
			c.Send("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
			v := c.Expect(5*time.Second, "vCard result", func(e xmpptest.Element) bool { return e.Attr("id") == "v1" })
			if !strings.Contains(v.Raw, "Alice A.") || !strings.Contains(v.Raw, "alice@example.org") {
				t.Errorf("vCard: %s", v.Raw)
			}
			if _, err := srv.TryLogin(t, jid.MustParse("bob@localhost"), "", xmpptest.LoginOptions{}); err == nil {
				t.Error("bob, imported without a password, logged in")
			}
		})
	}
}

// TestBadXML: files that are cut short, declare entities, nest too deep
// or hold huge elements are refused with an error that says where and
// why, before anything is written.
func TestBadXML(t *testing.T) {
	var file bytes.Buffer
	d := &migration.Data{Domain: domain, Users: []migration.User{{Username: "alice", Password: "pw",
		Roster: []storage.RosterItem{{Contact: "bob@localhost", Subscription: "both", Visible: true}}}}}
	if err := xep0227.Write(&file, d); err != nil {
		t.Fatal(err)
	}
	good := file.String()
	head := "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='alice' password='pw'>"
	tail := "</user></host></server-data>"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"truncated", good[:len(good)*2/3], "truncated"},
		{"truncated between elements", good[:strings.Index(good, "</host>")], "truncated"},
		{"doctype", "<?xml version='1.0'?><!DOCTYPE server-data [<!ENTITY x 'y'>]>" + good[strings.Index(good, "<server-data"):], "DOCTYPE"},
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
			<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><server-data xmlns='urn:xmpp:pie:0'>&lol3;</server-data>`, "DOCTYPE"},
		{"undeclared entity", head + "&lol;" + tail, "entity"},
		{"deep", head + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + tail, "nested more than"},
		{"huge text", head + "<vCard xmlns='vcard-temp'><FN>" + strings.Repeat("a", 9<<20) + "</FN></vCard>" + tail, "allowed"},
		{"huge attribute", head + "<vCard xmlns='vcard-temp' x='" + strings.Repeat("a", 9<<20) + "'/>" + tail, "too large"},
		{"huge comment", head + "<!--" + strings.Repeat("a", 9<<20) + "-->" + tail, "too large"},
		{"not xep0227", "<Openfire/>", "not XEP-0227"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := xep0227.Read(strings.NewReader(tc.file), "export.xml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want an error containing %q", err, tc.want)
			}
			t.Logf("%s: %v", tc.name, err)
			if !strings.HasPrefix(err.Error(), "export.xml:") && !errors.Is(err, migration.ErrUnsafeXML) {
				t.Errorf("error %q names no position", err)
			}
		})
	}
	if _, err := xep0227.Read(strings.NewReader(good), "export.xml"); err != nil {
		t.Fatalf("the untouched file: %v", err)
	}
}

// TestSHA1OnlyAndMismatch: users with SCRAM-SHA-1 keys only are counted
// and log in over SCRAM-SHA-1 and PLAIN; a password that does not match
// the keys is reported (the keys kept); two usernames that normalise alike
// import once; progress is reported for each user.
func TestSHA1OnlyAndMismatch(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := t.Context()
			db := storagetest.Open(t, e)
			// SCRAM-SHA-1 keys of "pw", as Openfire keeps them.
			src := storagetest.Open(t, storagetest.SQLite(t))
			if err := auth.New(src.Accounts(), auth.MinIterations).Create(ctx, jid.MustParse("k@localhost"), "pw"); err != nil {
				t.Fatal(err)
			}
			sha1, err := src.Accounts().Credential(ctx, "k@localhost", auth.SCRAMSHA1)
			if err != nil {
				t.Fatal(err)
			}
			d := &migration.Data{Domain: domain, Users: []migration.User{
				{Username: "keys", Credentials: []storage.Credential{sha1}},
				{Username: "both", Password: "pw", Credentials: []storage.Credential{sha1}},
				{Username: "wrong", Password: "not-pw", Credentials: []storage.Credential{sha1}},
				{Username: "Keys"}, // normalises to keys
				{Username: "badkeys", Password: "pw", Credentials: []storage.Credential{{Mechanism: "SCRAM-SHA-1"}}},
			}}
			var calls []int
			rep, err := migration.Write(ctx, db, d, migration.WriteOptions{Progress: func(done, total int) {
				if total != 4 {
					t.Errorf("progress total %d, want 4", total)
				}
				calls = append(calls, done)
			}})
			if err != nil {
				t.Fatal(err)
			}
			if len(calls) != 4 || calls[3] != 4 {
				t.Errorf("progress calls %v", calls)
			}
			if !reflect.DeepEqual(rep.SHA1Only, []string{"keys@localhost", "wrong@localhost"}) || len(rep.PasswordMismatch) != 1 ||
				rep.PasswordMismatch[0].Who != "wrong@localhost" || rep.DerivedFromPassword != 2 || len(rep.Invalid) != 1 ||
				len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0], "badkeys@localhost: SCRAM-SHA-1 credential left out") {
				t.Errorf("report %+v", rep)
			}
			a := auth.New(db.Accounts(), auth.MinIterations)
			for _, u := range []string{"keys", "both", "wrong", "badkeys"} {
				if err := a.VerifyPlain(ctx, jid.MustParse(u+"@localhost"), "pw"); err != nil {
					t.Errorf("%s: password pw: %v", u, err)
				}
			}
			if _, err := a.Credential(ctx, jid.MustParse("both@localhost"), auth.SCRAMSHA256); err != nil {
				t.Errorf("both: no SCRAM-SHA-256 derived: %v", err)
			}
			db.Close()
			srv := startOn(t, e)
			for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.Plain} {
				c := srv.Login(t, jid.MustParse("keys@localhost"), "pw", xmpptest.LoginOptions{Resource: m.Name, Mechs: []sasl.Mechanism{m}})
				c.Close()
			}
		})
	}
}

// TestRooms imports a room with affiliations, a reserved nick and a log
// (twice), then over XMPP: the member learns its reserved nick (XEP-0045
// §7.12), another user cannot take it, the member joins with it and gets
// the log's last messages as history, and the room's archive holds the
// whole log once.
func TestRooms(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := t.Context()
			db := storagetest.Open(t, e)
			const room = "lounge@conference.localhost"
			base := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond).UTC()
			r := migration.Room{
				MUCRoom: storage.MUCRoom{
					JID: room, Service: "conference.localhost", Creator: "alice@localhost", CreatedAt: base,
					Name: "Lounge", Public: true, MaxUsers: 30, Whois: "moderators", HistoryLength: 2,
					AllowPM: "anyone", ChangeSubject: true, Archive: true, Subject: "Welcome", SubjectNick: "Al",
					Affiliations: []storage.MUCAffiliation{{JID: "alice@localhost", Affiliation: "owner"}},
				},
				Nicks: map[string]string{"bob@localhost": "Bobby"},
			}
			for i := range 4 {
				r.Log = append(r.Log, storage.MUCMessage{ID: fmt.Sprint("old", i), Nick: "Al", Sender: "alice@localhost/pc",
					Stamp: base.Add(time.Duration(i) * time.Minute), Payload: fmt.Appendf(nil, "<body>log %d</body>", i)})
			}
			d := &migration.Data{Domain: domain, Rooms: []migration.Room{r}, Users: []migration.User{
				{Username: "alice", Password: "pw-alice"}, {Username: "bob", Password: "pw-bob"}}}
			for range 2 {
				rep, err := migration.Write(ctx, db, d, migration.WriteOptions{MUCService: "conference.localhost"})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Rooms != 1 || rep.Affiliations != 2 || rep.ReservedNicks != 1 || rep.RoomMessages != 4 {
					t.Errorf("report %+v", rep)
				}
			}
			db.Close()

			srv := startOn(t, e)
			bob := srv.Login(t, jid.MustParse("bob@localhost"), "pw-bob", xmpptest.LoginOptions{Resource: "r"})
			alice := srv.Login(t, jid.MustParse("alice@localhost"), "pw-alice", xmpptest.LoginOptions{Resource: "r"})
			bob.Send("<iq type='get' id='n1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>", room)
			n := bob.Expect(5*time.Second, "reserved nick", func(e xmpptest.Element) bool { return e.Attr("id") == "n1" })
			if !strings.Contains(n.Raw, "name='Bobby'") {
				t.Errorf("x-roomuser-item for bob: %s", n.Raw)
			}
			alice.Send("<iq type='get' id='n2' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>", room)
			if n := alice.Expect(5*time.Second, "reserved nick", func(e xmpptest.Element) bool { return e.Attr("id") == "n2" }); strings.Contains(n.Raw, "identity") {
				t.Errorf("x-roomuser-item for alice, who reserved none: %s", n.Raw)
			}
			alice.Send("<presence to='%s/Bobby'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			p := alice.Expect(5*time.Second, "join error", func(e xmpptest.Element) bool { return e.Name.Local == "presence" })
			if p.Attr("type") != "error" || !strings.Contains(p.Raw, "<conflict") {
				t.Errorf("alice joining as bob's reserved nick: %s", p.Raw)
			}
			bob.Send("<presence to='%s/Bobby'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
			var hist []string
			deadline := time.After(5 * time.Second)
			for subject := false; !subject; {
				select {
				case e := <-bob.Elements():
					if e.Name.Local == "presence" && e.Attr("type") == "error" {
						t.Fatalf("bob joining as Bobby: %s", e.Raw)
					}
					if e.Name.Local == "message" && strings.Contains(e.Raw, "<subject>") {
						subject = true
					} else if e.Name.Local == "message" {
						hist = append(hist, e.Raw)
					}
				case <-deadline:
					t.Fatalf("bob's join: no subject within 5s; history %q", hist)
				}
			}
			if len(hist) != 2 || !strings.Contains(hist[0], "log 2") || !strings.Contains(hist[1], "log 3") || !strings.Contains(hist[0], "from='"+room+"/Al'") {
				t.Errorf("history on join: %q", hist)
			}
			bob.Send("<iq type='set' id='q1' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>", room)
			var archived []string
			for done := false; !done; {
				select {
				case e := <-bob.Elements():
					switch {
					case e.Name.Local == "message" && strings.Contains(e.Raw, "queryid='x'"):
						archived = append(archived, e.Raw)
					case e.Attr("id") == "q1":
						done = true
						if e.Attr("type") != "result" {
							t.Fatalf("MAM query: %s", e.Raw)
						}
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("MAM query: no answer; got %q", archived)
				}
			}
			if len(archived) != 4 || !strings.Contains(archived[0], "log 0") || !strings.Contains(archived[3], "log 3") {
				t.Errorf("room archive: %d messages: %q", len(archived), archived)
			}
		})
	}
}

// TestWriteStopsAtFailure: when storage fails on a user (here its vCard,
// written after its account, roster and offline messages), Write returns
// the error, nothing of that user is left, and the users before stay.
func TestWriteStopsAtFailure(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		stmts := []string{`CREATE TRIGGER boom BEFORE INSERT ON vcards WHEN NEW.jid = 'bob@localhost'
			BEGIN SELECT RAISE(ABORT, 'boom'); END`}
		if db.Driver() == storage.DriverPostgres {
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
		user := func(name string) migration.User {
			return migration.User{Username: name, Password: "pw", Name: name,
				Roster:  []storage.RosterItem{{Contact: "x@localhost", Subscription: "both", Visible: true}},
				Offline: []storage.OfflineMessage{{Stamp: time.Now(), Stanza: []byte("<message><body>hi</body></message>")}}}
		}
		d := &migration.Data{Domain: domain, Users: []migration.User{user("alice"), user("bob"), user("carol")}}
		_, err := migration.Write(ctx, db, d, migration.WriteOptions{Workers: 1})
		if err == nil || !strings.Contains(err.Error(), "bob@localhost") {
			t.Fatalf("Write: %v, want bob's failure", err)
		}
		accts, _ := db.Accounts().List(ctx)
		if len(accts) != 1 || accts[0].JID != "alice@localhost" {
			t.Errorf("accounts after the failure: %+v", accts)
		}
		for _, table := range []string{"roster_items", "offline_messages", "account_credentials"} {
			var n int
			if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE jid = 'bob@localhost'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d rows of bob (%v)", table, n, err)
			}
		}
	})
}
