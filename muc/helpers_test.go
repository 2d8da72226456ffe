package muc_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// The test server's domain, its conference service and a room on it.
const (
	service = "conference.localhost"
	lounge  = "lounge@conference.localhost"
)

// user is a logged-in test client with its resource "r".
type user struct {
	*xmpptest.Client
	name string
	full string // name@localhost/r
}

// login creates the account name and logs it in with initial presence
// sent, so that the router tracks its directed presence.
func login(t *testing.T, srv *xmpptest.Server, name string) *user {
	t.Helper()
	j := srv.AddUser(t, name, "pw-"+name)
	c := srv.Login(t, j, "pw-"+name, xmpptest.LoginOptions{Resource: "r"})
	c.Send("<presence/>")
	c.Sync()
	return &user{Client: c, name: name, full: name + "@localhost/r"}
}

// relogin logs an existing account in again.
func relogin(t *testing.T, srv *xmpptest.Server, name string) *user {
	t.Helper()
	c := srv.Login(t, jid.MustParse(name+"@"+srv.Domain), "pw-"+name, xmpptest.LoginOptions{Resource: "r"})
	c.Send("<presence/>")
	c.Sync()
	return &user{Client: c, name: name, full: name + "@localhost/r"}
}

// stampRE matches XEP-0203 stamps, which tests do not predict.
var stampRE = regexp.MustCompile(`stamp='[^']*'`)

// canon re-serialises XML the way xmpptest does (jabber:client the
// default namespace), with the attributes of every element sorted and
// delay stamps blanked, so that expected stanzas can be written in any
// attribute order.
func canon(t testing.TB, s string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	d.DefaultSpace = stanza.NSClient
	var b strings.Builder
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	var top xml.StartElement
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("canon %q: %v", s, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			tk = tk.Copy()
			tk.Attr = slices.DeleteFunc(tk.Attr, func(a xml.Attr) bool {
				return a.Name.Space == "xmlns" || a.Name.Local == "xmlns"
			})
			slices.SortFunc(tk.Attr, func(a, b xml.Attr) int { return strings.Compare(a.Name.Local, b.Name.Local) })
			depth++
			if depth == 1 {
				top = tk
				continue
			}
			enc.EncodeToken(tk)
		case xml.EndElement:
			depth--
			if depth > 0 {
				enc.EncodeToken(tk)
			}
		case xml.CharData:
			if depth > 1 {
				enc.EncodeToken(tk.Copy())
			}
		}
	}
	b.WriteString("<" + top.Name.Local)
	for _, a := range top.Attr {
		fmt.Fprintf(&b, " %s='%s'", a.Name.Local, a.Value)
	}
	b.WriteString(">" + string(enc.Buf) + "</" + top.Name.Local + ">")
	return stampRE.ReplaceAllString(b.String(), "stamp='*'")
}

// expect checks that got is exactly want, in order, each compared in
// canonical form.
func expect(t *testing.T, who string, got []xmpptest.Element, want ...string) {
	t.Helper()
	var g, w []string
	for _, e := range got {
		g = append(g, canon(t, e.Raw))
	}
	for _, s := range want {
		w = append(w, canon(t, s))
	}
	if !slices.Equal(g, w) {
		t.Errorf("%s received:\n\t%s\nwant:\n\t%s", who, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
}

// sync returns what u received since the last sync, once everything it
// sent before has been handled.
func (u *user) sync() []xmpptest.Element { return u.Sync() }

// expectNothing checks that u received nothing.
func (u *user) expectNothing(t *testing.T) {
	t.Helper()
	expect(t, u.name, u.sync())
}

// join sends a MUC join of u to room/nick with extra inside the muc
// element, and returns what u received in answer.
func (u *user) join(room, nick, extra string) []xmpptest.Element {
	u.Send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>", room, nick, extra)
	return u.sync()
}

// errorOf returns the type and condition of an error stanza.
func errorOf(t *testing.T, e xmpptest.Element) (typ, cond string) {
	t.Helper()
	if e.Attr("type") != "error" {
		t.Fatalf("not an error: %s", e.Raw)
	}
	m := regexp.MustCompile(`<error[^>]* type='([a-z]+)'[^>]*><([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'`).FindStringSubmatch(canon(t, e.Raw))
	if m == nil {
		t.Fatalf("no error condition in %s", e.Raw)
	}
	return m[1], m[2]
}

// expectError checks that got is exactly one error of type typ with
// condition cond, from from.
func expectError(t *testing.T, who string, got []xmpptest.Element, from, typ, cond string) {
	t.Helper()
	if len(got) != 1 {
		var raw []string
		for _, e := range got {
			raw = append(raw, e.Raw)
		}
		t.Fatalf("%s received %d stanzas, want one %s error: %q", who, len(got), cond, raw)
	}
	gt, gc := errorOf(t, got[0])
	if gt != typ || gc != cond || got[0].Attr("from") != from {
		t.Errorf("%s received %s, want a %s/%s error from %s", who, got[0].Raw, typ, cond, from)
	}
}

// self is the presence xml of an occupant as the occupant itself sees
// it (110 and the given codes).
func presence(from, to, item string, codes ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<presence from='%s' to='%s'><x xmlns='http://jabber.org/protocol/muc#user'>%s", from, to, item)
	for _, c := range codes {
		fmt.Fprintf(&b, "<status code='%d'/>", c)
	}
	b.WriteString("</x></presence>")
	return b.String()
}

// unavailable is presence like presence, of type unavailable.
func unavailable(from, to, item string, codes ...int) string {
	return strings.Replace(presence(from, to, item, codes...), "<presence ", "<presence type='unavailable' ", 1)
}

// item is a muc#user item.
func item(aff, role, jid string) string {
	if jid != "" {
		return fmt.Sprintf("<item affiliation='%s' role='%s' jid='%s'/>", aff, role, jid)
	}
	return fmt.Sprintf("<item affiliation='%s' role='%s'/>", aff, role)
}

// noSubject is the empty subject a room sends after the join.
func noSubject(room, to string) string {
	return fmt.Sprintf("<message from='%s' to='%s' type='groupchat'><subject/></message>", room, to)
}

// createRoom makes u create room as an instant room with nick, and
// drops what it received.
func (u *user) createRoom(t *testing.T, room, nick string) {
	t.Helper()
	got := u.join(room, nick, "")
	if len(got) != 2 || !strings.Contains(got[0].Raw, "201") {
		t.Fatalf("%s creating %s: %q", u.name, room, got)
	}
	u.configure(t, room, "")
}

// configure submits the room configuration form with fields, which are
// <field/> elements, and checks the result.
func (u *user) configure(t *testing.T, room, fields string) []xmpptest.Element {
	t.Helper()
	u.Send("<iq type='set' id='cfg' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>", room, fields)
	got := u.sync()
	if len(got) == 0 || got[0].Attr("id") != "cfg" || got[0].Attr("type") != "result" {
		t.Fatalf("%s configuring %s: %q", u.name, room, got)
	}
	return got[1:]
}

// field is a submitted form field.
func field(v string, values ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<field var='%s'>", v)
	for _, val := range values {
		fmt.Fprintf(&b, "<value>%s</value>", val)
	}
	b.WriteString("</field>")
	return b.String()
}

// wait is how long a test waits for what a server does asynchronously.
const wait = 5 * time.Second

// noUserArchive turns the users' message archive off, for tests that
// compare the exact bytes of messages a user receives: with it on, 1:1
// messages (private messages, invitations) carry the recipient's
// stanza id, which package mam tests.
func noUserArchive(c *config.Config) { c.MAM.Enabled = false }
