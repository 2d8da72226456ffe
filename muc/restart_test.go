package muc_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/storage"
)

var _ muc.Store = (*storage.MUC)(nil)

// TestRestart: a persistent room comes back after a restart with its
// configuration, affiliations, subject and history, and without its
// occupants; a temporary room does not. On both storage engines.
func TestRestart(t *testing.T) {
	for _, engine := range []struct {
		name string
		opts func(t *testing.T) []xmpptest.Option
	}{
		{"sqlite", func(*testing.T) []xmpptest.Option { return nil }},
		{"postgres", func(t *testing.T) []xmpptest.Option { return []xmpptest.Option{xmpptest.WithPostgres(t)} }},
	} {
		t.Run(engine.name, func(t *testing.T) { testRestart(t, engine.opts(t)...) })
	}
}

func testRestart(t *testing.T, opts ...xmpptest.Option) {
	const temp = "temp@" + service
	srv := xmpptest.Start(t, append(opts, func(c *config.Config) { c.MUC.HistoryLength = 2 })...)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	login(t, srv, "dave").Close()

	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_persistentroom", "1")+field("muc#roomconfig_membersonly", "1")+
		field("muc#roomconfig_roomname", "The Lounge")+field("muc#roomconfig_whois", "anyone")+field("muc#roomconfig_allowpm", "participants"))
	alice.adminSet(lounge, "a", "<item jid='bob@localhost' affiliation='member'/><item jid='carol@localhost' affiliation='admin'><reason>trusty</reason></item>"+
		"<item jid='dave@localhost' affiliation='outcast'><reason>spam</reason></item>")
	bob.join(lounge, "Bob", "")
	alice.Send("<message to='%s' type='groupchat' id='s'><subject>Double, double</subject></message>", lounge)
	for _, id := range []string{"m1", "m2", "m3"} {
		bob.Send("<message to='%s' type='groupchat' id='%s'><body>toil &amp; %s</body></message>", lounge, id, id)
	}
	bob.sync()
	alice.sync()
	// Affiliations changed after the room became persistent, and a
	// change of configuration, are stored too.
	alice.adminSet(lounge, "b", "<item jid='erin@localhost' affiliation='member'/>")
	alice.configure(t, lounge, field("muc#roomconfig_roomdesc", "A dark cave"))
	carol.createRoom(t, temp, "Carol")

	for _, u := range []*user{alice, bob, carol} {
		u.Close() // a quicker stop
	}
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, srv.Config)
	alice, bob, carol = relogin(t, srv, "alice"), relogin(t, srv, "bob"), relogin(t, srv, "carol")
	dave := relogin(t, srv, "dave")

	// Nobody is in the room; the history and the subject are.
	expect(t, "bob", bob.join(lounge, "Bob", ""),
		presence(lounge+"/Bob", bob.full, item("member", "participant", bob.full), 110, 100),
		delayed(lounge, "Bob", bob.full, "m2", "toil &amp; m2"),
		delayed(lounge, "Bob", bob.full, "m3", "toil &amp; m3"),
		"<message from='"+lounge+"/Alice' to='"+bob.full+"' type='groupchat'><subject>Double, double</subject></message>")
	expectError(t, "dave", dave.join(lounge, "Dave", ""), lounge+"/Dave", "auth", "forbidden")
	carol.join(lounge, "Carol", "")
	bob.sync()

	carol.Send("<iq type='get' id='l' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", lounge)
	expect(t, "carol", carol.sync(), "<iq type='result' id='l' from='"+lounge+"' to='"+carol.full+"'><query xmlns='http://jabber.org/protocol/muc#admin'>"+
		"<item affiliation='member' jid='bob@localhost'/><item affiliation='member' jid='erin@localhost'/></query></iq>")
	carol.Send("<iq type='get' id='l' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='admin'/></query></iq>", lounge)
	expect(t, "carol", carol.sync(), "<iq type='result' id='l' from='"+lounge+"' to='"+carol.full+"'><query xmlns='http://jabber.org/protocol/muc#admin'>"+
		"<item affiliation='admin' jid='carol@localhost'><reason>trusty</reason></item></query></iq>")

	alice.Send("<iq type='get' id='i' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", lounge)
	got := alice.sync()
	if len(got) != 1 {
		t.Fatalf("disco#info: %q", got)
	}
	info := canon(t, got[0].Raw)
	for _, want := range []string{"name='The Lounge'", "muc_persistent", "muc_membersonly", "muc_nonanonymous",
		"<value>A dark cave</value>", "<value>Double, double</value>", "<field label='Number of occupants' var='muc#roominfo_occupants'><value>2</value>"} {
		if !strings.Contains(info, want) {
			t.Errorf("disco#info after restart has no %s:\n%s", want, info)
		}
	}
	alice.Send("<iq type='get' id='f' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", lounge)
	if form := alice.sync(); len(form) != 1 || !strings.Contains(canon(t, form[0].Raw), "var='muc#roomconfig_allowpm'><value>participants</value>") {
		t.Errorf("configuration form after restart: %q", form)
	}

	// The temporary room is gone: joining it creates a new one.
	got = carol.join(temp, "Carol", "")
	if len(got) != 2 || !strings.Contains(got[0].Raw, "201") {
		t.Errorf("joining the temporary room after restart: %q", got)
	}

	// Destroying the persistent room deletes it from storage.
	alice.Send("<iq type='set' id='d' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>", lounge)
	alice.sync()
	for _, u := range []*user{alice, bob, carol, dave} {
		u.Close()
	}
	srv.Stop(t)
	srv = xmpptest.StartConfig(t, srv.Config)
	bob = relogin(t, srv, "bob")
	got = bob.join(lounge, "Bob", "")
	if len(got) != 2 || !strings.Contains(got[0].Raw, "201") {
		t.Errorf("joining the destroyed room after restart: %q", got)
	}
}
