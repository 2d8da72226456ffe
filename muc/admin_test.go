package muc_test

import (
	"fmt"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// adminSet sends a muc#admin set with items and returns what u received.
func (u *user) adminSet(room, id, items string) []xmpptest.Element {
	u.Send("<iq type='set' id='%s' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'>%s</query></iq>", id, room, items)
	return u.sync()
}

// result is an empty IQ result from the room.
func result(id, room, to string) string {
	return fmt.Sprintf("<iq type='result' id='%s' from='%s' to='%s'></iq>", id, room, to)
}

// TestKick: the kicked occupant gets 110 and 307 with the actor and the
// reason, the others 307; moderators cannot kick admins or owners, and
// participants cannot kick at all.
func TestKick(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	carol.join(lounge, "Carol", "")
	alice.sync()
	bob.sync()

	expectError(t, "bob", bob.adminSet(lounge, "k0", "<item nick='Carol' role='none'/>"), lounge, "auth", "forbidden")

	got := alice.adminSet(lounge, "k1", "<item nick='Bob' role='none'><reason>Avaunt, you cullion!</reason></item>")
	kicked := func(jid string) string {
		return "<item affiliation='none' role='none'" + jid + "><actor nick='Alice'/><reason>Avaunt, you cullion!</reason></item>"
	}
	expect(t, "alice", got,
		unavailable(lounge+"/Bob", alice.full, kicked(" jid='"+bob.full+"'"), 307),
		result("k1", lounge, alice.full))
	expect(t, "bob", bob.sync(), unavailable(lounge+"/Bob", bob.full, kicked(" jid='"+bob.full+"'"), 110, 307))
	expect(t, "carol", carol.sync(), unavailable(lounge+"/Bob", carol.full, kicked(""), 307))

	// A kicked user may come back.
	if got := bob.join(lounge, "Bob", ""); len(got) != 4 {
		t.Fatalf("bob rejoining: %q", got)
	}
	alice.sync()
	carol.sync()

	// Make carol a moderator (by an owner); she still cannot kick the owner.
	alice.adminSet(lounge, "m", "<item nick='Carol' role='moderator'/>")
	bob.sync()
	carol.sync()
	expectError(t, "carol", carol.adminSet(lounge, "k2", "<item nick='Alice' role='none'/>"), lounge, "cancel", "not-allowed")
	expectError(t, "carol", carol.adminSet(lounge, "k3", "<item nick='Nobody' role='none'/>"), lounge, "cancel", "item-not-found")
	// A moderator who is not an admin cannot take moderator away.
	alice.adminSet(lounge, "m2", "<item nick='Bob' role='moderator'/>")
	bob.sync()
	carol.sync()
	expectError(t, "carol", carol.adminSet(lounge, "k4", "<item nick='Bob' role='participant'/>"), lounge, "cancel", "not-allowed")
}

// TestBan: an admin bans by JID; the occupant leaves with 301 and cannot
// come back; the outcast list shows it with the reason.
func TestBan(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	carol.join(lounge, "Carol", "")
	alice.sync()
	bob.sync()
	alice.adminSet(lounge, "a", "<item jid='carol@localhost' affiliation='admin'/>")
	bob.sync()
	expect(t, "carol", carol.sync(), presence(lounge+"/Carol", carol.full, item("admin", "moderator", carol.full), 110))

	banned := func(jid string) string {
		return "<item affiliation='outcast' role='none'" + jid + "><actor nick='Carol'/><reason>Treason</reason></item>"
	}
	got := carol.adminSet(lounge, "b1", "<item jid='bob@localhost' affiliation='outcast'><reason>Treason</reason></item>")
	expect(t, "carol", got,
		unavailable(lounge+"/Bob", carol.full, banned(" jid='"+bob.full+"'"), 301),
		result("b1", lounge, carol.full))
	expect(t, "bob", bob.sync(), unavailable(lounge+"/Bob", bob.full, banned(" jid='"+bob.full+"'"), 110, 301))
	expect(t, "alice", alice.sync(), unavailable(lounge+"/Bob", alice.full, banned(" jid='"+bob.full+"'"), 301))

	expectError(t, "bob", bob.join(lounge, "Bob", ""), lounge+"/Bob", "auth", "forbidden")

	carol.Send("<iq type='get' id='l' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>", lounge)
	expect(t, "carol", carol.sync(), "<iq type='result' id='l' from='"+lounge+"' to='"+carol.full+"'><query xmlns='http://jabber.org/protocol/muc#admin'>"+
		"<item affiliation='outcast' jid='bob@localhost'><reason>Treason</reason></item></query></iq>")
}

// TestAffiliationRules: XEP-0045's tables of who may grant and revoke
// what, each refusal with its condition, and the presence an occupant's
// affiliation change produces.
func TestAffiliationRules(t *testing.T) {
	srv := xmpptest.Start(t)
	owner, admin, member, other := login(t, srv, "owner"), login(t, srv, "admin"), login(t, srv, "member"), login(t, srv, "other")
	owner.createRoom(t, lounge, "Owner")
	owner.adminSet(lounge, "1", "<item jid='admin@localhost' affiliation='admin'/><item jid='member@localhost' affiliation='member'/>")
	for _, u := range []*user{admin, member, other} {
		u.join(lounge, u.name, "")
	}
	for _, u := range []*user{owner, admin, member, other} {
		u.sync()
	}

	for _, tc := range []struct {
		name      string
		actor     *user
		item      string
		typ, cond string // "" for success
	}{
		{"participant grants membership", other, "<item jid='x@localhost' affiliation='member'/>", "auth", "forbidden"},
		{"member bans", member, "<item jid='x@localhost' affiliation='outcast'/>", "auth", "forbidden"},
		{"admin grants admin", admin, "<item jid='x@localhost' affiliation='admin'/>", "auth", "forbidden"},
		{"admin grants owner", admin, "<item jid='x@localhost' affiliation='owner'/>", "auth", "forbidden"},
		{"admin bans the owner", admin, "<item jid='owner@localhost' affiliation='outcast'/>", "cancel", "not-allowed"},
		{"admin revokes an admin's membership", admin, "<item jid='admin@localhost' affiliation='member'/>", "cancel", "not-allowed"},
		{"last owner steps down", owner, "<item jid='owner@localhost' affiliation='admin'/>", "cancel", "conflict"},
		{"both affiliation and role", owner, "<item nick='other' affiliation='member' role='visitor'/>", "modify", "bad-request"},
		{"admin revokes voice of the owner", admin, "<item nick='Owner' role='visitor'/>", "cancel", "not-allowed"},
		{"participant revokes voice", other, "<item nick='member' role='visitor'/>", "auth", "forbidden"},
		{"admin grants membership", admin, "<item jid='x@localhost' affiliation='member'/>", "", ""},
		{"admin bans a stranger", admin, "<item jid='y@localhost' affiliation='outcast'/>", "", ""},
		{"owner grants owner", owner, "<item jid='z@localhost' affiliation='owner'/>", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.actor.adminSet(lounge, "t", tc.item)
			if tc.cond == "" {
				expect(t, tc.actor.name, got, result("t", lounge, tc.actor.full))
				return
			}
			expectError(t, tc.actor.name, got, lounge, tc.typ, tc.cond)
		})
	}

	t.Run("lists", func(t *testing.T) {
		owner.Send("<iq type='get' id='l' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", lounge)
		expect(t, "owner", owner.sync(), "<iq type='result' id='l' from='"+lounge+"' to='"+owner.full+"'><query xmlns='http://jabber.org/protocol/muc#admin'>"+
			"<item affiliation='member' jid='member@localhost'/><item affiliation='member' jid='x@localhost'/></query></iq>")
		member.Send("<iq type='get' id='l' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>", lounge)
		expectError(t, "member", member.sync(), lounge, "auth", "forbidden")
		admin.Send("<iq type='get' id='r' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item role='moderator'/></query></iq>", lounge)
		expect(t, "admin", admin.sync(), "<iq type='result' id='r' from='"+lounge+"' to='"+admin.full+"'><query xmlns='http://jabber.org/protocol/muc#admin'>"+
			"<item nick='Owner' role='moderator' affiliation='owner' jid='"+owner.full+"'/>"+
			"<item nick='admin' role='moderator' affiliation='admin' jid='"+admin.full+"'/></query></iq>")
	})

	t.Run("affiliation change of an occupant", func(t *testing.T) {
		got := owner.adminSet(lounge, "p", "<item jid='other@localhost' affiliation='admin'/>")
		expect(t, "owner", got, presence(lounge+"/other", owner.full, item("admin", "moderator", other.full)), result("p", lounge, owner.full))
		expect(t, "other", other.sync(), presence(lounge+"/other", other.full, item("admin", "moderator", other.full), 110))
		expect(t, "member", member.sync(), presence(lounge+"/other", member.full, item("admin", "moderator", "")))
		admin.sync()
		// The second owner may now step the first down.
		owner.adminSet(lounge, "p2", "<item jid='other@localhost' affiliation='owner'/>")
		for _, u := range []*user{admin, member, other} {
			u.sync()
		}
		got = other.adminSet(lounge, "p3", "<item jid='owner@localhost' affiliation='none'/>")
		expect(t, "other", got, presence(lounge+"/Owner", other.full, item("none", "participant", owner.full)), result("p3", lounge, other.full))
	})
}

// TestMembersOnly: removing the membership of an occupant of a
// members-only room removes it (321); making a room members-only removes
// the non-members (322).
func TestMembersOnly(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	alice.adminSet(lounge, "m", "<item jid='bob@localhost' affiliation='member'/>")
	bob.join(lounge, "Bob", "")
	carol.join(lounge, "Carol", "")
	alice.sync()
	bob.sync()

	got := alice.configure(t, lounge, field("muc#roomconfig_membersonly", "1"))
	cfg := func(to string) string {
		return "<message from='" + lounge + "' to='" + to + "' type='groupchat'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"
	}
	expect(t, "alice", got, cfg(alice.full), unavailable(lounge+"/Carol", alice.full, item("none", "none", carol.full), 322))
	expect(t, "carol", carol.sync(), cfg(carol.full), unavailable(lounge+"/Carol", carol.full, item("none", "none", carol.full), 110, 322))
	expect(t, "bob", bob.sync(), cfg(bob.full), unavailable(lounge+"/Carol", bob.full, item("none", "none", ""), 322))

	got = alice.adminSet(lounge, "r", "<item jid='bob@localhost' affiliation='none'/>")
	expect(t, "alice", got, unavailable(lounge+"/Bob", alice.full,
		"<item affiliation='none' role='none' jid='"+bob.full+"'><actor nick='Alice'/></item>", 321), result("r", lounge, alice.full))
	expect(t, "bob", bob.sync(), unavailable(lounge+"/Bob", bob.full,
		"<item affiliation='none' role='none' jid='"+bob.full+"'><actor nick='Alice'/></item>", 110, 321))
	expectError(t, "bob", bob.join(lounge, "Bob", ""), lounge+"/Bob", "auth", "registration-required")
}
