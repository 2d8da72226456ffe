package muc_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestConfigForm: owners get the muc#roomconfig form with the room's
// values; others are refused; values out of bounds are refused.
func TestConfigForm(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MUC.MaxOccupants, c.MUC.MaxHistoryLength = 30, 50 })
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_roomname", "The Cave")+field("muc#roomconfig_maxusers", "20"))

	alice.Send("<iq type='get' id='f' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", lounge)
	got := alice.sync()
	if len(got) != 1 || got[0].Attr("type") != "result" {
		t.Fatalf("alice asking for the form: %q", got)
	}
	form := canon(t, got[0].Raw)
	for _, want := range []string{
		"<x xmlns='jabber:x:data' type='form'>",
		"<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>",
		"<field label='Room name' type='text-single' var='muc#roomconfig_roomname'><value>The Cave</value></field>",
		"var='muc#roomconfig_persistentroom'><value>0</value></field>",
		"var='muc#roomconfig_publicroom'><value>1</value></field>",
		"var='muc#roomconfig_membersonly'><value>0</value></field>",
		"var='muc#roomconfig_moderatedroom'><value>0</value></field>",
		"var='muc#roomconfig_passwordprotectedroom'><value>0</value></field>",
		"type='text-private' var='muc#roomconfig_roomsecret'><value></value></field>",
		"var='muc#roomconfig_maxusers'><value>20</value><option label='10'><value>10</value></option><option label='20'><value>20</value></option><option label='30'><value>30</value></option></field>",
		"var='muc#roomconfig_whois'><value>moderators</value>",
		"var='muc#maxhistoryfetch'><value>20</value></field>",
		"var='muc#roomconfig_allowpm'><value>anyone</value>",
		"var='muc#roomconfig_changesubject'><value>0</value></field>",
	} {
		if !strings.Contains(form, want) {
			t.Errorf("the form has no %s:\n%s", want, form)
		}
	}

	bob.join(lounge, "Bob", "")
	alice.sync()
	bob.Send("<iq type='get' id='f' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")
	bob.Send("<iq type='set' id='f' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")

	for _, tc := range []struct{ name, fields string }{
		{"too many users", field("muc#roomconfig_maxusers", "31")},
		{"too much history", field("muc#maxhistoryfetch", "51")},
		{"too much history, Prosody's name", field("muc#roomconfig_historylength", "51")},
		{"password protection without a password", field("muc#roomconfig_passwordprotectedroom", "1")},
		{"not a boolean", field("muc#roomconfig_publicroom", "maybe")},
		{"unknown whois", field("muc#roomconfig_whois", "everybody")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.Send("<iq type='set' id='c' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>", lounge, tc.fields)
			expectError(t, "alice", alice.sync(), lounge, "modify", "not-acceptable")
		})
	}
}

// TestCancelInitialConfiguration: cancelling the configuration of a new
// room destroys it.
func TestCancelInitialConfiguration(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := login(t, srv, "alice")
	alice.join(lounge, "Alice", "")
	alice.Send("<iq type='set' id='c' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query></iq>", lounge)
	expect(t, "alice", alice.sync(),
		result("c", lounge, alice.full),
		unavailable(lounge+"/Alice", alice.full, "<item affiliation='none' role='none' jid='"+alice.full+"'/><destroy/>", 110))
	alice.Send("<iq type='get' id='i' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", lounge)
	expectError(t, "alice", alice.sync(), lounge, "cancel", "item-not-found")
}

// TestDestroy: every occupant gets its own unavailable presence with the
// alternative venue and the reason; the room is gone.
func TestDestroy(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_persistentroom", "1"))
	bob.join(lounge, "Bob", "")
	alice.sync()

	bob.Send("<iq type='set' id='d' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")

	alice.Send("<iq type='set' id='d' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='heath@%s'><reason>Macbeth doth come.</reason></destroy></query></iq>", lounge, service)
	destroyed := func(u *user) string {
		return unavailable(lounge+"/"+map[string]string{"alice": "Alice", "bob": "Bob"}[u.name], u.full,
			"<item affiliation='none' role='none' jid='"+u.full+"'/><destroy jid='heath@"+service+"'><reason>Macbeth doth come.</reason></destroy>", 110)
	}
	expect(t, "alice", alice.sync(), destroyed(alice), result("d", lounge, alice.full))
	expect(t, "bob", bob.sync(), destroyed(bob))

	bob.Send("<message to='%s' type='groupchat' id='x'><body>anyone?</body></message>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "cancel", "item-not-found")
}

// TestDisco: the service in the server's items, its identity and
// features, the public rooms, and a room's features and roominfo form.
func TestDisco(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_roomname", "The Lounge")+field("muc#roomconfig_roomdesc", "Hover through the fog")+
		field("muc#roomconfig_persistentroom", "1")+field("muc#roomconfig_moderatedroom", "1"))
	alice.Send("<message to='%s' type='groupchat'><subject>Fog</subject></message>", lounge)
	alice.sync()
	alice.createRoom(t, "hidden@"+service, "Alice")
	alice.configure(t, "hidden@"+service, field("muc#roomconfig_publicroom", "0")+field("muc#roomconfig_membersonly", "1")+
		field("muc#roomconfig_whois", "anyone")+field("muc#roomconfig_passwordprotectedroom", "1")+field("muc#roomconfig_roomsecret", "x"))
	bob.join("locked@"+service, "Bob", "") // locked: not listed

	disco := func(u *user, to, ns string) string {
		u.Send("<iq type='get' id='d' to='%s'><query xmlns='http://jabber.org/protocol/disco#%s'/></iq>", to, ns)
		got := u.sync()
		if len(got) != 1 {
			t.Fatalf("disco#%s of %s: %q", ns, to, got)
		}
		return canon(t, got[0].Raw)
	}
	if got := disco(alice, "localhost", "items"); !strings.Contains(got, "<item jid='"+service+"' name='Chatrooms'></item>") {
		t.Errorf("server disco#items: %s", got)
	}
	if got, want := disco(alice, service, "info"), canon(t,
		"<iq from='"+service+"' id='d' to='"+alice.full+"' type='result'><query xmlns='http://jabber.org/protocol/disco#info'>"+
			"<identity category='conference' name='Chatrooms' type='text'/>"+
			"<feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/>"+
			"<feature var='http://jabber.org/protocol/muc'/><feature var='urn:xmpp:ping'/>"+
			"<feature var='http://jabber.org/protocol/muc#self-ping-optimization'/></query></iq>"); got != want {
		t.Errorf("service disco#info:\n%s\nwant\n%s", got, want)
	}
	if got, want := disco(bob, service, "items"), "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='"+lounge+"' name='The Lounge'></item></query>"; !strings.Contains(got, want) {
		t.Errorf("service disco#items: %s\nwant %s", got, want)
	}

	info := disco(bob, lounge, "info")
	for _, want := range []string{
		"<identity category='conference' name='The Lounge' type='text'></identity>",
		"<feature var='http://jabber.org/protocol/muc'></feature>",
		"<feature var='muc_persistent'></feature>", "<feature var='muc_open'></feature>",
		"<feature var='muc_unsecured'></feature>", "<feature var='muc_moderated'></feature>",
		"<feature var='muc_public'></feature>", "<feature var='muc_semianonymous'></feature>",
		"<field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roominfo</value></field>",
		"<field label='Description' var='muc#roominfo_description'><value>Hover through the fog</value></field>",
		"<field label='Number of occupants' var='muc#roominfo_occupants'><value>1</value></field>",
		"<field label='Subject' var='muc#roominfo_subject'><value>Fog</value></field>",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("room disco#info has no %s:\n%s", want, info)
		}
	}
	info = disco(bob, "hidden@"+service, "info")
	for _, want := range []string{"muc_temporary", "muc_membersonly", "muc_passwordprotected", "muc_unmoderated", "muc_hidden", "muc_nonanonymous"} {
		if !strings.Contains(info, "<feature var='"+want+"'>") {
			t.Errorf("hidden room disco#info has no %s:\n%s", want, info)
		}
	}
	alice.Send("<iq type='get' id='d' to='locked@%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", service)
	expectError(t, "alice", alice.sync(), "locked@"+service, "cancel", "item-not-found")
}

// TestInvitations: mediated invitations from the room (XEP-0045 §7.8.2),
// declines relayed back, and direct invitations (XEP-0249) passing
// between users untouched.
func TestInvitations(t *testing.T) {
	srv := xmpptest.Start(t, noUserArchive)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_membersonly", "1")+
		field("muc#roomconfig_passwordprotectedroom", "1")+field("muc#roomconfig_roomsecret", "cauldronburn"))

	alice.Send("<message to='%s' id='inv'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@localhost'><reason>Hey Bob, join us</reason></invite></x></message>", lounge)
	expect(t, "alice", alice.sync())
	expect(t, "bob", bob.sync(), "<message from='"+lounge+"' to='bob@localhost' id='inv'>"+
		"<body>alice@localhost invites you to the room "+lounge+": Hey Bob, join us</body>"+
		"<x xmlns='http://jabber.org/protocol/muc#user'><invite from='"+alice.full+"'><reason>Hey Bob, join us</reason></invite>"+
		"<password>cauldronburn</password></x></message>")
	// bob is a member now: he may enter the members-only room.
	if got := bob.join(lounge, "Bob", "<password>cauldronburn</password>"); len(got) != 3 {
		t.Fatalf("invited bob joining: %q", got)
	}
	alice.sync()

	// A member is no admin: no invitations from him in a members-only room.
	bob.Send("<message to='%s' id='inv2'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='carol@localhost'/></x></message>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")
	// Nor from someone outside.
	carol.Send("<message to='%s' id='inv3'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='dave@localhost'/></x></message>", lounge)
	expectError(t, "carol", carol.sync(), lounge, "modify", "not-acceptable")

	alice.Send("<message to='%s' id='inv4'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='carol@localhost'/></x></message>", lounge)
	alice.sync()
	carol.sync()
	carol.Send("<message to='%s' id='dec'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='%s'><reason>Sorry, busy</reason></decline></x></message>", lounge, alice.full)
	expect(t, "carol", carol.sync())
	expect(t, "alice", alice.sync(), "<message from='"+lounge+"' to='"+alice.full+"' id='dec'><x xmlns='http://jabber.org/protocol/muc#user'>"+
		"<decline from='"+carol.full+"'><reason>Sorry, busy</reason></decline></x></message>")

	// XEP-0249: a plain message from user to user.
	alice.Send("<message to='carol@localhost' id='direct'><x xmlns='jabber:x:conference' jid='%s' password='cauldronburn' reason='come'/></message>", lounge)
	alice.sync()
	expect(t, "carol", carol.sync(), "<message from='"+alice.full+"' to='carol@localhost' id='direct'>"+
		"<x xmlns='jabber:x:conference' jid='"+lounge+"' password='cauldronburn' reason='come'/></message>")
}
