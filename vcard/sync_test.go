package vcard_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// pngImage is a w×h grey PNG.
func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// peer is a logged-in client that numbers its IQs and keeps what arrives
// while it waits for an answer.
type peer struct {
	*xmpptest.Client
	t    *testing.T
	n    int
	seen []xmpptest.Element
}

// online logs name in and sends initial presence with caps announcing
// features.
func online(t *testing.T, srv *xmpptest.Server, name, res string, features ...string) *peer {
	t.Helper()
	c := srv.Login(t, jid.MustParse(name+"@"+srv.Domain), "pw", xmpptest.LoginOptions{Resource: res})
	p := &peer{Client: c, t: t}
	c.AnnounceCaps(features...)
	p.seen = c.SyncCaps()
	return p
}

// iq sends an IQ (to "" for the account itself) and returns its answer.
func (p *peer) iq(typ, to, payload string) xmpptest.Element {
	p.t.Helper()
	p.n++
	id := fmt.Sprintf("iq%d", p.n)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	p.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload)
	for {
		e := p.Next(wait)
		if e.Name.Local == "iq" && e.Attr("id") == id {
			return e
		}
		p.seen = append(p.seen, e)
	}
}

// ok is iq that must succeed; it returns the answer's content.
func (p *peer) ok(typ, to, payload string) string {
	p.t.Helper()
	e := p.iq(typ, to, payload)
	if e.Attr("type") != "result" {
		p.t.Fatalf("%s: %s %s: %s", p.JID, typ, payload, e.Raw)
	}
	return e.Inner
}

// expect returns the first element, received while waiting for an IQ's
// answer or after, that match accepts.
func (p *peer) expect(what string, match func(xmpptest.Element) bool) xmpptest.Element {
	p.t.Helper()
	for i, e := range p.seen {
		if match(e) {
			p.seen = append(p.seen[:i], p.seen[i+1:]...)
			return e
		}
	}
	return p.Expect(wait, what, match)
}

// received returns, after a Sync, what p received that match accepts, and
// forgets everything received.
func (p *peer) received(match func(xmpptest.Element) bool) []xmpptest.Element {
	p.t.Helper()
	var out []xmpptest.Element
	for _, e := range append(p.seen, p.Sync()...) {
		if match(e) {
			out = append(out, e)
		}
	}
	p.seen = nil
	return out
}

func isEvent(node string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Contains("<items node='"+node+"'>")
	}
}

func same(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, got, want)
	}
}

const nsPubsub = "http://jabber.org/protocol/pubsub"

func itemsOf(node string, ids ...string) string {
	s := "<pubsub xmlns='" + nsPubsub + "'><items node='" + node + "'>"
	for _, id := range ids {
		s += "<item id='" + id + "'/>"
	}
	return s + "</items></pubsub>"
}

func pubsubItem(node, id, payload string) string {
	return "<pubsub xmlns='" + nsPubsub + "'><items node='" + node + "'><item id='" + id + "'>" + payload + "</item></items></pubsub>"
}

func metadata(img []byte, w, h int) string {
	return fmt.Sprintf("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='%d' height='%d' id='%s' type='image/png' width='%d'></info></metadata>",
		len(img), h, sha1hex(img), w)
}

func avatarData(img []byte) string {
	return "<data xmlns='urn:xmpp:avatar:data'>" + base64.StdEncoding.EncodeToString(img) + "</data>"
}

func photoUpdate(hash string) string {
	return "<x xmlns='vcard-temp:x:update'><photo>" + hash + "</photo></x>"
}

// hasPhoto reports whether presence e carries one vcard-temp:x:update,
// with the photo hash.
func hasPhoto(e xmpptest.Element, hash string) bool {
	return e.Contains(photoUpdate(hash)) && strings.Count(e.Raw, "vcard-temp:x:update") == 1
}

// TestAvatarSync (XEP-0398, XEP-0153, XEP-0084, XEP-0172): a vCard set
// with a PHOTO and a NICKNAME publishes the avatar (data item and metadata
// item, id the SHA-1 in hex) and the nickname to PEP, with events to a
// contact whose caps want them; the avatar nodes it creates are open, so
// that anyone (a stranger too) reads them, as anyone reads the vCard,
// while a node the owner configured keeps its access model. After a restart,
// an avatar published by PEP as Conversations does (data, then metadata,
// access_model=open) shows in the vCard and changes the photo hash of the
// presence contacts receive; a PEP nickname becomes the NICKNAME; an
// avatar disabled by empty metadata removes the PHOTO.
func TestAvatarSync(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		for _, u := range []string{"alice", "bob", "carol"} {
			srv.AddUser(t, u, "pw")
		}
		notify := []string{"urn:xmpp:avatar:metadata+notify", "http://jabber.org/protocol/nick+notify"}
		alice := online(t, srv, "alice", "a")
		bob := online(t, srv, "bob", "b", notify...)
		bob.Send("<presence type='subscribe' to='alice@localhost'/>")
		alice.Expect(wait, "bob's request", xmpptest.IsStanza("presence", "subscribe"))
		alice.Send("<presence type='subscribed' to='bob@localhost'/>")
		bob.Expect(wait, "alice's presence", presenceFrom("alice@localhost/a"))
		alice.Sync()
		bob.received(func(xmpptest.Element) bool { return false })

		// alice's nickname node exists, configured for contacts only.
		presenceOnly := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPubsub +
			"#publish-options</value></field><field var='pubsub#access_model'><value>presence</value></field></x></publish-options>"
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='http://jabber.org/protocol/nick'><item><nick xmlns='http://jabber.org/protocol/nick'>Old</nick></item></publish>"+presenceOnly+"</pubsub>")
		bob.received(func(xmpptest.Element) bool { return false })

		// 1. vCard → PEP.
		img1 := pngImage(t, 2, 3)
		id1 := sha1hex(img1)
		alice.ok("set", "", "<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>Ally</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>"+
			base64.StdEncoding.EncodeToString(img1)+"</BINVAL></PHOTO></vCard>")
		events := bob.received(func(e xmpptest.Element) bool {
			return isEvent("urn:xmpp:avatar:metadata")(e) || isEvent("http://jabber.org/protocol/nick")(e)
		})
		wantMeta := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'><item id='" + id1 + "'>" + metadata(img1, 2, 3) + "</item></items></event>"
		wantNick := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='http://jabber.org/protocol/nick'>"
		if len(events) != 2 || events[0].Inner != wantMeta || !strings.HasPrefix(events[1].Inner, wantNick) ||
			!strings.Contains(events[1].Inner, "<nick xmlns='http://jabber.org/protocol/nick'>Ally</nick>") {
			t.Fatalf("bob's events after the vCard set: %v\nwant %s and the nick", events, wantMeta)
		}
		same(t, "metadata read by the owner", alice.ok("get", "", itemsOf("urn:xmpp:avatar:metadata")),
			pubsubItem("urn:xmpp:avatar:metadata", id1, metadata(img1, 2, 3)))
		same(t, "data read by a contact", bob.ok("get", "alice@localhost", itemsOf("urn:xmpp:avatar:data", id1)),
			pubsubItem("urn:xmpp:avatar:data", id1, avatarData(img1)))
		carol := online(t, srv, "carol", "c")
		same(t, "metadata read by a stranger", carol.ok("get", "alice@localhost", itemsOf("urn:xmpp:avatar:metadata")),
			pubsubItem("urn:xmpp:avatar:metadata", id1, metadata(img1, 2, 3)))
		same(t, "data read by a stranger", carol.ok("get", "alice@localhost", itemsOf("urn:xmpp:avatar:data", id1)),
			pubsubItem("urn:xmpp:avatar:data", id1, avatarData(img1)))
		// The nickname went to the node as configured: not to strangers.
		if e := carol.iq("get", "alice@localhost", itemsOf("http://jabber.org/protocol/nick")); e.Attr("type") != "error" {
			t.Fatalf("a stranger read a presence-only nickname: %s", e.Raw)
		}

		// 2. After a restart: PEP → vCard, as Conversations publishes.
		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		bob = online(t, srv, "bob", "b")
		alice = online(t, srv, "alice", "a")
		if e := bob.expect("alice's presence after the restart", presenceFrom("alice@localhost/a")); !hasPhoto(e, id1) {
			t.Fatalf("alice's presence after the restart: %s, want %s", e.Raw, photoUpdate(id1))
		}
		img2 := pngImage(t, 4, 4)
		id2 := sha1hex(img2)
		open := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPubsub +
			"#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:avatar:data'><item id='"+id2+"'>"+avatarData(img2)+"</item></publish>"+open+"</pubsub>")
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:avatar:metadata'><item id='"+id2+"'>"+
			"<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='"+fmt.Sprint(len(img2))+"' id='"+id2+"' type='image/png' height='4' width='4'/></metadata>"+
			"</item></publish>"+open+"</pubsub>")
		wantCard := "<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>Ally</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
			base64.StdEncoding.EncodeToString(img2) + "</BINVAL></PHOTO></vCard>"
		same(t, "vCard after a PEP avatar", bob.ok("get", "alice@localhost", "<vCard xmlns='vcard-temp'/>"), wantCard)
		if e := bob.expect("alice's presence with the new hash", presenceFrom("alice@localhost/a")); !hasPhoto(e, id2) {
			t.Fatalf("alice's presence after the PEP avatar: %s, want %s", e.Raw, photoUpdate(id2))
		}

		// 3. A PEP nickname (XEP-0172).
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='http://jabber.org/protocol/nick'><item><nick xmlns='http://jabber.org/protocol/nick'>Alice L.</nick></item></publish></pubsub>")
		same(t, "vCard after a PEP nick", alice.ok("get", "", "<vCard xmlns='vcard-temp'/>"),
			"<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>"+base64.StdEncoding.EncodeToString(img2)+
				"</BINVAL></PHOTO><NICKNAME>Alice L.</NICKNAME></vCard>")

		// 4. Avatar disabled (XEP-0084 §4.5): the PHOTO goes, presence says
		// there is none.
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:avatar:metadata'><item><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub>")
		same(t, "vCard after the avatar was disabled", alice.ok("get", "", "<vCard xmlns='vcard-temp'/>"),
			"<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>Alice L.</NICKNAME></vCard>")
		if e := bob.expect("alice's presence without a photo", presenceFrom("alice@localhost/a")); !hasPhoto(e, "") {
			t.Fatalf("alice's presence after the avatar was disabled: %s", e.Raw)
		}
	})
}

// TestPEPAvatarWithoutVCard: an account that never had a vCard (so the
// server read nothing for its presence) publishes an avatar by PEP, as
// Conversations does: its contacts get its presence again with the new
// photo hash, and after a restart its presence carries the hash from the
// start (the server knows again which accounts have a photo).
func TestPEPAvatarWithoutVCard(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		srv.AddUser(t, "alice", "pw")
		srv.AddUser(t, "bob", "pw")
		alice := online(t, srv, "alice", "a")
		bob := online(t, srv, "bob", "b")
		bob.Send("<presence type='subscribe' to='alice@localhost'/>")
		alice.Expect(wait, "bob's request", xmpptest.IsStanza("presence", "subscribe"))
		alice.Send("<presence type='subscribed' to='bob@localhost'/>")
		if e := bob.Expect(wait, "alice's presence", presenceFrom("alice@localhost/a")); !hasPhoto(e, "") {
			t.Fatalf("alice's first presence: %s, want an empty <photo/>", e.Raw)
		}
		img := pngImage(t, 5, 5)
		id := sha1hex(img)
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:avatar:data'><item id='"+id+"'>"+avatarData(img)+"</item></publish></pubsub>")
		alice.ok("set", "", "<pubsub xmlns='"+nsPubsub+"'><publish node='urn:xmpp:avatar:metadata'><item id='"+id+"'>"+
			"<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='"+fmt.Sprint(len(img))+"' id='"+id+"' type='image/png' height='5' width='5'/></metadata>"+
			"</item></publish></pubsub>")
		if e := bob.expect("alice's presence with the avatar's hash", presenceFrom("alice@localhost/a")); !hasPhoto(e, id) {
			t.Fatalf("alice's presence after her PEP avatar: %s, want %s", e.Raw, photoUpdate(id))
		}

		cfg := srv.Config
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		bob = online(t, srv, "bob", "b")
		online(t, srv, "alice", "a")
		if e := bob.expect("alice's presence after the restart", presenceFrom("alice@localhost/a")); !hasPhoto(e, id) {
			t.Fatalf("alice's presence after the restart: %s, want %s", e.Raw, photoUpdate(id))
		}
	})
}
