package caps_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/caps"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	wait  = 5 * time.Second
	quiet = 300 * time.Millisecond
)

const clientNode = "https://client.example/caps"

// features is what the test client supports: avatars by PEP among them.
var features = []string{
	"http://jabber.org/protocol/caps",
	"http://jabber.org/protocol/disco#info",
	"urn:xmpp:avatar:metadata+notify",
	"urn:xmpp:bookmarks:1+notify",
}

// infoXML is the test client's disco#info <query/> for node, listing feats.
func infoXML(node string, feats []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<query xmlns='http://jabber.org/protocol/disco#info' node='%s'><identity category='client' type='pc' name='Test'/>", node)
	for _, f := range feats {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	b.WriteString("</query>")
	return b.String()
}

// verOf is the sha-1 ver of infoXML's answer.
func verOf(t *testing.T, feats []string) string {
	t.Helper()
	info, err := caps.ParseInfo(xml.NewDecoder(strings.NewReader(infoXML("", feats))))
	if err != nil {
		t.Fatal(err)
	}
	v, err := caps.Ver("sha-1", info)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func presence(ver string) string {
	return fmt.Sprintf("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/></presence>", clientNode, ver)
}

// isQuery matches the server's disco#info query for ver.
func isQuery(domain, ver string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "get" && e.Attr("from") == domain &&
			e.Inner == "<query xmlns='http://jabber.org/protocol/disco#info' node='"+clientNode+"#"+ver+"'></query>"
	}
}

// expectQuery waits for the server's query for ver and checks its shape.
func expectQuery(t *testing.T, srv *xmpptest.Server, c *xmpptest.Client, ver string) xmpptest.Element {
	t.Helper()
	q := c.Expect(wait, "disco#info query for "+ver, isQuery(srv.Domain, ver))
	if q.Attr("to") != c.JID.String() || !strings.HasPrefix(q.Attr("id"), "xmppd-") {
		t.Fatalf("query %s: want to='%s' and a server id", q.Raw, c.JID)
	}
	return q
}

// answer answers the query q with feats, and syncs: by the ping's answer
// the server has taken the answer (it reads one client's stanzas in order).
func answer(c *xmpptest.Client, q xmpptest.Element, feats []string) {
	node := nodeAttr.FindStringSubmatch(q.Inner)[1]
	c.Send("<iq type='result' id='%s' to='%s'>%s</iq>", q.Attr("id"), q.Attr("from"), infoXML(node, feats))
	c.Sync()
}

var nodeAttr = regexp.MustCompile(`node='([^']*)'`)

func login(t *testing.T, srv *xmpptest.Server, user jid.JID, res string) *xmpptest.Client {
	t.Helper()
	return srv.Login(t, user, "pw", xmpptest.LoginOptions{Resource: res})
}

// knownLog records OnKnown calls.
type knownLog struct {
	mu  sync.Mutex
	got []string
}

func (k *knownLog) fn(ctx context.Context, full jid.JID) {
	k.mu.Lock()
	k.got = append(k.got, full.String())
	k.mu.Unlock()
}

func (k *knownLog) count(full jid.JID) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, g := range k.got {
		if g == full.String() {
			n++
		}
	}
	return n
}

// TestVerifiedCapsCached: a client's caps are asked once, verified and
// cached; a second session with the same ver is not asked again; both
// want the +notify nodes; OnKnown is told of each.
func TestVerifiedCapsCached(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	svc := srv.Caps()
	var known knownLog
	svc.OnKnown(known.fn)
	ver := verOf(t, features)

	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	q := expectQuery(t, srv, a, ver)
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") || known.count(a.JID) != 0 {
		t.Fatal("interest before the answer")
	}
	answer(a, q, features)
	if !svc.Wants(a.JID, "urn:xmpp:avatar:metadata") || !svc.Wants(a.JID, "urn:xmpp:bookmarks:1") {
		t.Error("no interest after a verified answer")
	}
	if svc.Wants(a.JID, "urn:xmpp:avatar:data") || svc.Wants(a.JID, "urn:xmpp:avatar:metadata+notify") {
		t.Error("interest in a node not announced")
	}
	want := slices.Sorted(slices.Values(features))
	if got := svc.Features(a.JID); !slices.Equal(got, want) {
		t.Errorf("Features = %q, want %q", got, want)
	}
	if n := known.count(a.JID); n != 1 {
		t.Errorf("OnKnown told %d times of a, want 1", n)
	}

	// Another account's session with the same ver: known from the cache
	// with its initial presence, no query.
	b := login(t, srv, bob, "b")
	b.Send("%s", presence(ver))
	b.Sync()
	if !svc.Wants(b.JID, "urn:xmpp:avatar:metadata") {
		t.Error("second session: no interest from the cache")
	}
	b.ExpectNone(quiet, "second query for a cached ver", isQuery(srv.Domain, ver))
	if n := known.count(b.JID); n != 1 {
		t.Errorf("OnKnown told %d times of b, want 1", n)
	}

	// The same caps again (a status change) tell nothing new; new caps
	// that are cached tell OnKnown again.
	b.Send("<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/></presence>", clientNode, ver)
	b.Sync()
	if n := known.count(b.JID); n != 1 {
		t.Errorf("OnKnown told %d times of b after the same caps, want 1", n)
	}
	fewer := features[:2]
	v2 := verOf(t, fewer)
	b.Send("%s", presence(v2))
	answer(b, expectQuery(t, srv, b, v2), fewer)
	if svc.Wants(b.JID, "urn:xmpp:avatar:metadata") {
		t.Error("interest kept after caps without it")
	}
	b.Send("%s", presence(ver))
	b.Sync()
	if !svc.Wants(b.JID, "urn:xmpp:avatar:metadata") || known.count(b.JID) != 3 {
		t.Errorf("back to the first caps: wants %v, OnKnown %d times (want 3)", svc.Wants(b.JID, "urn:xmpp:avatar:metadata"), known.count(b.JID))
	}
	if st := svc.Stats(); st.Cached != 2 || st.Queries != 0 || st.Sessions != 2 {
		t.Errorf("stats %+v, want 2 cached, 0 queries, 2 sessions", st)
	}
}

// TestForgedCaps: an answer that does not hash to the ver gives no
// interest and is not cached: the next session with that ver is asked.
func TestForgedCaps(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	var known knownLog
	svc.OnKnown(known.fn)
	ver := verOf(t, features[:2]) // announces caps without +notify…

	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	answer(a, expectQuery(t, srv, a, ver), features) // …and answers with them
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") || svc.Features(a.JID) != nil || known.count(a.JID) != 0 {
		t.Error("a forged answer gave interest")
	}
	if st := svc.Stats(); st.Cached != 0 || st.Queries != 0 {
		t.Errorf("stats %+v: a forged answer cached or left a query", st)
	}

	b := login(t, srv, alice, "b")
	b.Send("%s", presence(ver))
	answer(b, expectQuery(t, srv, b, ver), features[:2]) // the honest answer
	if got := svc.Features(b.JID); !slices.Equal(got, features[:2]) {
		t.Errorf("honest session: Features = %q", got)
	}
	if svc.Wants(b.JID, "urn:xmpp:avatar:metadata") {
		t.Error("honest session wants what it did not announce")
	}
}

// TestCapsErrorAnswer: an error answer is no answer.
func TestCapsErrorAnswer(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	ver := verOf(t, features)
	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	q := expectQuery(t, srv, a, ver)
	a.Send("<iq type='error' id='%s' to='%s'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", q.Attr("id"), q.Attr("from"))
	a.Sync()
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Error("interest from an error")
	}
	if st := svc.Stats(); st.Cached != 0 || st.Queries != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestCapsNoAnswer: a client that never answers times out with no
// interest and nothing left; a session waiting on the same ver is then
// asked itself, and its answer counts for both.
func TestCapsNoAnswer(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.Caps.QueryTimeout = config.Duration{Duration: 300 * time.Millisecond} })
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	ver := verOf(t, features)

	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	expectQuery(t, srv, a, ver) // never answered
	b := login(t, srv, alice, "b")
	b.Send("%s", presence(ver))
	b.Sync()
	if st := svc.Stats(); st.Queries != 1 {
		t.Errorf("stats %+v: want one query in flight for two sessions with one ver", st)
	}
	// a's query times out; b is asked.
	q := expectQuery(t, srv, b, ver)
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Error("interest without an answer")
	}
	answer(b, q, features)
	for _, c := range []*xmpptest.Client{a, b} {
		if !svc.Wants(c.JID, "urn:xmpp:avatar:metadata") {
			t.Errorf("%s: no interest after b's verified answer", c.JID)
		}
	}

	// Nobody answers a third ver: the query ends, nothing is kept.
	v3 := verOf(t, features[1:])
	a.Send("%s", presence(v3))
	expectQuery(t, srv, a, v3)
	xmpptest.WaitFor(t, wait, func() error {
		if st := svc.Stats(); st.Queries != 0 || st.Cached != 1 {
			return fmt.Errorf("stats %+v, want no query and one cached", st)
		}
		return nil
	})
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Error("interest kept from earlier caps after new ones that timed out")
	}
	// The same ver again is asked again.
	a.Send("%s", presence(v3))
	expectQuery(t, srv, a, v3)
}

// TestCapsForgotten: a session's caps go with its unavailable presence
// and with its stream.
func TestCapsForgotten(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	ver := verOf(t, features)
	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	answer(a, expectQuery(t, srv, a, ver), features)
	if !svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Fatal("no interest")
	}
	a.Send("<presence type='unavailable'/>")
	a.Sync()
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") || svc.Stats().Sessions != 0 {
		t.Errorf("unavailable: still known (stats %+v)", svc.Stats())
	}
	a.Send("%s", presence(ver)) // cached: known at once
	a.Sync()
	if !svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Fatal("available again: no interest")
	}
	a.Close()
	xmpptest.WaitFor(t, wait, func() error {
		if n := svc.Stats().Sessions; n != 0 {
			return fmt.Errorf("%d sessions after the stream ended", n)
		}
		return nil
	})
	if svc.Wants(a.JID, "urn:xmpp:avatar:metadata") {
		t.Error("stream ended: still wants")
	}
}

// TestCapsQueryBudget: a client spinning random vers is asked only a few
// times.
func TestCapsQueryBudget(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	a := login(t, srv, alice, "a")
	for i := range 20 {
		a.Send("%s", presence(base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "random ver %02d ....", i))))
	}
	got := 0
	for _, e := range a.Sync() {
		if e.Name.Local == "iq" && e.Attr("type") == "get" {
			got++
		}
	}
	if got == 0 || got > 5 {
		t.Errorf("%d queries for 20 vers, want 1 to 5", got)
	}
}

var featuresCaps = regexp.MustCompile(`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://xmppd.dev' ver='([A-Za-z0-9+/=]{28})'/>`)

// TestServerCaps: the stream features after authentication carry the
// server's caps, and disco#info of their node answers as the server does,
// hashing to the ver.
func TestServerCaps(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")

	r := srv.DialTLS(t)
	defer r.Conn.Close()
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + "</auth>")
	if got := r.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("PLAIN: %q", got)
	}
	r.Reset()
	r.Send(srv.Header())
	feats := r.ReadUntil("</stream:features>", wait)
	m := featuresCaps.FindStringSubmatch(feats)
	if m == nil {
		t.Fatalf("no caps in the features: %q", feats)
	}
	ver := m[1]

	c := login(t, srv, alice, "a")
	verOfAnswer := func(e xmpptest.Element) string {
		t.Helper()
		info, err := caps.ParseInfo(xml.NewDecoder(strings.NewReader(e.Inner)))
		if err != nil {
			t.Fatalf("%s: %v", e.Raw, err)
		}
		v, err := caps.Ver("sha-1", info)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(info.Features, caps.NS) {
			t.Errorf("server's disco#info lacks %s", caps.NS)
		}
		return v
	}
	for _, tc := range []struct{ name, node string }{
		{"caps node", " node='https://xmppd.dev#" + ver + "'"},
		{"no node", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send("<iq type='get' id='d1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'%s/></iq>", srv.Domain, tc.node)
			e := c.Expect(wait, "disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "d1" })
			if e.Attr("type") != "result" || !strings.HasPrefix(e.Inner, "<query xmlns='http://jabber.org/protocol/disco#info'"+tc.node+"><identity category='server' type='im' name='xmppd'></identity>") {
				t.Fatalf("answer %s", e.Raw)
			}
			if v := verOfAnswer(e); v != ver {
				t.Errorf("disco#info hashes to %s, the features say %s", v, ver)
			}
		})
	}
	c.Send("<iq type='get' id='d2' to='%s'><query xmlns='http://jabber.org/protocol/disco#info' node='https://xmppd.dev#other'/></iq>", srv.Domain)
	e := c.Expect(wait, "disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "d2" })
	if e.Attr("type") != "error" || !e.Contains("<item-not-found") {
		t.Errorf("another node: %s", e.Raw)
	}
}

// TestLegacyCaps: caps without a hash cannot be verified: the client is
// asked and its answer counts for that session only, never cached.
func TestLegacyCaps(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	const legacy = "<presence><c xmlns='http://jabber.org/protocol/caps' node='" + clientNode + "' ver='1.0'/></presence>"
	for _, res := range []string{"a", "b"} {
		c := login(t, srv, alice, res)
		c.Send("%s", legacy)
		answer(c, expectQuery(t, srv, c, "1.0"), features)
		if !svc.Wants(c.JID, "urn:xmpp:avatar:metadata") {
			t.Errorf("%s: no interest from its own answer", c.JID)
		}
	}
	if st := svc.Stats(); st.Cached != 0 || st.Queries != 0 {
		t.Errorf("stats %+v: legacy caps cached", st)
	}
}

// TestCapsSameVerOtherNode: a session announcing a ver already asked of
// another session, under another node, waits for that query; when the
// first session fails it, the second is asked with its own node, and its
// verified answer gives it its interest (it was left waiting forever).
func TestCapsSameVerOtherNode(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	svc := srv.Caps()
	ver := verOf(t, features)
	a := login(t, srv, alice, "a")
	a.Send("%s", presence(ver))
	q := expectQuery(t, srv, a, ver)
	const otherNode = "https://other.example/client"
	b := login(t, srv, alice, "b")
	b.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' ver='%s'/></presence>", otherNode, ver)
	b.Sync()
	a.Send("<iq type='error' id='%s' to='%s'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", q.Attr("id"), q.Attr("from"))
	q2 := b.Expect(wait, "the query, asked of b with its own node", func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "get" && strings.Contains(e.Inner, "node='"+otherNode+"#"+ver+"'")
	})
	answer(b, q2, features)
	xmpptest.WaitFor(t, wait, func() error {
		if !svc.Wants(b.JID, "urn:xmpp:avatar:metadata") {
			return fmt.Errorf("b has no interest after its verified answer")
		}
		return nil
	})
}
