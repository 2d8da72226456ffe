package muc_test

import (
	"fmt"
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// gc is a group chat message as an occupant receives it.
func gc(from, to, id, body string) string {
	return fmt.Sprintf("<message from='%s' to='%s' type='groupchat' id='%s'><body>%s</body></message>", from, to, id, body)
}

// delayed is a history message: gc with an XEP-0203 delay from the room.
func delayed(room, nick, to, id, body string) string {
	return fmt.Sprintf("<message from='%s/%s' to='%s' type='groupchat' id='%s'><body>%s</body><delay xmlns='urn:xmpp:delay' from='%s' stamp='*'/></message>",
		room, nick, to, id, body, room)
}

// TestHistory: discussion history on entering, oldest first, with a delay
// from the room, within the limits the newcomer asks for; then the
// subject. Messages without a body (chat states) are not kept.
func TestHistory(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MUC.HistoryLength = 3 })
	alice := login(t, srv, "alice")
	alice.createRoom(t, lounge, "Alice")
	alice.Send("<message to='%s' type='groupchat' id='s'><subject>Toil &amp; trouble</subject></message>", lounge)
	for i := 1; i <= 4; i++ {
		alice.Send("<message to='%s' type='groupchat' id='m%d'><body>line %d</body></message>", lounge, i, i)
	}
	alice.Send("<message to='%s' type='groupchat' id='typing'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", lounge)
	alice.sync()
	subject := func(to string) string {
		return "<message from='" + lounge + "/Alice' to='" + to + "' type='groupchat'><subject>Toil &amp; trouble</subject></message>"
	}

	for i, tc := range []struct {
		name, history string
		lines         []int
	}{
		{"default: all kept (3)", "", []int{2, 3, 4}},
		{"maxstanzas", "<history maxstanzas='2'/>", []int{3, 4}},
		{"maxstanzas 0", "<history maxstanzas='0'/>", nil},
		{"maxchars 0", "<history maxchars='0'/>", nil},
		{"maxchars too small for one", "<history maxchars='50'/>", nil},
		{"maxchars for two", "<history maxchars='" + fmt.Sprint(2*(len(delayed(lounge, "Alice", "bob5@localhost/r", "m2", "line 2"))+30)) + "'/>", []int{3, 4}},
		{"seconds", "<history seconds='3600'/>", []int{2, 3, 4}},
		{"since the future", "<history since='2999-01-01T00:00:00Z'/>", nil},
		{"since the past", "<history since='2001-01-01T00:00:00Z' maxstanzas='1'/>", []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bob := login(t, srv, fmt.Sprint("bob", i))
			got := bob.join(lounge, "Bob", tc.history)
			alice.sync()
			if len(got) < 3 {
				t.Fatalf("bob joining: %q", got)
			}
			var want []string
			for _, l := range tc.lines {
				want = append(want, delayed(lounge, "Alice", bob.full, fmt.Sprint("m", l), fmt.Sprint("line ", l)))
			}
			want = append(want, subject(bob.full))
			expect(t, bob.name, got[2:], want...)
			bob.Send("<presence to='%s/Bob' type='unavailable'/>", lounge)
			bob.sync()
			alice.sync()
		})
	}
}

// TestGroupchat: who may speak and change the subject.
func TestGroupchat(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()

	t.Run("not an occupant", func(t *testing.T) {
		carol.Send("<message to='%s' type='groupchat' id='x'><body>let me in</body></message>", lounge)
		expectError(t, "carol", carol.sync(), lounge, "modify", "not-acceptable")
		alice.expectNothing(t)
	})
	t.Run("participant may not change the subject", func(t *testing.T) {
		bob.Send("<message to='%s' type='groupchat' id='s1'><subject>mine</subject></message>", lounge)
		expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")
	})
	t.Run("moderator changes the subject", func(t *testing.T) {
		alice.Send("<message to='%s' type='groupchat' id='s2'><subject>Fair is foul</subject></message>", lounge)
		want := func(to string) string {
			return "<message from='" + lounge + "/Alice' to='" + to + "' type='groupchat' id='s2'><subject>Fair is foul</subject></message>"
		}
		expect(t, "alice", alice.sync(), want(alice.full))
		expect(t, "bob", bob.sync(), want(bob.full))
	})
	t.Run("participant may when the room allows", func(t *testing.T) {
		alice.configure(t, lounge, field("muc#roomconfig_changesubject", "1"))
		bob.sync()
		bob.Send("<message to='%s' type='groupchat' id='s3'><subject>Foul is fair</subject></message>", lounge)
		if got := bob.sync(); len(got) != 1 || !strings.Contains(got[0].Raw, "Foul is fair") {
			t.Fatalf("bob changing the subject: %q", got)
		}
		alice.sync()
	})
	t.Run("a subject with a body is a message", func(t *testing.T) {
		alice.Send("<message to='%s' type='groupchat' id='sb'><subject>ignored</subject><body>text</body></message>", lounge)
		alice.sync()
		bob.sync()
		got := carol.join(lounge, "Carol", "")
		alice.sync()
		bob.sync()
		if len(got) != 5 {
			t.Fatalf("carol joining: %q", got)
		}
		expect(t, "carol", got[3:],
			"<message from='"+lounge+"/Alice' to='"+carol.full+"' type='groupchat' id='sb'><subject>ignored</subject><body>text</body>"+
				"<delay xmlns='urn:xmpp:delay' from='"+lounge+"' stamp='*'/></message>",
			"<message from='"+lounge+"/Bob' to='"+carol.full+"' type='groupchat'><subject>Foul is fair</subject></message>")
	})
	t.Run("groupchat to an occupant", func(t *testing.T) {
		bob.Send("<message to='%s/Alice' type='groupchat' id='x'><body>psst</body></message>", lounge)
		expectError(t, "bob", bob.sync(), lounge+"/Alice", "modify", "bad-request")
	})
	t.Run("chat to the room", func(t *testing.T) {
		bob.Send("<message to='%s' type='chat' id='x'><body>hello room</body></message>", lounge)
		expectError(t, "bob", bob.sync(), lounge, "modify", "bad-request")
	})
	t.Run("no such room", func(t *testing.T) {
		bob.Send("<message to='nowhere@%s' type='groupchat' id='x'><body>hello</body></message>", service)
		expectError(t, "bob", bob.sync(), "nowhere@"+service, "cancel", "item-not-found")
	})
}

// TestModeratedRoom: visitors may not speak until given voice.
func TestModeratedRoom(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")
	alice.configure(t, lounge, field("muc#roomconfig_moderatedroom", "1"))
	got := bob.join(lounge, "Bob", "")
	expect(t, "bob", got[1:2], presence(lounge+"/Bob", bob.full, item("none", "visitor", bob.full), 110))
	alice.sync()

	bob.Send("<message to='%s' type='groupchat' id='v1'><body>may I?</body></message>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")
	alice.expectNothing(t)

	alice.Send("<iq type='set' id='voice' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Bob' role='participant'><reason>speak</reason></item></query></iq>", lounge)
	voiced := "<item affiliation='none' role='participant' jid='" + bob.full + "'><reason>speak</reason></item>"
	expect(t, "alice", alice.sync(),
		presence(lounge+"/Bob", alice.full, voiced),
		"<iq type='result' id='voice' from='"+lounge+"' to='"+alice.full+"'></iq>")
	expect(t, "bob", bob.sync(), presence(lounge+"/Bob", bob.full, voiced, 110))

	bob.Send("<message to='%s' type='groupchat' id='v2'><body>thanks</body></message>", lounge)
	expect(t, "bob", bob.sync(), gc(lounge+"/Bob", bob.full, "v2", "thanks"))
	expect(t, "alice", alice.sync(), gc(lounge+"/Bob", alice.full, "v2", "thanks"))

	alice.Send("<iq type='set' id='mute' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Bob' role='visitor'/></query></iq>", lounge)
	alice.sync()
	expect(t, "bob", bob.sync(), presence(lounge+"/Bob", bob.full, item("none", "visitor", bob.full), 110))
	bob.Send("<message to='%s' type='groupchat' id='v3'><body>again?</body></message>", lounge)
	expectError(t, "bob", bob.sync(), lounge, "auth", "forbidden")
}

// TestPrivateMessages: between occupant JIDs, with a muc#user element.
func TestPrivateMessages(t *testing.T) {
	srv := xmpptest.Start(t, noUserArchive)
	alice, bob, carol := login(t, srv, "alice"), login(t, srv, "bob"), login(t, srv, "carol")
	alice.createRoom(t, lounge, "Alice")
	bob.join(lounge, "Bob", "")
	alice.sync()

	bob.Send("<message to='%s/Alice' type='chat' id='pm1'><body>just you &amp; me</body></message>", lounge)
	expect(t, "bob", bob.sync())
	expect(t, "alice", alice.sync(),
		"<message from='"+lounge+"/Bob' to='"+alice.full+"' type='chat' id='pm1'><body>just you &amp; me</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>")

	for _, tc := range []struct {
		name string
		who  *user
		to   string
		typ  string
		cond string
	}{
		{"to nobody", bob, lounge + "/Nobody", "cancel", "item-not-found"},
		{"not an occupant", carol, lounge + "/Alice", "modify", "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.who.Send("<message to='%s' type='chat' id='x'><body>?</body></message>", tc.to)
			expectError(t, tc.who.name, tc.who.sync(), tc.to, tc.typ, tc.cond)
		})
	}
	t.Run("not allowed by the room", func(t *testing.T) {
		alice.configure(t, lounge, field("muc#roomconfig_allowpm", "moderators"))
		bob.sync()
		bob.Send("<message to='%s/Alice' type='chat' id='x'><body>?</body></message>", lounge)
		expectError(t, "bob", bob.sync(), lounge+"/Alice", "cancel", "not-allowed")
		// A moderator still may.
		alice.Send("<message to='%s/Bob' type='chat' id='pm2'><body>yes?</body></message>", lounge)
		alice.sync()
		if got := bob.sync(); len(got) != 1 || got[0].Attr("from") != lounge+"/Alice" {
			t.Fatalf("bob got %q", got)
		}
	})
}

// TestRateLimit: past the burst, messages are refused until the bucket
// refills.
func TestRateLimit(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.MUC.MessagesPerSecond, c.MUC.MessageBurst = 1, 3 })
	alice := login(t, srv, "alice")
	alice.createRoom(t, lounge, "Alice")
	for i := range 4 {
		alice.Send("<message to='%s' type='groupchat' id='r%d'><body>%d</body></message>", lounge, i, i)
	}
	got := alice.sync()
	if len(got) != 4 {
		t.Fatalf("alice got %d stanzas, want 3 messages and an error: %q", len(got), got)
	}
	expect(t, "alice", got[:3], gc(lounge+"/Alice", alice.full, "r0", "0"), gc(lounge+"/Alice", alice.full, "r1", "1"), gc(lounge+"/Alice", alice.full, "r2", "2"))
	expectError(t, "alice", got[3:], lounge, "wait", "resource-constraint")
	xmpptest.WaitFor(t, wait, func() error {
		alice.Send("<message to='%s' type='groupchat' id='later'><body>later</body></message>", lounge)
		if got := alice.sync(); len(got) != 1 || got[0].Attr("type") != "groupchat" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

// TestSelfPing: XEP-0410. The service answers a ping to one's own
// occupant JID, and refuses it with not-acceptable when not joined.
// Other IQs between occupants are relayed, and so are their answers.
func TestSelfPing(t *testing.T) {
	srv := xmpptest.Start(t)
	alice, bob := login(t, srv, "alice"), login(t, srv, "bob")
	alice.createRoom(t, lounge, "Alice")

	alice.Send("<iq type='get' id='p1' to='%s/Alice'><ping xmlns='urn:xmpp:ping'/></iq>", lounge)
	expect(t, "alice", alice.sync(), "<iq type='result' id='p1' from='"+lounge+"/Alice' to='"+alice.full+"'></iq>")

	bob.Send("<iq type='get' id='p2' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>", lounge)
	expectError(t, "bob", bob.sync(), lounge+"/Bob", "cancel", "not-acceptable")

	bob.join(lounge, "Bob", "")
	alice.sync()
	bob.Send("<iq type='get' id='v1' to='%s/Alice'><query xmlns='jabber:iq:version'/></iq>", lounge)
	bob.sync()
	expect(t, "alice", alice.sync(), "<iq type='get' id='v1' from='"+lounge+"/Bob' to='"+alice.full+"'><query xmlns='jabber:iq:version'/></iq>")
	alice.Send("<iq type='result' id='v1' to='%s/Bob'><query xmlns='jabber:iq:version'><name>x</name></query></iq>", lounge)
	alice.sync()
	expect(t, "bob", bob.sync(), "<iq type='result' id='v1' from='"+lounge+"/Alice' to='"+bob.full+"'><query xmlns='jabber:iq:version'><name>x</name></query></iq>")
}
