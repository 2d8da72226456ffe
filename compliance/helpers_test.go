package compliance_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	wait  = 10 * time.Second
	quiet = 300 * time.Millisecond // how long "nothing arrives" is watched

	domain     = "localhost"
	conference = "conference.localhost"
	upload     = "upload.localhost"
)

// env is one row's server, with alice (resource "a") and bob (resource "b")
// logged in and available. They are not in each other's rosters: rows that
// need it call subscribe.
type env struct {
	t          *testing.T
	srv        *xmpptest.Server
	alice, bob *client
}

func newEnv(t *testing.T, opts ...xmpptest.Option) *env {
	t.Helper()
	srv := xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithHTTP()}, opts...)...)
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	return &env{t: t, srv: srv, alice: login(t, srv, "alice", "a").online(), bob: login(t, srv, "bob", "b").online()}
}

// client is a logged-in test client that numbers its IQs and keeps what
// arrived while it waited for an answer.
type client struct {
	*xmpptest.Client
	t    *testing.T
	n    int
	seen []xmpptest.Element
}

func login(t *testing.T, srv *xmpptest.Server, name, res string) *client {
	t.Helper()
	return &client{Client: srv.Login(t, jid.MustParse(name+"@"+domain), "pw", xmpptest.LoginOptions{Resource: res}), t: t}
}

// online sends initial presence and waits until the server has handled it.
func (c *client) online() *client {
	c.t.Helper()
	c.Send("<presence/>")
	c.Sync()
	return c
}

// expect returns the first element, received while waiting for an IQ's
// answer or after, that match accepts.
func (c *client) expect(what string, match func(xmpptest.Element) bool) xmpptest.Element {
	c.t.Helper()
	for i, e := range c.seen {
		if match(e) {
			c.seen = slices.Delete(c.seen, i, i+1)
			return e
		}
	}
	return c.Expect(wait, what, match)
}

// expectNone fails if anything matching was kept or arrives within quiet.
func (c *client) expectNone(what string, match func(xmpptest.Element) bool) {
	c.t.Helper()
	for _, e := range c.seen {
		if match(e) {
			c.t.Fatalf("%s: unexpected %s: %s", c.JID, what, e.Raw)
		}
	}
	c.ExpectNone(quiet, what, match)
}

// iq sends an IQ of type typ (to "" for none) and returns its answer.
func (c *client) iq(typ, to, payload string) xmpptest.Element {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("iq%d", c.n)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload)
	deadline := time.After(wait)
	for {
		select {
		case e := <-c.Elements():
			if e.Name.Local == "iq" && e.Attr("id") == id && e.Attr("type") != "get" && e.Attr("type") != "set" {
				return e
			}
			c.seen = append(c.seen, e)
		case <-deadline:
			c.t.Fatalf("%s: no answer to %s %s", c.JID, typ, payload)
		}
	}
}

// ok is iq that must succeed.
func (c *client) ok(typ, to, payload string) xmpptest.Element {
	c.t.Helper()
	e := c.iq(typ, to, payload)
	if e.Attr("type") != "result" {
		c.t.Fatalf("%s: %s to %q %s: %s", c.JID, typ, to, payload, e.Raw)
	}
	return e
}

// fails is iq that must fail with the defined condition cond.
func (c *client) fails(typ, to, payload, cond string) xmpptest.Element {
	c.t.Helper()
	e := c.iq(typ, to, payload)
	if e.Attr("type") != "error" || !e.Contains("<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'") {
		c.t.Fatalf("%s: %s to %q %s: got %s, want error %s", c.JID, typ, to, payload, e.Raw, cond)
	}
	return e
}

// contains fails the test unless e contains every one of parts.
func contains(t *testing.T, what string, e xmpptest.Element, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !e.Contains(p) {
			t.Fatalf("%s: %s lacks %s", what, e.Raw, p)
		}
	}
}

// subscribe makes from subscribe to to's presence, approved.
func subscribe(t *testing.T, from, to *client) {
	t.Helper()
	from.Send("<presence type='subscribe' to='%s'/>", to.JID.Bare())
	to.expect("subscription request", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribe" && e.Attr("from") == from.JID.Bare().String()
	})
	to.Send("<presence type='subscribed' to='%s'/>", from.JID.Bare())
	from.expect("approval", func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("type") == "subscribed"
	})
	from.Sync()
	to.Sync()
}

// isMessage matches a message from from whose serialisation contains s.
func isMessage(from, s string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("from") == from && e.Contains(s)
	}
}

// isEvent matches a PEP event from owner containing s.
func isEvent(owner, s string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("from") == owner &&
			e.Contains("<event xmlns='http://jabber.org/protocol/pubsub#event'>") && e.Contains(s)
	}
}

func isAnyEvent(e xmpptest.Element) bool {
	return e.Name.Local == "message" && e.Contains("http://jabber.org/protocol/pubsub#event")
}

// discoInfo asks to's disco#info (node "" for none).
func (c *client) discoInfo(to, node string) xmpptest.Element {
	c.t.Helper()
	n := ""
	if node != "" {
		n = " node='" + node + "'"
	}
	return c.ok("get", to, "<query xmlns='http://jabber.org/protocol/disco#info'"+n+"/>")
}

// feature is a disco#info feature element as the client receives it.
func feature(v string) string { return "<feature var='" + v + "'></feature>" }

// identity is a disco#info identity element without a name.
func identity(category, typ string) string {
	return "<identity category='" + category + "' type='" + typ + "'"
}

// publish is a PEP publish request of one item with publish-options (var,
// value pairs).
func publish(node, id, payload string, opts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='%s'>%s</item></publish>", node, id, payload)
	if len(opts) > 0 {
		b.WriteString("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>")
		for i := 0; i+1 < len(opts); i += 2 {
			fmt.Fprintf(&b, "<field var='%s'><value>%s</value></field>", opts[i], opts[i+1])
		}
		b.WriteString("</x></publish-options>")
	}
	b.WriteString("</pubsub>")
	return b.String()
}

// items is a PEP items request for node.
func items(node string) string {
	return "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + node + "'/></pubsub>"
}

// Entity capabilities (XEP-0115), the client side: this package computes
// the verification string itself rather than use package caps, so that the
// server's hash is checked by an implementation other than its own.

const capsNode = "https://compliance.xmppd.dev"

// capsInfo is a test client's disco#info <query/> for node: one client
// identity named name and feats.
func capsInfo(node, name string, feats []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<query xmlns='http://jabber.org/protocol/disco#info' node='%s'><identity category='client' type='pc' name='%s'/>", node, name)
	for _, f := range feats {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	b.WriteString("</query>")
	return b.String()
}

// discoQuery is a disco#info answer as XEP-0115 §5.1 reads it.
type discoQuery struct {
	Identities []struct {
		Category string `xml:"category,attr"`
		Type     string `xml:"type,attr"`
		Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		Name     string `xml:"name,attr"`
	} `xml:"identity"`
	Features []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
	Forms []struct {
		Fields []discoField `xml:"field"`
	} `xml:"jabber:x:data x"`
}

// discoField is a field of a XEP-0128 form.
type discoField struct {
	Var    string   `xml:"var,attr"`
	Values []string `xml:"value"`
}

// capsVer is the sha-1 verification string (XEP-0115 §5.1) of the
// disco#info <query/> q.
func capsVer(t *testing.T, q string) string {
	t.Helper()
	var d discoQuery
	if err := xml.Unmarshal([]byte(q), &d); err != nil {
		t.Fatalf("disco#info %s: %v", q, err)
	}
	// Each list sorted by its key, then each item followed by '<'.
	var ids, feats []string
	for _, id := range d.Identities {
		ids = append(ids, id.Category+"/"+id.Type+"/"+id.Lang+"/"+id.Name)
	}
	for _, f := range d.Features {
		feats = append(feats, f.Var)
	}
	slices.Sort(ids)
	slices.Sort(feats)
	type form struct{ typ, rest string }
	var forms []form
	for _, x := range d.Forms {
		var f form
		slices.SortFunc(x.Fields, func(a, b discoField) int { return strings.Compare(a.Var, b.Var) })
		for _, fl := range x.Fields {
			vals := slices.Sorted(slices.Values(fl.Values))
			if fl.Var == "FORM_TYPE" {
				f.typ = strings.Join(vals, "")
				continue
			}
			f.rest += fl.Var + "<" + strings.Join(append(vals, ""), "<")
		}
		forms = append(forms, f)
	}
	slices.SortFunc(forms, func(a, b form) int { return strings.Compare(a.typ, b.typ) })
	var s strings.Builder
	for _, v := range append(ids, feats...) {
		s.WriteString(v + "<")
	}
	for _, f := range forms {
		s.WriteString(f.typ + "<" + f.rest)
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var nodeAttr = regexp.MustCompile(`node='([^']*)'`)

// announceCaps sends c's presence with caps for feats and answers the
// server's disco#info query for them, as a client does; it returns once the
// server has the answer. The identity is named after c's JID, so that each
// client has a ver of its own, which the server has not seen.
func (c *client) announceCaps(feats ...string) {
	c.t.Helper()
	feats = append([]string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info"}, feats...)
	ver := capsVer(c.t, capsInfo("", c.JID.String(), feats))
	c.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/></presence>", capsNode, ver)
	q := c.expect("the server's disco#info query for the caps", func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "get" && e.Attr("from") == domain &&
			e.Contains("<query xmlns='http://jabber.org/protocol/disco#info' node='"+capsNode+"#"+ver+"'>")
	})
	c.Send("<iq type='result' id='%s' to='%s'>%s</iq>", q.Attr("id"), q.Attr("from"), capsInfo(nodeAttr.FindStringSubmatch(q.Inner)[1], c.JID.String(), feats))
	c.Sync()
}

// raw is a client session negotiated by hand (PLAIN), for what the mellium
// client hides: stream features, stream management, client state.
type raw struct {
	t *testing.T
	*xmpptest.Raw
	features string // the features of the authenticated stream
	pending  string // read, not matched yet
}

// rawAuth authenticates on a new STARTTLS connection and reads the
// features of the restarted stream, stopping before binding.
func rawAuth(t *testing.T, srv *xmpptest.Server, user string) *raw {
	t.Helper()
	r := srv.DialTLS(t)
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00pw")) + "</auth>")
	if got := r.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("PLAIN: %q", got)
	}
	r.Reset()
	r.Send(srv.Header())
	f := r.ReadUntil("</stream:features>", wait)
	r.Reset()
	return &raw{t: t, Raw: r, features: f}
}

// bind binds resource.
func (r *raw) bind(resource string) *raw {
	r.t.Helper()
	r.Send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	r.expect("bind result", regexp.MustCompile(`(?s)<iq [^>]*type='result'[^>]*>.*?</iq>`))
	return r
}

// expect reads until what was received and not yet matched matches re,
// and returns the submatches; the text up to the end of the match is
// consumed.
func (r *raw) expect(what string, re *regexp.Regexp) []string {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 4096)
	for {
		if m := re.FindStringSubmatchIndex(r.pending); m != nil {
			sub := make([]string, len(m)/2)
			for i := range sub {
				if m[2*i] >= 0 {
					sub[i] = r.pending[m[2*i]:m[2*i+1]]
				}
			}
			r.pending = r.pending[m[1]:]
			return sub
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not received; got %q", what, r.pending)
		}
		r.Conn.SetReadDeadline(deadline)
		n, err := r.Conn.Read(buf)
		r.pending += string(buf[:n])
		if err != nil && n == 0 {
			r.t.Fatalf("%s: %v; got %q", what, err, r.pending)
		}
	}
}

// silent fails if anything arrives within quiet.
func (r *raw) silent(what string) {
	r.t.Helper()
	r.Conn.SetReadDeadline(time.Now().Add(quiet))
	b := make([]byte, 4096)
	if n, _ := r.Conn.Read(b); n > 0 || r.pending != "" {
		r.t.Fatalf("%s: received %q", what, r.pending+string(b[:n]))
	}
}
