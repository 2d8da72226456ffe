package openfire

import (
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// TestImportAndLogIn is the import as an admin runs it: an Openfire
// database (PostgreSQL, MariaDB, the embedded HSQLDB script; three schema
// layouts) read and written into a fresh xmppd, which is then started.
// Each user logs in with the password it had on Openfire, over
// SCRAM-SHA-1, PLAIN and SCRAM-SHA-256, and finds over XMPP its roster,
// shared groups, pending request, offline messages, vCard, bookmarks and
// rooms as Openfire had them.
func TestImportAndLogIn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		source  func(t *testing.T, f *fixture) Options
		domain  string // xmppd's; not Openfire's: --rewrite-domain
	}{
		{"postgres-schema38", 38, func(t *testing.T, f *fixture) Options { return Options{DSN: postgresDSN(t, f)} }, ofDomain},
		{"mariadb-schema40", 40, func(t *testing.T, f *fixture) Options { return Options{DSN: mariaDBDSN(t, f)} }, "chat.example"},
		{"hsqldb-schema26", 26, func(t *testing.T, f *fixture) Options { return Options{HSQLDBScript: f.writeScript(t)} }, ofDomain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			opts := tc.source(t, build(t, tc.version, passwordKey))
			opts.SecurityXML = securityXML(t, "pbkdf2", blowfishSalt)
			opts.Domain, opts.RewriteDomain = tc.domain, tc.domain != ofDomain
			d, err := Read(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}

			cfg := config.Default()
			cfg.Server.Domain = tc.domain
			cfg.Server.DataDir = t.TempDir()
			cfg.C2S.Listen, cfg.C2S.DirectTLSListen, cfg.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", ""
			cfg.Auth.FailureDelay = config.Duration{Duration: time.Millisecond}
			// The fixture's offline messages are from 2023: kept as long
			// as the server would keep them.
			cfg.Offline.MaxAge = config.Duration{Duration: 20 * 365 * 24 * time.Hour}
			db, err := storage.Open(ctx, cfg.Storage.Driver, cfg.StorageDSN())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := migration.Write(ctx, db, d, migration.WriteOptions{MUCService: cfg.MUCDomain(), OfflineMaxAge: cfg.Offline.MaxAge.Duration})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Users != 5 || rep.OfflineMessages != 2 || len(rep.SHA1Only) != 1 || rep.SharedGroups != 4 || rep.Rooms != 1 || len(rep.NoPassword) != 0 {
				t.Fatalf("report: %+v", rep)
			}
			srv := xmpptest.StartConfig(t, cfg)
			checkImported(t, srv, tc.domain, tc.version)
		})
	}
}

func checkImported(t *testing.T, srv *xmpptest.Server, domain string, version int) {
	const wait = 5 * time.Second
	user := func(name string) jid.JID { return jid.MustParse(name + "@" + domain) }
	at := func(s string) string { return strings.ReplaceAll(s, "@of.example", "@"+domain) }
	login := func(u testUser, mech sasl.Mechanism) *xmpptest.Client {
		t.Helper()
		return srv.Login(t, user(u.name), u.password, xmpptest.LoginOptions{Resource: "r", Mechs: []sasl.Mechanism{mech}})
	}
	// dave's Openfire kept SCRAM-SHA-1 keys only: until he logs in with
	// PLAIN, nobody is offered SCRAM-SHA-256 ([auth] legacy_scram_sha1),
	// and every client's choice works.
	if _, err := srv.TryLogin(t, user("alice"), testUsers[0].password, xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.ScramSha256}}); err == nil {
		t.Error("SCRAM-SHA-256 offered while dave has SCRAM-SHA-1 keys only")
	}
	for _, mech := range []sasl.Mechanism{sasl.ScramSha1, sasl.Plain, sasl.ScramSha256} {
		for _, u := range testUsers {
			if u.name == "bob" {
				continue // bob's first login reads his offline messages, below
			}
			login(u, mech).Close()
		}
	}
	if _, err := srv.TryLogin(t, user("alice"), "wrong", xmpptest.LoginOptions{Mechs: []sasl.Mechanism{sasl.Plain}}); err == nil {
		t.Error("a wrong password logged in")
	}

	bob := login(testUsers[1], sasl.ScramSha256)
	bob.Send("<presence/>")
	var bodies []string
	for len(bodies) < 2 {
		m := bob.Expect(wait, "offline messages", xmpptest.IsStanza("message", ""))
		if !m.Contains("urn:xmpp:delay") {
			t.Errorf("offline message without its time: %s", m.Raw)
		}
		bodies = append(bodies, m.Raw)
	}
	if !strings.Contains(bodies[0], "hi &#39;bob&#39; &amp; ☃") && !strings.Contains(bodies[0], "hi 'bob' &amp; ☃") {
		t.Errorf("first offline message: %s", bodies[0])
	}
	if !strings.Contains(bodies[1], "second") {
		t.Errorf("second offline message: %s", bodies[1])
	}

	alice := login(testUsers[0], sasl.ScramSha256)
	roster := func(c *xmpptest.Client) string {
		t.Helper()
		c.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
		return c.Expect(wait, "roster", func(e xmpptest.Element) bool { return e.Attr("id") == "r1" }).Inner
	}
	item := func(r, contact string) string {
		t.Helper()
		i := strings.Index(r, "jid='"+contact+"'")
		if i < 0 {
			t.Errorf("no %s in roster %s", contact, r)
			return ""
		}
		start := strings.LastIndex(r[:i], "<item")
		end := strings.Index(r[i:], "</item>")
		if end < 0 {
			end = strings.Index(r[i:], "/>")
		}
		return r[start : i+end]
	}
	ar := roster(alice)
	for _, want := range []struct{ contact, has string }{
		{at("bob@of.example"), "subscription='both'"}, {at("bob@of.example"), "<group>Friends</group>"},
		{at("bob@of.example"), "<group>Work</group>"}, {at("bob@of.example"), "<group>Staff</group>"},
		{at("dave@of.example"), "ask='subscribe'"}, {at("erin@of.example"), "ask='subscribe'"},
		{"grace@remote.example", "subscription='to'"},
	} {
		if it := item(ar, want.contact); !strings.Contains(it, want.has) {
			t.Errorf("alice's %s: %s, want %s", want.contact, it, want.has)
		}
	}
	if strings.Contains(ar, "gone@") {
		t.Errorf("a roster item Openfire was removing came across: %s", ar)
	}
	// carol has no roster of her own: the shared groups make it.
	carol := login(testUsers[2], sasl.ScramSha256)
	cr := roster(carol)
	for _, want := range []struct{ contact, has string }{
		{at("alice@of.example"), "<group>Staff</group>"}, {at("alice@of.example"), "<group>mgmt</group>"},
		{at("bob@of.example"), "<group>Staff</group>"}, {at("dave@of.example"), "<group>Team</group>"},
		{at("dave@of.example"), "subscription='both'"},
	} {
		if it := item(cr, want.contact); !strings.Contains(it, want.has) {
			t.Errorf("carol's %s: %s, want %s", want.contact, it, want.has)
		}
	}

	// The pending request comes to alice when she is available.
	alice.Send("<presence/>")
	sub := alice.Expect(wait, "frank's pending request", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribe"
	})
	// Schema 33 and later keep the request's stanza, with its status.
	if sub.Attr("from") != "frank@remote.example" || (version >= 33 && !sub.Contains("let me in")) {
		t.Errorf("pending request: %s", sub.Raw)
	}

	alice.Send("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
	if v := alice.Expect(wait, "vCard", func(e xmpptest.Element) bool { return e.Attr("id") == "v1" }); !v.Contains("Alice Liddell") {
		t.Errorf("alice's vCard: %s", v.Raw)
	}
	alice.Send("<iq type='get' id='p1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
	if b := alice.Expect(wait, "bookmarks", func(e xmpptest.Element) bool { return e.Attr("id") == "p1" }); !b.Contains("lounge@conference." + domain) {
		t.Errorf("alice's bookmarks: %s", b.Raw)
	}

	room := "lounge@conference." + domain
	for _, a := range []struct{ affiliation, jids string }{
		{"owner", at("alice@of.example")}, {"admin", at("bob@of.example")}, {"outcast", "mallory@evil.example"},
		{"member", at("carol@of.example") + " " + at("dave@of.example") + " frank@remote.example"},
	} {
		alice.Send("<iq type='get' id='a-%s' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='%s'/></query></iq>", a.affiliation, room, a.affiliation)
		res := alice.Expect(wait, a.affiliation+"s", func(e xmpptest.Element) bool { return e.Attr("id") == "a-"+a.affiliation })
		for _, j := range strings.Fields(a.jids) {
			if !res.Contains("jid='" + j + "'") {
				t.Errorf("room %ss: %s, want %s", a.affiliation, res.Raw, j)
			}
		}
	}
	carol.Send("<iq type='get' id='n1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>", room)
	if n := carol.Expect(wait, "reserved nick", func(e xmpptest.Element) bool { return e.Attr("id") == "n1" }); !n.Contains("name='Caro'") {
		t.Errorf("carol's reserved nick: %s", n.Raw)
	}
	carol.Send("<presence to='%s/Caro'><x xmlns='http://jabber.org/protocol/muc'><password>sesame</password></x></presence>", room)
	var history []string
	for {
		e := carol.Expect(wait, "room history and subject", xmpptest.IsStanza("message", "groupchat"))
		if e.Contains("<subject>") {
			if !e.Contains("Welcome all") {
				t.Errorf("subject: %s", e.Raw)
			}
			break
		}
		history = append(history, e.Raw)
	}
	if len(history) != 2 || !strings.Contains(history[0], "hello") || !strings.Contains(history[1], "a&lt;b") {
		t.Errorf("room history: %q", history)
	}
}
