package compliance_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// The IM suite (XEP-0479 §2.3).

// checkRFC6121: roster get, set and push (§2.1–2.3), a presence
// subscription requested and approved with the roster pushes of each step
// (§3.1), presence broadcast to the new subscriber (§4.2) and on going
// offline (§4.5), and a message to a bare JID delivered to the available
// resource (§8.5.2.1.1).
func checkRFC6121(t *testing.T, e *env) {
	a, b := e.alice, e.bob
	if got := a.ok("get", "", "<query xmlns='jabber:iq:roster'/>"); strings.Contains(got.Inner, "<item") {
		t.Fatalf("a new account's roster: %s", got.Raw)
	}
	isPush := func(parts ...string) func(xmpptest.Element) bool {
		return func(el xmpptest.Element) bool {
			if el.Name.Local != "iq" || el.Attr("type") != "set" || !el.Contains("<query xmlns='jabber:iq:roster'") {
				return false
			}
			for _, p := range parts {
				if !el.Contains(p) {
					return false
				}
			}
			return true
		}
	}
	a.ok("set", "", "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query>")
	a.expect("the roster push of the new item", isPush("jid='bob@localhost'", "name='Bob'", "subscription='none'", "<group>Friends</group>"))

	a.Send("<presence type='subscribe' to='bob@localhost'/>")
	a.expect("the push of the pending subscription", isPush("jid='bob@localhost'", "ask='subscribe'"))
	b.expect("the subscription request", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("type") == "subscribe" && el.Attr("from") == "alice@localhost"
	})
	b.Send("<presence type='subscribed' to='alice@localhost'/>")
	a.expect("the push of the approved subscription", isPush("jid='bob@localhost'", "subscription='to'"))
	a.expect("the approval", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("type") == "subscribed" && el.Attr("from") == "bob@localhost"
	})
	a.expect("bob's presence after the approval", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("type") == "" && el.Attr("from") == "bob@localhost/b"
	})
	if got := a.ok("get", "", "<query xmlns='jabber:iq:roster'/>"); !got.Contains("subscription='to'") {
		t.Fatalf("roster after the subscription: %s", got.Raw)
	}

	a.Send("<message to='bob@localhost' type='chat'><body>to the bare JID</body></message>")
	b.expect("a message to the bare JID", isMessage("alice@localhost/a", "to the bare JID"))
	b.Send("<presence type='unavailable'/>")
	a.expect("bob going offline", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("type") == "unavailable" && el.Attr("from") == "bob@localhost/b"
	})
}

// avatarPNG is a w×h PNG.
func avatarPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// vcardWithPhoto is a vCard set with img as its photo.
func vcardWithPhoto(img []byte) string {
	return "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		base64.StdEncoding.EncodeToString(img) + "</BINVAL></PHOTO></vCard>"
}

// checkXEP0398: urn:xmpp:pep-vcard-conversion:0 on the account (§5); a
// vCard photo set by a vcard-temp client appears as the XEP-0084 avatar
// (data and metadata items, id its SHA-1; §3.2), and an avatar published
// by a XEP-0084 client appears as the vCard photo (§3.1).
func checkXEP0398(t *testing.T, e *env) {
	a := e.alice
	contains(t, "account disco#info", a.discoInfo("alice@localhost", ""), feature("urn:xmpp:pep-vcard-conversion:0"))

	img := avatarPNG(t, 4, 3)
	id := sha1Hex(img)
	a.ok("set", "", vcardWithPhoto(img))
	waitItems(t, a, "alice@localhost", "urn:xmpp:avatar:metadata", "<info ", "id='"+id+"'", "bytes='"+fmt.Sprint(len(img))+"'", "type='image/png'", "width='4'", "height='3'")
	waitItems(t, a, "alice@localhost", "urn:xmpp:avatar:data", "<item id='"+id+"'><data xmlns='urn:xmpp:avatar:data'>"+base64.StdEncoding.EncodeToString(img)+"</data>")

	img2 := avatarPNG(t, 8, 8)
	id2 := sha1Hex(img2)
	b64 := base64.StdEncoding.EncodeToString(img2)
	a.ok("set", "", publish("urn:xmpp:avatar:data", id2, "<data xmlns='urn:xmpp:avatar:data'>"+b64+"</data>"))
	a.ok("set", "", publish("urn:xmpp:avatar:metadata", id2,
		fmt.Sprintf("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='%d' id='%s' type='image/png' width='8' height='8'/></metadata>", len(img2), id2)))
	waitFor(t, "the PEP avatar in the vCard", func() error {
		v := e.bob.ok("get", "alice@localhost", "<vCard xmlns='vcard-temp'/>")
		if !v.Contains("<BINVAL>" + b64 + "</BINVAL>") {
			return fmt.Errorf("vCard read by bob: %s", v.Raw)
		}
		return nil
	})
}

// waitItems waits until c reads node of owner with an item containing all
// of parts.
func waitItems(t *testing.T, c *client, owner, node string, parts ...string) xmpptest.Element {
	t.Helper()
	var got xmpptest.Element
	waitFor(t, node+" items", func() error {
		got = c.iq("get", owner, items(node))
		for _, p := range parts {
			if !got.Contains(p) {
				return fmt.Errorf("%s lacks %s", got.Raw, p)
			}
		}
		return nil
	})
	return got
}

// waitFor is xmpptest.WaitFor for what the server does after answering.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	xmpptest.WaitFor(t, wait, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// checkXEP0153: after the user sets a vCard photo, the user's presence
// carries its SHA-1 in <x xmlns='vcard-temp:x:update'/> (§4.1, §4.2),
// broadcast again to contacts at once.
func checkXEP0153(t *testing.T, e *env) {
	subscribe(t, e.bob, e.alice)
	img := avatarPNG(t, 2, 2)
	e.alice.ok("set", "", vcardWithPhoto(img))
	want := "<x xmlns='vcard-temp:x:update'><photo>" + sha1Hex(img) + "</photo></x>"
	e.bob.expect("alice's presence with the photo hash", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == "alice@localhost/a" && el.Contains(want)
	})
	// A new presence from the client keeps it, whatever the client put.
	e.alice.Send("<presence><show>away</show><x xmlns='vcard-temp:x:update'/></presence>")
	e.bob.expect("alice's next presence with the photo hash", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == "alice@localhost/a" && el.Contains("<show>away</show>") && el.Contains(want)
	})
}

// checkXEP0054: vcard-temp on the server and the account (§7); the owner
// sets and gets (§3.1, §3.2), anyone reads it at the bare JID (§3.3),
// nobody else writes it.
func checkXEP0054(t *testing.T, e *env) {
	contains(t, "server disco#info", e.alice.discoInfo(domain, ""), feature("vcard-temp"))
	contains(t, "account disco#info", e.bob.discoInfo("alice@localhost", ""), feature("vcard-temp"))
	const card = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><EMAIL><USERID>alice@example.org</USERID></EMAIL></vCard>"
	e.alice.ok("set", "", card)
	contains(t, "the owner's get", e.alice.ok("get", "", "<vCard xmlns='vcard-temp'/>"), "<FN>Alice Liddell</FN>", "<USERID>alice@example.org</USERID>")
	contains(t, "another user's get", e.bob.ok("get", "alice@localhost", "<vCard xmlns='vcard-temp'/>"), "<FN>Alice Liddell</FN>")
	e.bob.fails("set", "alice@localhost", "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>", "forbidden")
	contains(t, "after another user's refused set", e.alice.ok("get", "", "<vCard xmlns='vcard-temp'/>"), "<FN>Alice Liddell</FN>")
}

// checkXEP0280: urn:xmpp:carbons:2 on the server (§2); a resource that
// enabled carbons (§3) gets <received/> copies of messages to the user's
// other resources and <sent/> copies of what they send (§5, §6), from the
// bare JID; none after it disabled them (§4).
func checkXEP0280(t *testing.T, e *env) {
	contains(t, "server disco#info", e.alice.discoInfo(domain, ""), feature("urn:xmpp:carbons:2"))
	a2 := login(t, e.srv, "alice", "a2").online()
	a2.ok("set", "", "<enable xmlns='urn:xmpp:carbons:2'/>")

	e.bob.Send("<message to='alice@localhost/a' type='chat' id='in1'><body>to a</body></message>")
	e.alice.expect("bob's message", isMessage("bob@localhost/b", "to a"))
	rc := a2.expect("the received copy", isMessage("alice@localhost", "<received xmlns='urn:xmpp:carbons:2'>"))
	contains(t, "the received copy", rc, "<forwarded xmlns='urn:xmpp:forward:0'>", "from='bob@localhost/b'", "<body>to a</body>")

	e.alice.Send("<message to='bob@localhost/b' type='chat' id='out1'><body>from a</body></message>")
	e.bob.expect("alice's message", isMessage("alice@localhost/a", "from a"))
	sc := a2.expect("the sent copy", isMessage("alice@localhost", "<sent xmlns='urn:xmpp:carbons:2'>"))
	contains(t, "the sent copy", sc, "<forwarded xmlns='urn:xmpp:forward:0'>", "to='bob@localhost/b'", "<body>from a</body>")

	a2.ok("set", "", "<disable xmlns='urn:xmpp:carbons:2'/>")
	e.bob.Send("<message to='alice@localhost/a' type='chat'><body>after disable</body></message>")
	e.alice.expect("bob's message", isMessage("bob@localhost/b", "after disable"))
	a2.expectNone("a copy after disabling carbons", func(el xmpptest.Element) bool { return el.Contains("after disable") })
}

// checkXEP0191: urn:xmpp:blocking on the server (§2); block (§3.3): the
// blocked user's messages bounce with service-unavailable and nothing
// reaches the user, the user's own to the blocked one are refused with
// <blocked/> (§3.3.1); the blocklist lists it (§3.2); unblock restores
// delivery (§3.4).
func checkXEP0191(t *testing.T, e *env) {
	contains(t, "server disco#info", e.alice.discoInfo(domain, ""), feature("urn:xmpp:blocking"))
	if got := e.alice.ok("get", "", "<blocklist xmlns='urn:xmpp:blocking'/>"); strings.Contains(got.Inner, "<item") {
		t.Fatalf("a new blocklist: %s", got.Raw)
	}
	e.alice.ok("set", "", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>")
	contains(t, "the blocklist", e.alice.ok("get", "", "<blocklist xmlns='urn:xmpp:blocking'/>"), "<item jid='bob@localhost'>")

	e.bob.Send("<message to='alice@localhost/a' type='chat' id='blk'><body>blocked</body></message>")
	bounce := e.bob.expect("the bounce", func(el xmpptest.Element) bool { return el.Name.Local == "message" && el.Attr("id") == "blk" })
	contains(t, "the bounce", bounce, "type='error'", "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'")
	e.alice.expectNone("a message from a blocked user", func(el xmpptest.Element) bool { return el.Contains("<body>blocked</body>") })

	e.alice.Send("<message to='bob@localhost/b' type='chat' id='out'><body>to the blocked</body></message>")
	refusal := e.alice.expect("the refusal", func(el xmpptest.Element) bool { return el.Name.Local == "message" && el.Attr("id") == "out" })
	contains(t, "the refusal", refusal, "type='error'", "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'", "<blocked xmlns='urn:xmpp:blocking:errors'")
	e.bob.expectNone("a message to the blocked user", func(el xmpptest.Element) bool { return el.Contains("to the blocked") })

	e.alice.ok("set", "", "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>")
	e.bob.Send("<message to='alice@localhost/a' type='chat'><body>unblocked</body></message>")
	e.alice.expect("a message after unblocking", isMessage("bob@localhost/b", "unblocked"))
}

// room is the test room.
const room = "lounge@conference.localhost"

// createRoom makes alice create room with the nick Alice and configure it
// with fields (<field/> elements; none: an instant room, XEP-0045
// §10.1.2).
func (e *env) createRoom(t *testing.T, fields string) {
	t.Helper()
	e.alice.Send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	e.alice.expect("the new room's presence", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == room+"/Alice" && el.Contains("<status code='201'") && el.Contains("<status code='110'")
	})
	e.alice.ok("set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+fields+"</x></query>")
}

// joinRoom makes bob join room as Bob, which alice sees.
func (e *env) joinRoom(t *testing.T) {
	t.Helper()
	e.bob.Send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	e.bob.expect("bob's own presence in the room", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == room+"/Bob" && el.Contains("<status code='110'")
	})
	e.alice.expect("bob joining", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == room+"/Bob" && el.Attr("type") == ""
	})
}

// checkXEP0045: the conference service in the server's items, with
// identity conference/text and the muc feature (§6.1–6.4); a room created
// (§10.1), joined (§7.2), and a message to all occupants (§7.4).
func checkXEP0045(t *testing.T, e *env) {
	contains(t, "server disco#items", e.alice.ok("get", domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>"), "<item jid='"+conference+"'")
	contains(t, "service disco#info", e.alice.discoInfo(conference, ""), identity("conference", "text"), feature("http://jabber.org/protocol/muc"))
	e.createRoom(t, "")
	e.joinRoom(t)
	contains(t, "room disco#info", e.bob.discoInfo(room, ""), identity("conference", "text"), feature("http://jabber.org/protocol/muc"))
	e.bob.Send("<message to='%s' type='groupchat' id='g1'><body>hi all</body></message>", room)
	for _, c := range []*client{e.alice, e.bob} {
		m := c.expect("the groupchat message", isMessage(room+"/Bob", "<body>hi all</body>"))
		if m.Attr("type") != "groupchat" || m.Attr("to") != c.JID.String() {
			t.Fatalf("%s got %s", c.JID, m.Raw)
		}
	}
}

// checkXEP0249: a direct invitation (§2) reaches the invitee as sent, and
// the invitee can join the room it names.
func checkXEP0249(t *testing.T, e *env) {
	e.createRoom(t, "")
	const x = "<x xmlns='jabber:x:conference' jid='" + room + "' reason='Join us'"
	e.alice.Send("<message to='bob@localhost'>%s/></message>", x)
	e.bob.expect("the invitation", isMessage("alice@localhost/a", x))
	e.joinRoom(t)
}

// legacyBookmarks is a XEP-0048 bookmark list of one room.
func legacyBookmarks(jid, name string) string {
	return "<storage xmlns='storage:bookmarks'><conference jid='" + jid + "' name='" + name + "' autojoin='true'><nick>Alice</nick></conference></storage>"
}

// checkXEP0048: bookmarks stored in private XML (§3.2, XEP-0049) are read
// back, and are the same list as the PEP node storage:bookmarks (§3.3,
// item "current"; the server says so with urn:xmpp:bookmarks:1#compat-pep,
// XEP-0402 §5.3), both ways.
func checkXEP0048(t *testing.T, e *env) {
	a := e.alice
	contains(t, "account disco#info", a.discoInfo("alice@localhost", ""), feature("urn:xmpp:bookmarks:1#compat-pep"))
	a.ok("set", "", "<query xmlns='jabber:iq:private'>"+legacyBookmarks(room, "Lounge")+"</query>")
	contains(t, "private bookmarks", a.ok("get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"),
		"<conference jid='"+room+"'", "name='Lounge'", "<nick>Alice</nick>")
	waitItems(t, a, "", "storage:bookmarks", "<item id='current'>", "<conference jid='"+room+"'")

	const other = "tea@conference.localhost"
	a.ok("set", "", publish("storage:bookmarks", "current", legacyBookmarks(other, "Tea"),
		"pubsub#persist_items", "true", "pubsub#access_model", "whitelist"))
	waitFor(t, "the PEP bookmarks in private XML", func() error {
		got := a.ok("get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
		if !got.Contains("<conference jid='"+other+"'") || got.Contains(room) {
			return fmt.Errorf("private bookmarks: %s", got.Raw)
		}
		return nil
	})
}

// checkXEP0313MUC: a room archives its messages (urn:xmpp:mam:2 in its
// disco#info, XEP-0313 §6.1) and answers a query sent to the room (§4.1),
// so that history comes from the room, not the user's archive.
func checkXEP0313MUC(t *testing.T, e *env) {
	// A persistent room archives by default (muc#roomconfig_enablearchiving).
	e.createRoom(t, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
	e.joinRoom(t)
	contains(t, "room disco#info", e.alice.discoInfo(room, ""), feature("urn:xmpp:mam:2"))
	e.bob.Send("<message to='%s' type='groupchat'><body>for the record</body></message>", room)
	e.alice.expect("the groupchat message", isMessage(room+"/Bob", "for the record"))
	res := waitArchive(t, e.alice, room, "", "for the record")
	contains(t, "the room archive's result", res, "from='"+room+"'", "<forwarded xmlns='urn:xmpp:forward:0'>", "from='"+room+"/Bob'", "type='groupchat'")
}

// waitArchive queries the archive at to ("" for the user's own) with the
// form fields in form until a result contains body, and returns that result.
func waitArchive(t *testing.T, c *client, to, form, body string) xmpptest.Element {
	t.Helper()
	var res xmpptest.Element
	n := 0
	waitFor(t, "the archived message", func() error {
		n++
		qid := fmt.Sprintf("q%d", n)
		c.seen = nil
		fin := c.ok("set", to, "<query xmlns='urn:xmpp:mam:2' queryid='"+qid+"'>"+form+"</query>")
		if !fin.Contains("<fin xmlns='urn:xmpp:mam:2'") {
			t.Fatalf("query answer without <fin/>: %s", fin.Raw)
		}
		for _, el := range c.seen {
			if el.Name.Local == "message" && el.Contains("<result xmlns='urn:xmpp:mam:2' queryid='"+qid+"'") && el.Contains(body) {
				res = el
				return nil
			}
		}
		return errors.New("not in the archive yet")
	})
	return res
}

// checkXEP0402: urn:xmpp:bookmarks:1#compat on the account (§5.2); a
// bookmark published as §3.3 says (an item per room, the XEP's
// publish-options) is private to the owner and is the same list as the
// private XML one (XEP-0049), both ways.
func checkXEP0402(t *testing.T, e *env) {
	a := e.alice
	contains(t, "account disco#info", a.discoInfo("alice@localhost", ""), feature("urn:xmpp:bookmarks:1#compat"))
	a.announceCaps("urn:xmpp:bookmarks:1+notify")
	a.ok("set", "", publish("urn:xmpp:bookmarks:1", room,
		"<conference xmlns='urn:xmpp:bookmarks:1' name='Lounge' autojoin='true'><nick>Alice</nick></conference>",
		"pubsub#persist_items", "true", "pubsub#max_items", "max", "pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist"))
	a.expect("the bookmark event to the owner", isEvent("alice@localhost", "<item id='"+room+"'>"))
	contains(t, "bookmarks items", a.ok("get", "", items("urn:xmpp:bookmarks:1")), "<item id='"+room+"'><conference xmlns='urn:xmpp:bookmarks:1'")
	e.bob.fails("get", "alice@localhost", items("urn:xmpp:bookmarks:1"), "not-allowed")
	waitFor(t, "the XEP-0402 bookmark in private XML", func() error {
		got := a.ok("get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
		if !got.Contains("<conference jid='"+room+"'") || !got.Contains("<nick>Alice</nick>") {
			return fmt.Errorf("private bookmarks: %s", got.Raw)
		}
		return nil
	})

	const other = "tea@conference.localhost"
	a.ok("set", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"+
		"<conference jid='"+room+"' name='Lounge' autojoin='true'><nick>Alice</nick></conference>"+
		"<conference jid='"+other+"' name='Tea'/></storage></query>")
	waitItems(t, a, "", "urn:xmpp:bookmarks:1", "<item id='"+other+"'><conference xmlns='urn:xmpp:bookmarks:1'", "<item id='"+room+"'>")
}

// checkXEP0410: the room advertises muc#self-ping-optimization and answers
// an occupant's ping to its own occupant JID itself (§3.2), and a ping
// from someone not joined with not-acceptable (§3.3: the client rejoins).
func checkXEP0410(t *testing.T, e *env) {
	e.createRoom(t, "")
	contains(t, "room disco#info", e.alice.discoInfo(room, ""), feature("http://jabber.org/protocol/muc#self-ping-optimization"))
	e.bob.fails("get", room+"/Bob", "<ping xmlns='urn:xmpp:ping'/>", "not-acceptable")
	e.joinRoom(t)
	if got := e.bob.ok("get", room+"/Bob", "<ping xmlns='urn:xmpp:ping'/>"); got.Attr("from") != room+"/Bob" {
		t.Fatalf("self-ping answer %s", got.Raw)
	}
}

// checkXEP0223: a node created with the publish-options of §4
// (persist_items, access_model whitelist) keeps the item for the owner
// only, and publish-options that conflict with the node's configuration
// fail with precondition-not-met (§4, XEP-0060 §7.1.5).
func checkXEP0223(t *testing.T, e *env) {
	contains(t, "account disco#info", e.alice.discoInfo("alice@localhost", ""), feature("http://jabber.org/protocol/pubsub#publish-options"))
	subscribe(t, e.bob, e.alice)
	const node = "urn:example:private-settings"
	e.bob.announceCaps(node + "+notify")
	e.alice.ok("set", "", publish(node, "current", "<settings xmlns='urn:example'><theme>dark</theme></settings>",
		"pubsub#persist_items", "true", "pubsub#access_model", "whitelist"))
	contains(t, "the owner's items", e.alice.ok("get", "", items(node)), "<item id='current'><settings xmlns='urn:example'><theme>dark</theme></settings></item>")
	e.bob.expectNone("an event of a whitelist node", isAnyEvent)
	contains(t, "a contact's read", e.bob.fails("get", "alice@localhost", items(node), "not-allowed"), "<closed-node xmlns='http://jabber.org/protocol/pubsub#errors'")
	contains(t, "conflicting publish-options", e.alice.fails("set", "", publish(node, "current", "<settings xmlns='urn:example'/>",
		"pubsub#persist_items", "true", "pubsub#access_model", "open"), "conflict"),
		"<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'")
}

// checkXEP0049: jabber:iq:private on the account; an element stored
// (§2.1) is returned (§2.2), and another user may not read it (§2.3).
func checkXEP0049(t *testing.T, e *env) {
	contains(t, "account disco#info", e.alice.discoInfo("alice@localhost", ""), feature("jabber:iq:private"))
	e.alice.ok("set", "", "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>")
	contains(t, "the stored element", e.alice.ok("get", "", "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>"),
		"<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>")
	e.bob.fails("get", "alice@localhost", "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>", "forbidden")
}

// checkXEP0313: urn:xmpp:mam:2 on the account (§6.1); a 1:1 message is
// archived for both users, stamped with a stanza id (XEP-0359) in the
// recipient's copy, and a query with the contact's JID returns it with that
// id (§4).
func checkXEP0313(t *testing.T, e *env) {
	contains(t, "account disco#info", e.alice.discoInfo("alice@localhost", ""), feature("urn:xmpp:mam:2"))
	e.alice.Send("<message to='bob@localhost/b' type='chat'><body>keep this</body></message>")
	m := e.bob.expect("alice's message", isMessage("alice@localhost/a", "keep this"))
	sid := stanzaID.FindStringSubmatch(m.Raw)
	if sid == nil {
		t.Fatalf("the recipient's copy has no stanza id: %s", m.Raw)
	}
	res := waitArchive(t, e.bob, "", withForm("alice@localhost"), "keep this")
	contains(t, "bob's archive", res, "id='"+sid[1]+"'", "<forwarded xmlns='urn:xmpp:forward:0'>", "<delay xmlns='urn:xmpp:delay'")
	waitArchive(t, e.alice, "", withForm("bob@localhost"), "keep this")
}

// withForm is a MAM query form filtering by with.
func withForm(with string) string {
	return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
		"<field var='with'><value>" + with + "</value></field></x>"
}

// stanzaID reads the XEP-0359 stanza id of a message.
var stanzaID = regexp.MustCompile(`<stanza-id xmlns='urn:xmpp:sid:0'[^>]*\bid='([^']+)'`)

// checkXEP0363: the upload service is among the server's items, with
// urn:xmpp:http:upload:0 and its max-file-size (§2, §3); a slot (§4), the
// PUT, and a GET of the file over the [http] listener.
func checkXEP0363(t *testing.T, e *env) {
	contains(t, "server disco#items", e.alice.ok("get", domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>"), "<item jid='"+upload+"'")
	contains(t, "upload service disco#info", e.alice.discoInfo(upload, ""), identity("store", "file"), feature("urn:xmpp:http:upload:0"),
		"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>", "<field var='max-file-size'>")
	body := []byte("a file for the compliance test\n")
	answer := e.alice.ok("get", upload, fmt.Sprintf("<request xmlns='urn:xmpp:http:upload:0' filename='notes.txt' size='%d' content-type='text/plain'/>", len(body)))
	var slot struct {
		Put struct {
			URL string `xml:"url,attr"`
		} `xml:"put"`
		Get struct {
			URL string `xml:"url,attr"`
		} `xml:"get"`
	}
	if err := xml.Unmarshal([]byte(answer.Inner), &slot); err != nil || slot.Put.URL == "" || slot.Get.URL == "" {
		t.Fatalf("slot %s: %v", answer.Raw, err)
	}
	req, err := http.NewRequest(http.MethodPut, slot.Put.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, err = http.Get(slot.Get.URL)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %q, %v; want 200 and the file", resp.Status, got, err)
	}
}
