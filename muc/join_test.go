package muc_test

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestCreateAndJoin: the first join creates a locked room (201), an
// instant room form unlocks it, and a second user sees the owner first,
// then itself, then the empty subject; the owner sees the newcomer. A
// group chat message is reflected to everyone, the sender included, with
// its id.
func TestCreateAndJoin(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")

	expect(t, "alice", alice.join(lounge, "Alice", ""),
		presence(lounge+"/Alice", alice.full, item("owner", "moderator", alice.full), 110, 201),
		noSubject(lounge, alice.full))

	// Locked until configured: bob cannot enter.
	expectError(t, "bob", bob.join(lounge, "Bob", ""), lounge+"/Bob", "cancel", "item-not-found")

	expect(t, "alice", alice.configure(t, lounge, ""))
	expect(t, "bob", bob.join(lounge, "Bob", ""),
		presence(lounge+"/Alice", bob.full, item("owner", "moderator", "")),
		presence(lounge+"/Bob", bob.full, item("none", "participant", bob.full), 110),
		noSubject(lounge, bob.full))
	// alice is a moderator: she sees bob's real JID.
	expect(t, "alice", alice.sync(),
		presence(lounge+"/Bob", alice.full, item("none", "participant", bob.full)))

	bob.Send("<message to='%s' type='groupchat' id='m1'><body>hi all</body></message>", lounge)
	msg := func(to string) string {
		return "<message from='" + lounge + "/Bob' to='" + to + "' type='groupchat' id='m1'><body>hi all</body></message>"
	}
	expect(t, "bob", bob.sync(), msg(bob.full))
	expect(t, "alice", alice.sync(), msg(alice.full))
}

// TestJoinCarriesPresence: show and status of the join are in the
// presence the others receive, and a later presence update is broadcast,
// the occupant's own copy with the update's id.
func TestJoinCarriesPresence(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")

	bob.Send("<presence to='%s/Bob'><show>away</show><status>lunch</status><x xmlns='http://jabber.org/protocol/muc'/></presence>", lounge)
	bob.sync()
	expect(t, "alice", alice.sync(),
		"<presence from='"+lounge+"/Bob' to='"+alice.full+"'><show>away</show><status>lunch</status>"+
			"<x xmlns='http://jabber.org/protocol/muc#user'>"+item("none", "participant", bob.full)+"</x></presence>")

	// The occupant's own copy carries the id of its presence.
	bob.Send("<presence id='u1' to='%s/Bob'><show>dnd</show></presence>", lounge)
	expect(t, "bob", bob.sync(),
		"<presence id='u1' from='"+lounge+"/Bob' to='"+bob.full+"'><show>dnd</show>"+
			"<x xmlns='http://jabber.org/protocol/muc#user'>"+item("none", "participant", bob.full)+"<status code='110'/></x></presence>")
	expect(t, "alice", alice.sync(),
		"<presence from='"+lounge+"/Bob' to='"+alice.full+"'><show>dnd</show>"+
			"<x xmlns='http://jabber.org/protocol/muc#user'>"+item("none", "participant", bob.full)+"</x></presence>")
}

// TestJoinErrors: each refusal of XEP-0045 §7.2 with its error type and
// condition, from the occupant JID asked for.
func TestJoinErrors(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MUC.MaxRoomsPerUser = 2 })
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	const (
		secret  = "secret@" + service
		members = "members@" + service
		full    = "full@" + service
		banned  = "banned@" + service
	)
	alice.createRoom(t, lounge, "Alice")
	alice.createRoom(t, secret, "Alice")
	alice.configure(t, secret, field("muc#roomconfig_passwordprotectedroom", "1")+field("muc#roomconfig_roomsecret", "cauldron"))
	carol := login(t, srv, "carol")
	carol.createRoom(t, members, "Carol")
	carol.configure(t, members, field("muc#roomconfig_membersonly", "1"))
	carol.createRoom(t, full, "Carol")
	carol.configure(t, full, field("muc#roomconfig_maxusers", "1"))
	dave := login(t, srv, "dave")
	dave.createRoom(t, banned, "Dave")
	dave.Send("<iq type='set' id='ban' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='bob@localhost'/></query></iq>", banned)
	dave.sync()

	for _, tc := range []struct {
		name, to, extra string
		typ, cond       string
	}{
		{"nick in use", lounge + "/Alice", "", "cancel", "conflict"},
		{"no nick", lounge, "", "modify", "jid-malformed"},
		{"no password", secret + "/Bob", "", "auth", "not-authorized"},
		{"wrong password", secret + "/Bob", "<password>toil</password>", "auth", "not-authorized"},
		{"members only", members + "/Bob", "", "auth", "registration-required"},
		{"room full", full + "/Bob", "", "wait", "service-unavailable"},
		{"banned", banned + "/Bob", "", "auth", "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bob.Send("<presence to='%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>", tc.to, tc.extra)
			expectError(t, "bob", bob.sync(), tc.to, tc.typ, tc.cond)
		})
	}
	t.Run("right password", func(t *testing.T) {
		got := bob.join(secret, "Bob", "<password>cauldron</password>")
		if len(got) != 3 || !strings.Contains(got[1].Raw, "110") {
			t.Fatalf("bob joining with the password: %q", got)
		}
	})
	t.Run("too many rooms", func(t *testing.T) {
		const third = "third@" + service
		alice.sync()
		expectError(t, "alice", alice.join(third, "Alice", ""), third+"/Alice", "cancel", "not-allowed")
		// Once one of hers is gone she may create another.
		alice.Send("<presence to='%s/Alice' type='unavailable'/>", lounge)
		alice.sync()
		if got := alice.join(third, "Alice", ""); len(got) != 2 || !strings.Contains(got[0].Raw, "201") {
			t.Fatalf("alice creating a room after leaving one: %q", got)
		}
	})
}

// TestNonAnonymous: in a room where anyone may see real JIDs, a newcomer
// gets 100 and every occupant sees JIDs; a semi-anonymous room shows them
// to moderators only.
func TestNonAnonymous(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	// Semi-anonymous: carol (participant) does not see bob's JID.
	expect(t, "carol", carol.join(lounge, "Carol", ""),
		presence(lounge+"/Alice", carol.full, item("owner", "moderator", "")),
		presence(lounge+"/Bob", carol.full, item("none", "participant", "")),
		presence(lounge+"/Carol", carol.full, item("none", "participant", carol.full), 110),
		noSubject(lounge, carol.full))
	carol.Send("<presence to='%s/Carol' type='unavailable'/>", lounge)
	carol.sync()
	alice.sync()
	bob.sync()

	got := alice.configure(t, lounge, field("muc#roomconfig_whois", "anyone"))
	cfgMsg := func(to string, codes string) string {
		return "<message from='" + lounge + "' to='" + to + "' type='groupchat'><x xmlns='http://jabber.org/protocol/muc#user'>" + codes + "</x></message>"
	}
	expect(t, "alice", got, cfgMsg(alice.full, "<status code='104'/><status code='172'/>"))
	expect(t, "bob", bob.sync(), cfgMsg(bob.full, "<status code='104'/><status code='172'/>"))
	expect(t, "carol", carol.join(lounge, "Carol", ""),
		presence(lounge+"/Alice", carol.full, item("owner", "moderator", alice.full)),
		presence(lounge+"/Bob", carol.full, item("none", "participant", bob.full)),
		presence(lounge+"/Carol", carol.full, item("none", "participant", carol.full), 110, 100),
		noSubject(lounge, carol.full))
	alice.sync()

	got = alice.configure(t, lounge, field("muc#roomconfig_whois", "moderators"))
	expect(t, "alice", got, cfgMsg(alice.full, "<status code='104'/><status code='173'/>"))
}

// TestNickChange: 303 with the new nick, then the new presence; a nick in
// use is refused with conflict; spaces around a nick are trimmed (210).
func TestNickChange(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()

	bob.Send("<presence to='%s/Robert'/>", lounge)
	expect(t, "bob", bob.sync(),
		unavailable(lounge+"/Bob", bob.full, "<item affiliation='none' role='participant' jid='"+bob.full+"' nick='Robert'/>", 110, 303),
		presence(lounge+"/Robert", bob.full, item("none", "participant", bob.full), 110))
	expect(t, "alice", alice.sync(),
		unavailable(lounge+"/Bob", alice.full, "<item affiliation='none' role='participant' jid='"+bob.full+"' nick='Robert'/>", 303),
		presence(lounge+"/Robert", alice.full, item("none", "participant", bob.full)))

	bob.Send("<presence to='%s/Alice'/>", lounge)
	expectError(t, "bob", bob.sync(), lounge+"/Alice", "cancel", "conflict")

	carol := login(t, srv, "carol")
	carol.Send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", lounge, " Carol ")
	got := carol.sync()
	if len(got) != 4 {
		t.Fatalf("carol joining: %q", got)
	}
	expect(t, "carol", got[2:3], presence(lounge+"/Carol", carol.full, item("none", "participant", carol.full), 110, 210))
}

// TestExit: leaving tells everyone (self with 110); a session whose
// stream ends is removed (the router sends its unavailable presence, or
// the unbind hook finds it when it never sent presence); the temporary
// room goes with its last occupant.
func TestExit(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()

	bob.Send("<presence to='%s/Bob' type='unavailable'><status>bye</status></presence>", lounge)
	expect(t, "bob", bob.sync(),
		"<presence type='unavailable' from='"+lounge+"/Bob' to='"+bob.full+"'><status>bye</status>"+
			"<x xmlns='http://jabber.org/protocol/muc#user'>"+item("none", "none", bob.full)+"<status code='110'/></x></presence>")
	expect(t, "alice", alice.sync(),
		"<presence type='unavailable' from='"+lounge+"/Bob' to='"+alice.full+"'><status>bye</status>"+
			"<x xmlns='http://jabber.org/protocol/muc#user'>"+item("none", "none", bob.full)+"</x></presence>")

	// The stream ends without leaving.
	bob.join(lounge, "Bob", "")
	alice.sync()
	bob.Close()
	alice.Expect(wait, "bob's unavailable presence", func(e xmpptest.Element) bool {
		return e.Attr("type") == "unavailable" && e.Attr("from") == lounge+"/Bob"
	})

	// A session that never sent presence: the router has nothing to
	// tell; the unbind hook takes it out.
	carol := srv.AddUser(t, "carol", "pw-carol")
	cc := srv.Login(t, carol, "pw-carol", xmpptest.LoginOptions{Resource: "r"})
	cc.Send("<presence to='%s/Carol'><x xmlns='http://jabber.org/protocol/muc'/></presence>", lounge)
	cc.Sync()
	alice.sync()
	cc.Close()
	alice.Expect(wait, "carol's unavailable presence", func(e xmpptest.Element) bool {
		return e.Attr("type") == "unavailable" && e.Attr("from") == lounge+"/Carol"
	})

	// The last occupant leaves: the temporary room is destroyed, and the
	// next join creates a new one.
	alice.Send("<presence to='%s/Alice' type='unavailable'/>", lounge)
	alice.sync()
	dave := login(t, srv, "dave")
	got := dave.join(lounge, "Dave", "")
	expect(t, "dave", got,
		presence(lounge+"/Dave", dave.full, item("owner", "moderator", dave.full), 110, 201),
		noSubject(lounge, dave.full))
}

// TestGroupchat10Join: a presence without the MUC element (groupchat 1.0)
// creates an instant room, open at once.
func TestGroupchat10Join(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.Send("<presence to='%s/Alice'/>", lounge)
	alice.sync()
	got := bob.join(lounge, "Bob", "")
	if len(got) != 3 || !strings.Contains(got[1].Raw, "110") {
		t.Fatalf("bob joining an instant room: %q", got)
	}
}

// TestShutdown: occupants learn that the service is going away (332).
func TestShutdown(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()
	srv.Stop(t)
	for _, u := range []*user{alice, bob} {
		e := u.Expect(wait, "332", func(e xmpptest.Element) bool { return e.Name.Local == "presence" })
		want := unavailable(lounge+"/"+strings.ToUpper(u.name[:1])+u.name[1:], u.full,
			item(map[string]string{"alice": "owner", "bob": "none"}[u.name], "none", u.full), 110, 332)
		expect(t, u.name, []xmpptest.Element{e}, want)
	}
}

// TestGhost: an occupant whose client answers the room with a
// delivery-related error is taken out (333).
func TestGhost(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()

	// An error that says nothing about delivery changes nothing.
	bob.Send("<message to='%s' type='error' id='e'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", lounge)
	bob.sync()
	alice.expectNothing(t)

	bob.Send("<message to='%s' type='error' id='e'><error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", lounge)
	expect(t, "bob", bob.sync())
	expect(t, "alice", alice.sync(), unavailable(lounge+"/Bob", alice.full, item("none", "none", bob.full), 333))
}

// TestRoomIQs: what a room answers itself.
func TestRoomIQs(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := login(t, srv, "alice")
	alice.createRoom(t, lounge, "Alice")
	for _, tc := range []struct {
		name, to, query string
		want            string // a result's payload, or an error condition
	}{
		{"ping", lounge, "<ping xmlns='urn:xmpp:ping'/>", ""},
		{"items", lounge, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "<query xmlns='http://jabber.org/protocol/disco#items'/>"},
		{"reserved nick", lounge, "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>", "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>"},
		{"unknown node", lounge, "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>", "item-not-found"},
		{"unknown query", lounge, "<query xmlns='jabber:iq:register'/>", "service-unavailable"},
		{"no such room", "nowhere@" + service, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "item-not-found"},
		{"service ping", service, "<ping xmlns='urn:xmpp:ping'/>", ""},
		{"service unknown query", service, "<query xmlns='jabber:iq:register'/>", "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.Send("<iq type='get' id='q' to='%s'>%s</iq>", tc.to, tc.query)
			got := alice.sync()
			if strings.HasPrefix(tc.want, "<") || tc.want == "" {
				expect(t, "alice", got, "<iq type='result' id='q' from='"+tc.to+"' to='"+alice.full+"'>"+tc.want+"</iq>")
				return
			}
			typ := "cancel"
			expectError(t, "alice", got, tc.to, typ, tc.want)
		})
	}
}
