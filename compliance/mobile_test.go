package compliance_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/router"
)

// The Mobile suite (XEP-0479 §2.4); stream management is in the IM suite
// too.

var (
	reEnabled = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'[^>]*/>`)
	reResumed = regexp.MustCompile(`<resumed xmlns='urn:xmpp:sm:3' h='(\d+)' previd='([^']+)'/>`)
	reAck     = regexp.MustCompile(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`)
)

// checkXEP0198: urn:xmpp:sm:3 among the features after authentication
// (§3); enable with resumption (§3, §5); acknowledgements (§4); a stanza
// not acknowledged when the connection drops comes again on a new
// connection that resumes the session (§5), which goes on receiving.
func checkXEP0198(t *testing.T, e *env) {
	r := rawAuth(t, e.srv, "bob")
	if !strings.Contains(r.features, "<sm xmlns='urn:xmpp:sm:3'/>") {
		t.Fatalf("no stream management after authentication: %q", r.features)
	}
	r.bind("phone")
	r.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	id := r.expect("enabled", reEnabled)[1]
	e.alice.Send("<message to='bob@localhost/phone' type='chat'><body>m1</body></message>")
	r.expect("m1", regexp.MustCompile(`<body>m1</body>`))
	r.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := r.expect("an acknowledgement", reAck)[1]; h != "0" {
		t.Fatalf("h = %s, want 0 (bob sent no stanza)", h)
	}
	r.Conn.Close() // lost, m1 not acknowledged

	c := rawAuth(t, e.srv, "bob")
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	if m := c.expect("resumed", reResumed); m[1] != "0" || m[2] != id {
		t.Fatalf("resumed h=%s previd=%s, want h=0 previd=%s", m[1], m[2], id)
	}
	c.expect("m1 again", regexp.MustCompile(`<body>m1</body>`))
	c.Send("<a xmlns='urn:xmpp:sm:3' h='1'/>")
	e.alice.Send("<message to='bob@localhost/phone' type='chat'><body>m2</body></message>")
	c.expect("m2 on the resumed session", regexp.MustCompile(`<body>m2</body>`))
}

// checkXEP0352: urn:xmpp:csi:0 among the features after authentication
// (§5); while inactive, presence waits and an IQ goes out at once (§6
// leaves the choice to the server; this is what xmppd does); a message
// with a body goes out at once after what waited, and active sends the
// rest.
func checkXEP0352(t *testing.T, e *env) {
	r := rawAuth(t, e.srv, "bob")
	if !strings.Contains(r.features, "<csi xmlns='urn:xmpp:csi:0'/>") {
		t.Fatalf("no client state indication after authentication: %q", r.features)
	}
	r.bind("phone")
	r.Send("<inactive xmlns='urn:xmpp:csi:0'/><iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	r.expect("the ping's answer while inactive", regexp.MustCompile(`<iq [^>]*id='p1'[^>]*(/>|>.*?</iq>)`))

	e.alice.Send("<presence to='bob@localhost/phone'><status>s1</status></presence>")
	e.alice.Sync()
	r.silent("presence to an inactive client")
	e.alice.Send("<message to='bob@localhost/phone' type='chat'><body>now</body></message>")
	r.expect("the waiting presence, then the message", regexp.MustCompile(`(?s)<status>s1</status>.*<body>now</body>.*?</message>`))

	e.alice.Send("<presence to='bob@localhost/phone'><status>s2</status></presence>")
	e.alice.Sync()
	r.silent("presence to an inactive client")
	r.Send("<active xmlns='urn:xmpp:csi:0'/>")
	r.expect("the waiting presence on active", regexp.MustCompile(`<status>s2</status>`))
}

// checkXEP0357: urn:xmpp:push:0 in the disco#info of the user's account
// (§3); a client enables push with publish-options (§5); while its only
// session waits for a resumption, a message sends the app server (the
// component on gateway.localhost) a publish to the node, from the user's
// bare JID, with the summary form and the publish-options (§7); after
// disable (§6), nothing.
func checkXEP0357(t *testing.T, e *env) {
	e.srv.AddUser(t, "carol", "pw")
	info := e.bob.discoInfo("bob@localhost", "")
	contains(t, "the account's disco#info", info, feature("urn:xmpp:push:0"))

	comp, buf := connectComponent(t, e)
	r := rawAuth(t, e.srv, "carol")
	r.bind("phone")
	r.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	r.expect("enabled", reEnabled)
	const form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t</value></field></x>"
	r.Send("<presence/><iq type='set' id='push1'><enable xmlns='urn:xmpp:push:0' jid='" + gateway + "' node='n1'>" + form + "</enable></iq>")
	r.expect("enable's result", regexp.MustCompile(`<iq [^>]*id='push1'[^>]*type='result'|<iq [^>]*type='result'[^>]*id='push1'`))
	r.Conn.Close()
	carol := jid.MustParse("carol@localhost/phone")
	xmpptest.WaitFor(t, wait, func() error {
		if s, ok := e.srv.Router().SessionOf(carol); !ok || !router.Detached(s) {
			return fmt.Errorf("carol's session is not waiting for a resumption yet")
		}
		return nil
	})

	e.alice.Send("<message to='carol@localhost' type='chat'><body>wake up</body></message>")
	got := readUntil(t, comp, buf, regexp.MustCompile(`(?s)<iq [^>]*>.*</iq>`))
	for _, want := range []string{
		"type='set'", "from='carol@localhost'", "to='" + gateway + "'",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n1'><item><notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>",
		"<field var='message-count'><value>1</value></field>",
		"<field var='last-message-sender'><value>alice@localhost/a</value></field>",
		"<publish-options>" + form + "</publish-options>",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("the app server got %q, lacks %s", got, want)
		}
	}
	if strings.Contains(got, "wake up") {
		t.Fatalf("the body went to the app server: %q", got)
	}
	id := regexp.MustCompile(`<iq [^>]*\bid='([^']+)'`).FindStringSubmatch(got)[1]
	io.WriteString(comp, "<iq type='result' id='"+id+"' from='"+gateway+"' to='carol@localhost'/>")
	buf.Reset()

	c := login(t, e.srv, "carol", "laptop")
	c.ok("set", "", "<disable xmlns='urn:xmpp:push:0' jid='"+gateway+"' node='n1'/>")
	c.Close()
	e.alice.Send("<message to='carol@localhost/phone' type='chat'><body>again</body></message>")
	e.alice.Sync()
	comp.SetReadDeadline(time.Now().Add(quiet))
	b := make([]byte, 4096)
	if n, _ := comp.Read(b); n > 0 {
		t.Fatalf("the app server got %q after disable", b[:n])
	}
}

// connectComponent connects the external component on gateway.localhost.
func connectComponent(t *testing.T, e *env) (net.Conn, *strings.Builder) {
	t.Helper()
	c, err := net.Dial("tcp", e.srv.Component)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var buf strings.Builder
	io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+gateway+"'>")
	got := readUntil(t, c, &buf, regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'[^>]*>`))
	id := regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'`).FindStringSubmatch(got)[1]
	sum := sha1.Sum([]byte(id + componentSecret))
	io.WriteString(c, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	buf.Reset()
	readUntil(t, c, &buf, regexp.MustCompile(`<handshake/>`))
	buf.Reset()
	return c, &buf
}
