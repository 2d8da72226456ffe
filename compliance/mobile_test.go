package compliance_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
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
