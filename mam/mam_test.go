package mam_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestPaging: 1,000 messages between alice and bob, half each way, are in
// both archives; paged through forwards and backwards (after a restart)
// they come with no gap and no duplicate, complete only on the last
// page; the stanza id bob's client got on each live message is the id
// his archive gives it.
func TestPaging(t *testing.T) {
	engines(t, testPaging)
}

func testPaging(t *testing.T, eng ...xmpptest.Option) {
	srv := xmpptest.Start(t, eng...)
	addUsers(t, srv, "alice", "bob")
	alice, bob := login(t, srv, "alice", "a").online(), login(t, srv, "bob", "b").online()
	const n = 1000
	var want []string
	liveID := map[string]string{} // body → stanza id bob saw
	// Batches of 50 each way in turn: each sender's sync orders its
	// batch before the other's next one.
	for i := range n {
		body := fmt.Sprintf("m%04d", i)
		want = append(want, body)
		if (i/50)%2 == 0 {
			alice.Send("<message to='bob@localhost' type='chat' id='%s'><body>%s</body></message>", body, body)
		} else {
			bob.Send("<message to='alice@localhost' type='chat' id='%s'><body>%s</body></message>", body, body)
		}
		if i%50 == 49 {
			alice.Sync()
			for _, e := range bob.Sync() {
				if e.Name.Local == "message" {
					var body string
					if j := strings.Index(e.Raw, "<body>"); j >= 0 {
						body = e.Raw[j+6 : j+11]
					}
					liveID[body] = stanzaID(t, e.Raw, "bob@localhost")
				}
			}
		}
	}
	if len(liveID) != n/2 {
		t.Fatalf("bob got %d messages live, want %d", len(liveID), n/2)
	}
	alice.Close()
	bob.Close()
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, srv.Config)
	alice, bob = login(t, srv, "alice", "a"), login(t, srv, "bob", "b")

	// Forwards, 100 a page, alice's archive with bob.
	var got []archived
	after := ""
	for page := 0; ; page++ {
		o := opts(100).with("with", "bob@localhost")
		o.after = after
		res, f := alice.query(t, o)
		if f.Err != "" {
			t.Fatalf("page %d: %s", page, f.Raw)
		}
		got = append(got, res...)
		if f.Count != fmt.Sprint(n) {
			t.Errorf("page %d: count %s, want %d", page, f.Count, n)
		}
		if len(res) > 0 && (f.First != res[0].ID || f.Last != res[len(res)-1].ID) {
			t.Errorf("page %d: first/last %s/%s, not the page's ends", page, f.First, f.Last)
		}
		last := len(got) == n
		if f.Complete != last {
			t.Fatalf("page %d (%d results so far): complete=%v", page, len(got), f.Complete)
		}
		if last {
			break
		}
		if page > n/100 {
			t.Fatalf("paging does not end")
		}
		after = f.Last
	}
	if b := bodies(got); !slices.Equal(b, want) {
		t.Fatalf("alice's archive forwards: %d messages, first differences: %v", len(b), firstDiff(b, want))
	}
	for i, a := range got {
		out := (i/50)%2 == 0
		if out && (a.MsgFrom != "alice@localhost/a" || a.MsgTo != "bob@localhost") ||
			!out && (a.MsgFrom != "bob@localhost/b" || a.MsgTo != "alice@localhost") {
			t.Fatalf("archived message %d: from %q to %q", i, a.MsgFrom, a.MsgTo)
		}
		if a.From != "alice@localhost" || a.Stamp == "" {
			t.Fatalf("result %d from %q, stamp %q", i, a.From, a.Stamp)
		}
		if i > 0 && a.ID <= got[i-1].ID {
			t.Fatalf("ids out of order: %s after %s", a.ID, got[i-1].ID)
		}
	}

	// Backwards from the end (<before/>), bob's archive, no with.
	var back []archived
	before := ptr("")
	for page := 0; ; page++ {
		o := opts(300)
		o.before = before
		res, f := bob.query(t, o)
		if f.Err != "" {
			t.Fatalf("page %d: %s", page, f.Raw)
		}
		back = append(slices.Clone(res), back...)
		if f.Complete != (len(back) == n) {
			t.Fatalf("backwards page %d (%d so far): complete=%v", page, len(back), f.Complete)
		}
		if f.Complete {
			break
		}
		if page > n/300 {
			t.Fatalf("paging does not end")
		}
		before = ptr(f.First)
	}
	if b := bodies(back); !slices.Equal(b, want) {
		t.Fatalf("bob's archive backwards: %d messages, first differences: %v", len(b), firstDiff(b, want))
	}
	for i, a := range back {
		if (i/50)%2 == 1 {
			continue // sent by bob
		}
		if live := liveID[a.Body]; live != a.ID {
			t.Fatalf("%s: bob's client got stanza id %q, his archive says %q", a.Body, live, a.ID)
		}
	}
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		g, w := "<none>", "<none>"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d got %s want %s", i, g, w)
		}
	}
	return "none"
}

// TestFilters: each form field and RSM option narrows the results as
// XEP-0313 says, and bad queries get the errors it names.
func TestFilters(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob", "carol")
	alice := login(t, srv, "alice", "a").online()
	bob := login(t, srv, "bob", "b").online()
	carol := login(t, srv, "carol", "c").online()
	send := func(from *user, to, body string) {
		from.Send("<message to='%s' type='chat'><body>%s</body></message>", to, body)
		from.Sync()
		time.Sleep(2 * time.Millisecond) // distinct stamps
	}
	send(alice, "bob@localhost", "1")
	send(alice, "bob@localhost/b", "2")
	send(bob, "alice@localhost", "3")
	send(carol, "alice@localhost/a", "4")
	send(alice, "carol@localhost", "5")
	send(bob, "alice@localhost/a", "6")
	all, f := alice.query(t, opts(-1))
	if got := bodies(all); !slices.Equal(got, []string{"1", "2", "3", "4", "5", "6"}) || !f.Complete || f.Count != "6" {
		t.Fatalf("everything: %v %+v", got, f)
	}
	check := func(what string, o queryOpts, want ...string) {
		t.Helper()
		res, f := alice.query(t, o)
		if f.Err != "" {
			t.Fatalf("%s: %s", what, f.Raw)
		}
		if got := bodies(res); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("with a bare JID", opts(-1).with("with", "bob@localhost"), "1", "2", "3", "6")
	check("with a full JID", opts(-1).with("with", "bob@localhost/b"), "2", "3", "6")
	check("with carol", opts(-1).with("with", "carol@localhost"), "4", "5")
	check("start", opts(-1).with("start", all[3].Stamp), "4", "5", "6")
	check("end", opts(-1).with("end", all[1].Stamp), "1", "2")
	check("start and end", opts(-1).with("start", all[1].Stamp).with("end", all[4].Stamp), "2", "3", "4", "5")
	check("after-id", opts(-1).with("after-id", all[3].ID), "5", "6")
	check("before-id", opts(-1).with("before-id", all[2].ID), "1", "2")
	check("ids", opts(-1).with("ids", all[4].ID).with("ids", all[1].ID), "2", "5")
	check("max", opts(2), "1", "2")
	check("last page", queryOpts{max: 2, before: ptr("")}, "5", "6")
	check("before an id", queryOpts{max: 2, before: ptr(all[4].ID)}, "3", "4")
	check("after an id", queryOpts{max: 2, after: all[1].ID}, "3", "4")
	flipped := queryOpts{max: 2, before: ptr(""), flip: true}
	check("flip-page", flipped, "6", "5")
	check("with and paging", queryOpts{max: 1, after: all[0].ID}.with("with", "bob@localhost"), "2")

	res, f := alice.query(t, opts(0))
	if len(res) != 0 || f.Count != "6" {
		t.Errorf("max 0: %d results, count %s; want none and 6", len(res), f.Count)
	}
	for _, tc := range []struct {
		what string
		o    queryOpts
		cond string
	}{
		{"unknown after", queryOpts{max: -1, after: "nosuchid"}, "item-not-found"},
		{"an id of another archive", opts(-1).with("after-id", bobsID(t, bob)), "item-not-found"},
		{"unknown field", opts(-1).with("colour", "red"), "bad-request"},
		{"bad start", opts(-1).with("start", "yesterday"), "bad-request"},
		{"bad with", opts(-1).with("with", "@@"), "jid-malformed"},
		{"too many ids", manyIDs(101), "bad-request"},
	} {
		if _, f := alice.query(t, tc.o); f.Err != tc.cond {
			t.Errorf("%s: got %q, want %s: %s", tc.what, f.Err, tc.cond, f.Raw)
		}
	}
	alice.Send("<iq type='set' id='idx'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max><index>3</index></set></query></iq>")
	if e := alice.Expect(wait, "index error", func(e xmpptest.Element) bool { return e.Attr("id") == "idx" }); !e.Contains("feature-not-implemented") {
		t.Errorf("paging by index: %s", e.Raw)
	}
	// Someone else's archive is not readable by its bare JID.
	alice.Send("<iq type='set' id='other' to='bob@localhost'><query xmlns='urn:xmpp:mam:2'/></iq>")
	if e := alice.Expect(wait, "answer", func(e xmpptest.Element) bool { return e.Attr("id") == "other" }); e.Attr("type") != "error" {
		t.Errorf("alice read bob's archive: %s", e.Raw)
	}
}

func manyIDs(n int) queryOpts {
	o := opts(-1)
	for i := range n {
		o = o.with("ids", fmt.Sprintf("id%d", i))
	}
	return o
}

func bobsID(t *testing.T, bob *user) string {
	t.Helper()
	res, _ := bob.query(t, opts(1))
	if len(res) == 0 {
		t.Fatal("bob's archive is empty")
	}
	return res[0].ID
}

// TestWhatIsArchived: chat and normal messages with a body, and what a
// <store/> hint asks for, are archived; <no-store/>, <no-permanent-store/>,
// headlines, errors and bodiless chat states are not; a message to
// oneself is archived once.
func TestWhatIsArchived(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob")
	alice := login(t, srv, "alice", "a").online()
	bob := login(t, srv, "bob", "b").online()
	for _, m := range []string{
		"<message to='bob@localhost' type='chat'><body>chat</body></message>",
		"<message to='bob@localhost'><body>normal</body></message>",
		"<message to='bob@localhost' type='chat'><body>no-store</body><no-store xmlns='urn:xmpp:hints'/></message>",
		"<message to='bob@localhost' type='chat'><body>no-permanent-store</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
		"<message to='bob@localhost' type='headline'><body>headline</body></message>",
		"<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<message to='bob@localhost' type='chat'><body>stored</body><store xmlns='urn:xmpp:hints'/></message>",
		"<message to='bob@localhost' type='chat' id='receipt'><received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/></message>",
		"<message to='alice@localhost' type='chat'><body>note to self</body></message>",
		"<message to='nobody@localhost' type='chat'><body>to nobody</body></message>",
	} {
		alice.Send("%s", m)
	}
	alice.Sync()
	bob.Sync()
	res, _ := alice.query(t, opts(-1))
	if got := bodies(res); !slices.Equal(got, []string{"chat", "normal", "stored", "", "note to self", "to nobody"}) {
		t.Errorf("alice's archive: %q", got)
	}
	var n int
	if err := srv.DB().SQL().QueryRow(`SELECT count(*) FROM archive WHERE owner = 'nobody@localhost'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("an archive for an account that does not exist: %d rows (%v)", n, err)
	}
	res, _ = bob.query(t, opts(-1))
	if got := bodies(res); !slices.Equal(got, []string{"chat", "normal", "stored", ""}) {
		t.Errorf("bob's archive: %q", got)
	}
}

// TestForgedStanzaID: a stanza id that claims to be by the recipient's
// archive is removed before delivery, archived or not; one by someone
// else stays, and so does the sender's origin-id.
func TestForgedStanzaID(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob")
	alice := login(t, srv, "alice", "a").online()
	bob := login(t, srv, "bob", "b").online()
	alice.Send("<message to='bob@localhost' type='chat' id='f1'><body>forged</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged-1'/>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/>" +
		"<origin-id xmlns='urn:xmpp:sid:0' id='origin-1'/></message>")
	alice.Send("<message to='bob@localhost' type='chat' id='f2'><composing xmlns='http://jabber.org/protocol/chatstates'/>" +
		"<sid:stanza-id xmlns:sid='urn:xmpp:sid:0' by='bob@localhost' id='forged-2'/></message>")
	alice.Sync()
	m1 := bob.Expect(wait, "the message", func(e xmpptest.Element) bool { return e.Attr("id") == "f1" })
	if m1.Contains("forged-1") || !m1.Contains("kept") || !m1.Contains("origin-1") {
		t.Errorf("f1 as delivered: %s", m1.Raw)
	}
	id := stanzaID(t, m1.Raw, "bob@localhost")
	m2 := bob.Expect(wait, "the chat state", func(e xmpptest.Element) bool { return e.Attr("id") == "f2" })
	if m2.Contains("forged-2") || strings.Contains(m2.Raw, "stanza-id") {
		t.Errorf("f2 (not archived) as delivered: %s", m2.Raw)
	}
	res, _ := bob.query(t, opts(-1))
	if len(res) != 1 || res[0].ID != id || strings.Contains(res[0].Raw, "forged-1") {
		t.Errorf("bob's archive: %+v; live id %q", res, id)
	}
}

// TestOffline: a message stored offline is archived when it arrives, and
// delivered at login with the same stanza id.
func TestOffline(t *testing.T) {
	engines(t, func(t *testing.T, o ...xmpptest.Option) {
		srv := xmpptest.Start(t, o...)
		addUsers(t, srv, "alice", "bob")
		alice := login(t, srv, "alice", "a").online()
		alice.Send("<message to='bob@localhost' type='chat' id='off'><body>while you were out</body></message>")
		alice.Sync()
		bob := login(t, srv, "bob", "b")
		bob.Send("<presence/>")
		m := bob.Expect(wait, "the offline message", func(e xmpptest.Element) bool { return e.Attr("id") == "off" })
		id := stanzaID(t, m.Raw, "bob@localhost")
		res, _ := bob.query(t, opts(-1))
		if id == "" || len(res) != 1 || res[0].ID != id || res[0].Body != "while you were out" {
			t.Errorf("offline message id %q; archive %+v", id, res)
		}
	})
}

// TestPreferences: a user's preferences decide what is archived, are
// kept across a restart, and default=roster archives contacts only.
func TestPreferences(t *testing.T) {
	engines(t, func(t *testing.T, o ...xmpptest.Option) {
		srv := xmpptest.Start(t, o...)
		addUsers(t, srv, "alice", "bob", "carol", "dave")
		bob := login(t, srv, "bob", "b").online()
		bob.Send("<iq type='get' id='p0'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
		if e := bob.Expect(wait, "prefs", func(e xmpptest.Element) bool { return e.Attr("id") == "p0" }); !e.Contains("default='always'") && !e.Contains(`default="always"`) {
			t.Errorf("default prefs: %s", e.Raw)
		}
		bob.Send("<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@localhost</jid></always><never><jid>dave@localhost</jid></never></prefs></iq>")
		if e := bob.Expect(wait, "prefs set", func(e xmpptest.Element) bool { return e.Attr("id") == "p1" }); e.Attr("type") != "result" || !e.Contains("carol@localhost") {
			t.Fatalf("setting prefs: %s", e.Raw)
		}
		bob.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, srv.Config)
		bob = login(t, srv, "bob", "b").online()
		bob.Send("<iq type='get' id='p2'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
		if e := bob.Expect(wait, "prefs", func(e xmpptest.Element) bool { return e.Attr("id") == "p2" }); !e.Contains("never") || !e.Contains("<jid>carol@localhost</jid>") || !e.Contains("<jid>dave@localhost</jid>") {
			t.Errorf("prefs after restart: %s", e.Raw)
		}
		for _, who := range []string{"alice", "carol", "dave"} {
			u := login(t, srv, who, "x")
			u.Send("<message to='bob@localhost' type='chat' id='from-%s'><body>from %s</body></message>", who, who)
			u.Sync()
		}
		for _, who := range []string{"alice", "carol", "dave"} {
			m := bob.Expect(wait, "from "+who, func(e xmpptest.Element) bool { return e.Attr("id") == "from-"+who })
			if has := stanzaID(t, m.Raw, "bob@localhost") != ""; has != (who == "carol") {
				t.Errorf("message from %s carries a stanza id: %v", who, has)
			}
		}
		res, _ := bob.query(t, opts(-1))
		if got := bodies(res); !slices.Equal(got, []string{"from carol"}) {
			t.Errorf("bob's archive: %q, want only carol's", got)
		}
	})
}

// TestRosterDefault: with [mam] default = "roster", messages with a
// roster contact are archived and those with a stranger are not.
func TestRosterDefault(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MAM.Default = "roster" })
	addUsers(t, srv, "alice", "bob", "eve")
	alice := login(t, srv, "alice", "a").online()
	alice.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
	alice.Expect(wait, "roster result", func(e xmpptest.Element) bool { return e.Attr("id") == "r1" })
	for _, who := range []string{"bob", "eve"} {
		u := login(t, srv, who, "x")
		u.Send("<message to='alice@localhost' type='chat'><body>from %s</body></message>", who)
		u.Sync()
	}
	alice.Send("<message to='eve@localhost' type='chat'><body>to eve</body></message>")
	alice.Send("<message to='bob@localhost' type='chat'><body>to bob</body></message>")
	alice.Sync()
	res, _ := alice.query(t, opts(-1))
	if got := bodies(res); !slices.Equal(got, []string{"from bob", "to bob"}) {
		t.Errorf("alice's archive: %q", got)
	}
}

// TestRetention: the sweep deletes messages older than max_age and the
// oldest beyond max_messages_per_user.
func TestRetention(t *testing.T) {
	engines(t, func(t *testing.T, o ...xmpptest.Option) {
		srv := xmpptest.Start(t, append(o, func(c *config.Config) {
			c.MAM.MaxMessagesPerUser = 3
			c.MAM.MaxAge = config.Duration{Duration: time.Hour}
		})...)
		addUsers(t, srv, "alice", "bob")
		alice := login(t, srv, "alice", "a").online()
		for i := range 5 {
			alice.Send("<message to='bob@localhost' type='chat'><body>%d</body></message>", i)
		}
		alice.Sync()
		srv.MAM().Flush()
		srv.MAM().Sweep(t.Context())
		res, _ := alice.query(t, opts(-1))
		if got := bodies(res); !slices.Equal(got, []string{"2", "3", "4"}) {
			t.Errorf("after trimming to 3: %q", got)
		}
		// Age: rows dated two hours back go; the others stay.
		db := srv.DB().SQL()
		old := time.Now().Add(-2 * time.Hour).UnixMicro()
		if _, err := db.Exec(`UPDATE archive SET seq = seq - $1 WHERE owner = 'bob@localhost'`, time.Now().UnixMicro()-old); err != nil {
			t.Fatal(err)
		}
		srv.MAM().Sweep(t.Context())
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM archive WHERE owner = 'bob@localhost'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("bob's expired messages: %d left (%v)", n, err)
		}
		if res, _ := alice.query(t, opts(-1)); len(res) != 3 {
			t.Errorf("alice's messages after the age sweep: %d, want 3", len(res))
		}
	})
}

// TestMetadataAndForm: the archive's first and last message, and the
// search form with the extended fields.
func TestMetadataAndForm(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob")
	alice := login(t, srv, "alice", "a").online()
	alice.Send("<iq type='get' id='m0'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	if e := alice.Expect(wait, "metadata", func(e xmpptest.Element) bool { return e.Attr("id") == "m0" }); e.Contains("start") {
		t.Errorf("metadata of an empty archive: %s", e.Raw)
	}
	for i := range 3 {
		alice.Send("<message to='bob@localhost' type='chat'><body>%d</body></message>", i)
	}
	alice.Sync()
	res, _ := alice.query(t, opts(-1))
	alice.Send("<iq type='get' id='m1'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	e := alice.Expect(wait, "metadata", func(e xmpptest.Element) bool { return e.Attr("id") == "m1" })
	if len(res) != 3 || !e.Contains(res[0].ID) || !e.Contains(res[2].ID) || !e.Contains("timestamp=") {
		t.Errorf("metadata %s for %+v", e.Raw, res)
	}
	alice.Send("<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>")
	e = alice.Expect(wait, "form", func(e xmpptest.Element) bool { return e.Attr("id") == "f" })
	for _, f := range []string{"FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"} {
		if !e.Contains("var='"+f+"'") && !e.Contains(`var="`+f+`"`) {
			t.Errorf("form lacks %s: %s", f, e.Raw)
		}
	}
	for _, to := range []string{"localhost", "alice@localhost"} {
		alice.Send("<iq type='get' id='d-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", to, to)
		e := alice.Expect(wait, "disco", func(e xmpptest.Element) bool { return e.Attr("id") == "d-"+to })
		for _, f := range []string{"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended"} {
			if !e.Contains("'"+f+"'") && !e.Contains(`"`+f+`"`) {
				t.Errorf("%s's disco#info lacks %s: %s", to, f, e.Raw)
			}
		}
	}
}

// TestDisabled: with [mam] off nothing is archived, no stanza id is
// added, and queries are refused.
func TestDisabled(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MAM.Enabled = false })
	addUsers(t, srv, "alice", "bob")
	alice := login(t, srv, "alice", "a").online()
	bob := login(t, srv, "bob", "b").online()
	alice.Send("<message to='bob@localhost' type='chat' id='x'><body>hi</body></message>")
	if m := bob.Expect(wait, "message", func(e xmpptest.Element) bool { return e.Attr("id") == "x" }); m.Contains("stanza-id") {
		t.Errorf("stanza id without an archive: %s", m.Raw)
	}
	if _, f := alice.query(t, opts(-1)); f.Err != "service-unavailable" {
		t.Errorf("query without an archive: %s", f.Raw)
	}
}
