package s2s_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/router"
)

// fed is two servers federating on loopback: a.test and b.test, each with
// a route to the other.
type fed struct {
	a, b         *xmpptest.Server
	aAddr, bAddr string
}

// federate starts a.test and b.test with the options of each (after the
// federation ones: they may override them).
func federate(t *testing.T, aOpts, bOpts []xmpptest.Option) *fed {
	t.Helper()
	f := &fed{aAddr: xmpptest.FreePort(t), bAddr: xmpptest.FreePort(t)}
	f.a = xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("a.test"), xmpptest.WithS2S(f.aAddr),
		xmpptest.WithS2SRoute("b.test", f.bAddr)}, aOpts...)...)
	f.b = xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("b.test"), xmpptest.WithS2S(f.bAddr),
		xmpptest.WithS2SRoute("a.test", f.aAddr), xmpptest.WithS2SRoute("conference.a.test", f.aAddr)}, bOpts...)...)
	return f
}

// trusting configures a server with a certificate from ca for its domain
// and subdomains, and ca as a trusted root.
func trusting(ca *xmpptest.CA, domain string) []xmpptest.Option {
	return []xmpptest.Option{withCA(ca), withCAcert(ca, domain)}
}

func withCA(ca *xmpptest.CA) xmpptest.Option {
	return func(c *config.Config) { c.S2S.CAFile = ca.File }
}

// withCAcert issues the certificate when the option is applied (the test
// is not at hand then, so the CA's own).
func withCAcert(ca *xmpptest.CA, domain string) xmpptest.Option {
	cert, key := ca.Issue(ca.T, domain, "conference."+domain, "upload."+domain)
	return xmpptest.WithCert(cert, key)
}

func isMessageFrom(from string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("from") == from
	}
}

func peers(f *fed) string {
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	return fmt.Sprintf("a out %v in %v; b out %v in %v", ao, ai, bo, bi)
}

// chat sends a message each way between a user of each server and
// checks both arrive.
func chat(t *testing.T, f *fed) (alice, bob *xmpptest.Client) {
	t.Helper()
	aj := f.a.AddUser(t, "alice", "pw")
	bj := f.b.AddUser(t, "bob", "pw")
	alice = f.a.Login(t, aj, "pw", xmpptest.LoginOptions{Resource: "phone"})
	bob = f.b.Login(t, bj, "pw", xmpptest.LoginOptions{Resource: "desk"})
	alice.Send("<presence/>")
	bob.Send("<presence/>")
	alice.Send("<message to='bob@b.test' type='chat' id='m1'><body>hello b</body></message>")
	m := bob.Expect(5*time.Second, "alice's message", isMessageFrom("alice@a.test/phone"))
	if !strings.Contains(m.Inner, "hello b") || m.Attr("to") != "bob@b.test" {
		t.Errorf("bob got %s", m.Raw)
	}
	bob.Send("<message to='alice@a.test/phone' type='chat' id='m2'><body>hello a</body></message>")
	m = alice.Expect(5*time.Second, "bob's message", isMessageFrom("bob@b.test/desk"))
	if !strings.Contains(m.Inner, "hello a") {
		t.Errorf("alice got %s", m.Raw)
	}
	return alice, bob
}

// TestExternal: with certificates both sides verify, the streams both
// ways authenticate with SASL EXTERNAL, and messages cross.
func TestExternal(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), trusting(ca, "b.test"))
	chat(t, f)
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	if !slices.Equal(ao, []string{"a.test -> b.test external"}) || !slices.Equal(bi, []string{"a.test -> b.test external"}) ||
		!slices.Equal(bo, []string{"b.test -> a.test external"}) || !slices.Equal(ai, []string{"b.test -> a.test external"}) {
		t.Errorf("streams: %s", peers(f))
	}
}

// TestDialback: b.test has only its self-signed certificate, so neither
// side can verify b's: both directions authenticate with dialback.
func TestDialback(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), []xmpptest.Option{withCA(ca)})
	chat(t, f)
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	if !slices.Equal(ao, []string{"a.test -> b.test dialback"}) || !slices.Equal(bi, []string{"a.test -> b.test dialback"}) ||
		!slices.Equal(bo, []string{"b.test -> a.test dialback"}) || !slices.Equal(ai, []string{"b.test -> a.test dialback"}) {
		t.Errorf("streams: %s", peers(f))
	}
}

// TestRefused: with dialback off, a peer whose certificate does not
// verify is not federated with: the sender learns remote-server-not-found.
func TestRefused(t *testing.T) {
	ca := xmpptest.NewCA(t)
	noDialback := func(c *config.Config) { c.S2S.Dialback = false; c.S2S.RetryDelay = config.Duration{} }
	f := federate(t, append(trusting(ca, "a.test"), noDialback), []xmpptest.Option{withCA(ca), noDialback})
	aj := f.a.AddUser(t, "alice", "pw")
	alice := f.a.Login(t, aj, "pw", xmpptest.LoginOptions{})
	alice.Send("<message to='bob@b.test' type='chat' id='m1'><body>hello</body></message>")
	e := alice.Expect(5*time.Second, "bounce", xmpptest.IsStanza("message", "error"))
	if !e.Contains("remote-server-not-found") || e.Attr("from") != "bob@b.test" || e.Attr("id") != "m1" {
		t.Errorf("bounce: %s", e.Raw)
	}
	if ao, _ := f.a.S2S().Peers(); len(ao) != 0 {
		t.Errorf("streams: %s", peers(f))
	}
}

var _ = jid.JID{}

// login adds user on s and logs them in with a resource, roster fetched
// and initial presence sent, as a real client does.
func login(t *testing.T, s *xmpptest.Server, user, resource string) *xmpptest.Client {
	t.Helper()
	j := s.AddUser(t, user, "pw")
	c := s.Login(t, j, "pw", xmpptest.LoginOptions{Resource: resource})
	c.Send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	c.Expect(5*time.Second, "the roster", func(e xmpptest.Element) bool { return e.Name.Local == "iq" && e.Attr("id") == "roster" })
	c.Send("<presence/>")
	return c
}

func isPresence(from, typ string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "presence" && e.Attr("from") == from && e.Attr("type") == typ
	}
}

func isPush(contact, sub string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "set" && e.Contains("jid='"+contact+"'") && e.Contains("subscription='"+sub+"'")
	}
}

// TestSubscription: a user of each server subscribe to each other
// (RFC 6121 §3): both rosters end with subscription both, presence flows
// both ways, and unavailable presence follows a logout.
func TestSubscription(t *testing.T) {
	f := federate(t, nil, nil)
	alice := login(t, f.a, "alice", "phone")
	bob := login(t, f.b, "bob", "desk")
	const wait = 5 * time.Second

	alice.Send("<presence to='bob@b.test' type='subscribe' id='s1'/>")
	bob.Expect(wait, "alice's request", isPresence("alice@a.test", "subscribe"))
	bob.Send("<presence to='alice@a.test' type='subscribed'/>")
	alice.Expect(wait, "bob in alice's roster as to", isPush("bob@b.test", "to"))
	alice.Expect(wait, "bob's presence", isPresence("bob@b.test/desk", ""))

	bob.Send("<presence to='alice@a.test' type='subscribe'/>")
	alice.Expect(wait, "bob's request", isPresence("bob@b.test", "subscribe"))
	alice.Send("<presence to='bob@b.test' type='subscribed'/>")
	alice.Expect(wait, "bob in alice's roster as both", isPush("bob@b.test", "both"))
	bob.Expect(wait, "alice in bob's roster as both", isPush("alice@a.test", "both"))
	bob.Expect(wait, "alice's presence", isPresence("alice@a.test/phone", ""))

	for _, c := range []struct {
		c       *xmpptest.Client
		contact string
	}{{alice, "bob@b.test"}, {bob, "alice@a.test"}} {
		c.c.Send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
		e := c.c.Expect(wait, "the roster", func(e xmpptest.Element) bool { return e.Attr("id") == "r2" })
		if !e.Contains("jid='"+c.contact+"'") || !e.Contains("subscription='both'") {
			t.Errorf("%s's roster: %s", c.c.JID, e.Raw)
		}
	}

	// A presence update and a new resource's probe cross too.
	alice.Send("<presence><show>away</show></presence>")
	bob.Expect(wait, "alice's update", func(e xmpptest.Element) bool {
		return isPresence("alice@a.test/phone", "")(e) && e.Contains("<show>away</show>")
	})
	bob2 := f.b.Login(t, jid.MustParse("bob@b.test"), "pw", xmpptest.LoginOptions{Resource: "laptop"})
	bob2.Send("<presence/>")
	bob2.Expect(wait, "alice's presence answering the probe", isPresence("alice@a.test/phone", ""))
	bob2.Close()

	bob.Close()
	alice.Expect(wait, "bob's unavailable presence", isPresence("bob@b.test/desk", "unavailable"))
}

// TestMUC: a room on a.test with an occupant from b.test: the occupant
// joins, sees the others, and messages go both ways.
func TestMUC(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), trusting(ca, "b.test"))
	alice := login(t, f.a, "alice", "phone")
	bob := login(t, f.b, "bob", "desk")
	const room = "lounge@conference.a.test"
	const wait = 5 * time.Second
	alice.Send("<presence to='%s/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	alice.Expect(wait, "the new room", func(e xmpptest.Element) bool {
		return isPresence(room+"/Alice", "")(e) && e.Contains("<status code='201'")
	})
	alice.Send("<iq type='set' to='%s' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room)
	alice.Expect(wait, "the room configured", func(e xmpptest.Element) bool { return e.Attr("id") == "cfg" && e.Attr("type") == "result" })

	bob.Send("<presence to='%s/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	bob.Expect(wait, "alice in the room", isPresence(room+"/Alice", ""))
	e := bob.Expect(wait, "bob's own presence in the room", isPresence(room+"/Bob", ""))
	if !e.Contains("<status code='110'") || e.Attr("to") != "bob@b.test/desk" {
		t.Errorf("bob's self-presence: %s", e.Raw)
	}
	alice.Expect(wait, "bob joining", isPresence(room+"/Bob", ""))

	bob.Send("<message to='%s' type='groupchat' id='g1'><body>hi from b</body></message>", room)
	for _, c := range []*xmpptest.Client{alice, bob} {
		m := c.Expect(wait, "bob's groupchat message", isMessageFrom(room+"/Bob"))
		if !m.Contains("hi from b") || m.Attr("type") != "groupchat" {
			t.Errorf("%s got %s", c.JID, m.Raw)
		}
	}
	alice.Send("<message to='%s' type='groupchat' id='g2'><body>hi from a</body></message>", room)
	bob.Expect(wait, "alice's groupchat message", func(e xmpptest.Element) bool {
		return isMessageFrom(room+"/Alice")(e) && e.Contains("hi from a")
	})
	// The room's own streams are a domain pair of their own, and
	// authenticated with the certificate that names the subdomain.
	if ao, _ := f.a.S2S().Peers(); !slices.Contains(ao, "conference.a.test -> b.test external") {
		t.Errorf("streams: %s", peers(f))
	}
	bob.Send("<presence to='%s/Bob' type='unavailable'/>", room)
	alice.Expect(wait, "bob leaving", isPresence(room+"/Bob", "unavailable"))
}

// TestIQ: IQs cross both ways, to the other server and to a user's
// client, and the results come back.
func TestIQ(t *testing.T) {
	f := federate(t, nil, nil)
	alice := login(t, f.a, "alice", "phone")
	bob := login(t, f.b, "bob", "desk")
	const wait = 5 * time.Second
	alice.Send("<iq type='get' to='b.test' id='v1'><query xmlns='jabber:iq:version'/></iq>")
	e := alice.Expect(wait, "b.test's version", func(e xmpptest.Element) bool { return e.Attr("id") == "v1" })
	if e.Attr("type") != "result" || e.Attr("from") != "b.test" || !e.Contains("<name>xmppd</name>") {
		t.Errorf("version: %s", e.Raw)
	}
	bob.Send("<iq type='get' to='a.test' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	e = bob.Expect(wait, "a.test's disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "d1" })
	if e.Attr("type") != "result" || !e.Contains("category='server'") {
		t.Errorf("disco#info: %s", e.Raw)
	}
	// To a client of the other server, answered by that client.
	alice.Send("<iq type='get' to='bob@b.test/desk' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	e = bob.Expect(wait, "alice's ping", func(e xmpptest.Element) bool { return e.Attr("id") == "p1" })
	if e.Attr("from") != "alice@a.test/phone" {
		t.Errorf("ping: %s", e.Raw)
	}
	bob.Send("<iq type='result' to='alice@a.test/phone' id='p1'/>")
	e = alice.Expect(wait, "bob's answer", func(e xmpptest.Element) bool { return e.Attr("id") == "p1" })
	if e.Attr("type") != "result" || e.Attr("from") != "bob@b.test/desk" {
		t.Errorf("pong: %s", e.Raw)
	}
	// The server's own request (Router.Request) to a remote client, the
	// answer matched by id and sender.
	answered := make(chan string, 1)
	err := f.a.Router().Request(context.Background(), "get", jid.MustParse("bob@b.test/desk"),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}}), 5*time.Second,
		func(_ context.Context, reply *router.Stanza, err error) {
			if err != nil {
				answered <- err.Error()
				return
			}
			answered <- reply.Type + " from " + reply.From.String()
		})
	if err != nil {
		t.Fatal(err)
	}
	e = bob.Expect(wait, "the server's ping", func(e xmpptest.Element) bool { return e.Attr("from") == "a.test" && e.Contains("urn:xmpp:ping") })
	bob.Send("<iq type='result' to='a.test' id='%s'/>", e.Attr("id"))
	select {
	case got := <-answered:
		if got != "result from bob@b.test/desk" {
			t.Errorf("request answered with %s", got)
		}
	case <-time.After(wait):
		t.Error("the request was never answered")
	}
	// To a user that does not exist: the other server's error comes back.
	alice.Send("<iq type='get' to='nobody@b.test/x' id='n1'><ping xmlns='urn:xmpp:ping'/></iq>")
	e = alice.Expect(wait, "the error", func(e xmpptest.Element) bool { return e.Attr("id") == "n1" })
	if e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("to nobody: %s", e.Raw)
	}
}

// TestRestart: a message sent while the receiving server restarts waits
// for its one retry and arrives once the server is back (in bob's offline
// store there, as bob had logged out); nothing is bounced.
func TestRestart(t *testing.T) {
	retry := func(c *config.Config) { c.S2S.RetryDelay = config.Duration{Duration: 3 * time.Second} }
	f := federate(t, []xmpptest.Option{retry}, nil)
	alice, bob := chat(t, f)
	bob.Close()
	f.b.Stop(t)

	alice.Send("<message to='bob@b.test' type='chat' id='while-down'><body>are you back?</body></message>")
	time.Sleep(200 * time.Millisecond) // the first attempt fails meanwhile
	b := xmpptest.StartConfig(t, f.b.Config)
	bob = b.Login(t, jid.MustParse("bob@b.test"), "pw", xmpptest.LoginOptions{Resource: "desk"})
	bob.Send("<presence/>")
	m := bob.Expect(10*time.Second, "the message sent while b.test was down", isMessageFrom("alice@a.test/phone"))
	if !m.Contains("are you back?") {
		t.Errorf("bob got %s", m.Raw)
	}
	alice.ExpectNone(300*time.Millisecond, "a bounce", xmpptest.IsStanza("message", "error"))
}
