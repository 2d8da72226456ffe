package contactinfo_test

import (
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 10 * time.Second

// discoInfo asks the server for its disco#info and returns the result's
// query, as the client received it.
func discoInfo(t *testing.T, srv *xmpptest.Server) string {
	t.Helper()
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})
	c.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	e := c.Expect(wait, "disco#info result", func(e xmpptest.Element) bool { return e.Attr("id") == "d1" })
	if e.Attr("type") != "result" {
		t.Fatalf("disco#info: %s", e.Raw)
	}
	return e.Inner
}

// TestContactAddresses: the configured addresses are served in the
// server's disco#info as XEP-0157's form, fields in the XEP's order and
// empty lists left out, after the features.
func TestContactAddresses(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.Server.Contact.Abuse = []string{"mailto:abuse@localhost", "xmpp:abuse@localhost"}
		c.Server.Contact.Support = []string{"https://localhost/support"}
		c.Server.Contact.Security = []string{"xmpp:security@localhost?message"}
	})
	got := discoInfo(t, srv)
	const form = `<x xmlns='jabber:x:data' type='result'>` +
		`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>` +
		`<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@localhost</value><value>xmpp:abuse@localhost</value></field>` +
		`<field var='security-addresses' type='list-multi'><value>xmpp:security@localhost?message</value></field>` +
		`<field var='support-addresses' type='list-multi'><value>https://localhost/support</value></field>` +
		`</x></query>`
	if !strings.HasSuffix(got, form) {
		t.Fatalf("disco#info:\n%s\nwant it to end with the form and the query's end:\n%s", got, form)
	}
	if !strings.Contains(got, "<feature var='urn:xmpp:ping'></feature>") || strings.Count(got, "jabber:x:data") != 1 {
		t.Fatalf("disco#info lost its features or has more forms: %s", got)
	}
}

// TestNoContactAddresses: no address configured, no form.
func TestNoContactAddresses(t *testing.T) {
	got := discoInfo(t, xmpptest.Start(t))
	if strings.Contains(got, "jabber:x:data") || !strings.Contains(got, "<feature var='urn:xmpp:ping'></feature>") {
		t.Fatalf("disco#info: %s", got)
	}
}
