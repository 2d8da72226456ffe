package compliance_test

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// The Core suite (XEP-0479 §2.1).

// checkRFC6120: the client-to-server half of RFC 6120. STARTTLS is offered
// and required before authentication (§5.3.1, §13.8), SASL refused before
// it; SCRAM-SHA-1, the mandatory mechanism (§13.8), logs in and binds a
// resource (§7); the server stamps the sender's full JID on what it routes
// (§8.1.2.1) and answers an IQ it has no handler for with
// service-unavailable (§8.4).
func checkRFC6120(t *testing.T, e *env) {
	r := e.srv.DialRaw(t)
	r.Send(e.srv.Header())
	f := r.ReadUntil("</stream:features>", wait)
	if !strings.Contains(f, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") {
		t.Fatalf("stream features before TLS: %q, want STARTTLS required", f)
	}
	r.Reset()
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>")
	if got := r.ReadUntil("</failure>", wait); !strings.Contains(got, "<encryption-required/>") {
		t.Fatalf("SASL before TLS: %q, want encryption-required", got)
	}

	c := e.srv.Login(t, jid.MustParse("alice@"+domain), "pw", xmpptest.LoginOptions{Resource: "sha1", Mechs: []sasl.Mechanism{sasl.ScramSha1}})
	if c.JID.String() != "alice@localhost/sha1" {
		t.Fatalf("bound %s, want alice@localhost/sha1", c.JID)
	}
	c.Send("<message to='bob@localhost/b' type='chat' id='m1'><body>hello</body></message>")
	m := e.bob.expect("alice's message", isMessage("alice@localhost/sha1", "<body>hello</body>"))
	if m.Attr("to") != "bob@localhost/b" || m.Attr("id") != "m1" {
		t.Fatalf("bob got %s", m.Raw)
	}
	e.alice.fails("get", domain, "<query xmlns='urn:example:nothing'/>", "service-unavailable")
	// An IQ to another full JID goes to it and its answer comes back.
	e.alice.Send("<iq type='get' id='v1' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>")
	q := e.bob.expect("alice's IQ", func(el xmpptest.Element) bool { return el.Name.Local == "iq" && el.Attr("id") == "v1" })
	if q.Attr("from") != "alice@localhost/a" {
		t.Fatalf("bob got %s", q.Raw)
	}
	e.bob.Send("<iq type='result' id='v1' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>b</name><version>1</version></query></iq>")
	e.alice.expect("bob's answer", func(el xmpptest.Element) bool {
		return el.Name.Local == "iq" && el.Attr("id") == "v1" && el.Attr("type") == "result" && el.Attr("from") == "bob@localhost/b"
	})
}

// startTLS opens a connection, asks for STARTTLS and runs the handshake
// with cfg, returning its result.
func startTLS(t *testing.T, e *env, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	r := e.srv.DialRaw(t)
	r.Send(e.srv.Header())
	r.ReadUntil("</stream:features>", wait)
	r.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if got := r.ReadUntil("<proceed", wait); !strings.Contains(got, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") {
		t.Fatalf("STARTTLS: %q", got)
	}
	cfg.InsecureSkipVerify, cfg.ServerName = true, domain
	tc := tls.Client(r.Conn, cfg)
	tc.SetDeadline(time.Now().Add(wait))
	err := tc.Handshake()
	tc.SetDeadline(time.Time{})
	return tc, err
}

// checkRFC7590: TLS as RFC 7590 recommends: TLS 1.2 with an AEAD cipher
// suite with forward secrecy (§3.3, RFC 7525 §4.2), TLS 1.3 when the client
// offers it, and nothing older than TLS 1.2 (RFC 7525 §3.1.1: TLS 1.0 and
// 1.1 SHOULD NOT be negotiated).
func checkRFC7590(t *testing.T, e *env) {
	tc, err := startTLS(t, e, &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	cs := tc.ConnectionState()
	name := tls.CipherSuiteName(cs.CipherSuite)
	if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
		t.Errorf("TLS 1.2 cipher suite %s, want ECDHE with an AEAD cipher", name)
	}
	tc, err = startTLS(t, e, &tls.Config{})
	if err != nil || tc.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("a TLS 1.3 client: %v, version %x", err, tc.ConnectionState().Version)
	}
	if _, err := startTLS(t, e, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded")
	}
}

// checkXEP0368: the direct TLS port answers a TLS handshake with ALPN
// xmpp-client (§3), offers authentication at once without STARTTLS, and a
// client logged in there exchanges messages.
func checkXEP0368(t *testing.T, e *env) {
	r := e.srv.DialDirectTLS(t)
	cs := r.Conn.(*tls.Conn).ConnectionState()
	if cs.NegotiatedProtocol != "xmpp-client" || cs.Version < tls.VersionTLS12 {
		t.Fatalf("direct TLS: ALPN %q, version %x; want xmpp-client, TLS 1.2 or later", cs.NegotiatedProtocol, cs.Version)
	}
	r.Send(e.srv.Header())
	f := r.ReadUntil("</stream:features>", wait)
	if !strings.Contains(f, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>") || strings.Contains(f, "starttls") {
		t.Fatalf("features on the direct TLS port: %q, want SASL and no STARTTLS", f)
	}
	d := &client{Client: e.srv.Login(t, jid.MustParse("alice@"+domain), "pw", xmpptest.LoginOptions{Resource: "tls", DirectTLS: true}), t: t}
	d.Send("<message to='bob@localhost/b' type='chat'><body>over direct TLS</body></message>")
	e.bob.expect("the message sent over direct TLS", isMessage("alice@localhost/tls", "over direct TLS"))
	e.bob.Send("<message to='alice@localhost/tls' type='chat'><body>back</body></message>")
	d.expect("bob's answer over direct TLS", isMessage("bob@localhost/b", "<body>back</body>"))
}

// checkXEP0030: the server's disco#info (identity server/im and the disco
// features, §3), its disco#items with the conference and upload services
// (§4), and an account's disco#info answered by the server on its behalf
// (identity account/registered, RFC 6120 §10.3.3 / XEP-0030 §3.1).
func checkXEP0030(t *testing.T, e *env) {
	info := e.alice.discoInfo(domain, "")
	contains(t, "server disco#info", info, identity("server", "im"),
		feature("http://jabber.org/protocol/disco#info"), feature("http://jabber.org/protocol/disco#items"))
	items := e.alice.ok("get", domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	contains(t, "server disco#items", items, "<item jid='"+conference+"'", "<item jid='"+upload+"'")
	acct := e.bob.discoInfo("alice@localhost", "")
	contains(t, "account disco#info", acct, identity("account", "registered"), feature("http://jabber.org/protocol/disco#info"))
	e.alice.fails("get", domain, "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:none'/>", "item-not-found")
}

// capsFeature matches the server's caps in the stream features (XEP-0115
// §6.3), attributes in any order.
var (
	capsFeature = regexp.MustCompile(`<c xmlns='http://jabber.org/protocol/caps'[^>]*/>`)
	capsVerAttr = regexp.MustCompile(`ver='([^']+)'`)
)

// checkXEP0115: the server announces its own caps in the stream features
// (§6.3) with a ver that its disco#info at node#ver hashes to (§5.1, here
// recomputed independently); it asks a client's disco#info for a ver it
// does not know and uses the answer: a contact's PEP events go only to the
// +notify nodes its caps list (§1.1; XEP-0163 §4).
func checkXEP0115(t *testing.T, e *env) {
	r := rawAuth(t, e.srv, "alice")
	c := capsFeature.FindString(r.features)
	if c == "" || !strings.Contains(c, "hash='sha-1'") || !strings.Contains(c, "node='https://xmppd.dev'") {
		t.Fatalf("no sha-1 caps in the features after authentication: %q", r.features)
	}
	ver := capsVerAttr.FindStringSubmatch(c)[1]
	info := e.alice.discoInfo(domain, "https://xmppd.dev#"+ver)
	if got := capsVer(t, info.Inner); got != ver {
		t.Fatalf("the server's disco#info at its caps node hashes to %s, its caps say %s", got, ver)
	}
	contains(t, "caps node disco#info", info, feature("http://jabber.org/protocol/caps"))

	subscribe(t, e.bob, e.alice)
	phone := login(t, e.srv, "bob", "phone")
	phone.announceCaps("urn:example:wanted+notify")
	e.alice.ok("set", "", publish("urn:example:unwanted", "u1", "<x xmlns='urn:example'/>"))
	e.alice.ok("set", "", publish("urn:example:wanted", "w1", "<x xmlns='urn:example'/>"))
	phone.expect("the event of the node its caps want", isEvent("alice@localhost", "<items node='urn:example:wanted'><item id='w1'>"))
	phone.expectNone("an event its caps do not ask for", isEvent("alice@localhost", "urn:example:unwanted"))
}

// checkXEP0163: an account is a PEP service (identity pubsub/pep, the
// publish-options feature; §9); the owner publishes, a node is created on
// the first publish with presence access (§7.1.1), the owner's resources
// and a contact subscribed to her presence that announced node+notify get
// the event (§4.3), a stranger neither the event nor the items; an open
// node is readable by anyone (what OMEMO needs).
func checkXEP0163(t *testing.T, e *env) {
	info := e.alice.discoInfo("alice@localhost", "")
	contains(t, "account disco#info", info, identity("pubsub", "pep"),
		feature("http://jabber.org/protocol/pubsub#publish"), feature("http://jabber.org/protocol/pubsub#publish-options"),
		feature("http://jabber.org/protocol/pubsub#auto-create"), feature("http://jabber.org/protocol/pubsub#last-published"))
	subscribe(t, e.bob, e.alice)
	e.srv.AddUser(t, "carol", "pw")
	carol := login(t, e.srv, "carol", "c").online()
	const node = "http://jabber.org/protocol/tune"
	for _, c := range []*client{e.alice, e.bob, carol} {
		c.announceCaps(node + "+notify")
	}

	tune := "<tune xmlns='http://jabber.org/protocol/tune'><artist>Yes</artist><title>Heart of the Sunrise</title></tune>"
	e.alice.ok("set", "", publish(node, "t1", tune))
	want := "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='" + node + "'><item id='t1'>" + tune + "</item></items></event>"
	for _, c := range []*client{e.alice, e.bob} {
		ev := c.expect("the tune event", isEvent("alice@localhost", "t1"))
		if ev.Inner != want {
			t.Fatalf("%s got %s, want %s", c.JID, ev.Inner, want)
		}
	}
	carol.expectNone("an event for a stranger", isAnyEvent)
	got := e.bob.ok("get", "alice@localhost", items(node))
	contains(t, "items read by a contact", got, "<item id='t1'>"+tune+"</item>")
	carol.fails("get", "alice@localhost", items(node), "not-authorized")

	const devices = "urn:xmpp:omemo:2:devices"
	e.alice.ok("set", "", publish(devices, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='12345'/></devices>", "pubsub#access_model", "open"))
	got = carol.ok("get", "alice@localhost", items(devices))
	contains(t, "an open node read by a stranger", got, "<device id='12345'>")
}

const (
	gateway         = "gateway.localhost"
	componentSecret = "compliance-component"
)

// withComponent accepts an external component for gateway (XEP-0114).
var withComponent = xmpptest.WithComponent(gateway, componentSecret)

// checkXEP0114: an external component connects in jabber:component:accept
// (§3), the server answers with its header and a stream id, a wrong
// handshake is refused with not-authorized and the right one, SHA-1 of
// the id and the secret in hex, accepted with an empty <handshake/>. The
// server lists the component in its disco#items; a user's message to the
// component's domain reaches it with the user's full JID, and its answer,
// from a JID of its domain, reaches the user.
func checkXEP0114(t *testing.T, e *env) {
	open := func() (net.Conn, *strings.Builder, string) {
		c, err := net.Dial("tcp", e.srv.Component)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var buf strings.Builder
		io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+gateway+"'>")
		got := readUntil(t, c, &buf, regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'[^>]*>`))
		if !strings.Contains(got, "xmlns='jabber:component:accept'") || !strings.Contains(got, "from='"+gateway+"'") {
			t.Fatalf("server's component stream header: %q", got)
		}
		id := regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'`).FindStringSubmatch(got)[1]
		buf.Reset()
		return c, &buf, id
	}
	handshake := func(id, secret string) string {
		sum := sha1.Sum([]byte(id + secret))
		return "<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"
	}

	bad, badBuf, id := open()
	io.WriteString(bad, handshake(id, "wrong"))
	readUntil(t, bad, badBuf, regexp.MustCompile(regexp.QuoteMeta("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")))

	comp, buf, id := open()
	io.WriteString(comp, handshake(id, componentSecret))
	readUntil(t, comp, buf, regexp.MustCompile(`<handshake/>`))
	buf.Reset()

	items := e.alice.ok("get", domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	contains(t, "server disco#items", items, "<item jid='"+gateway+"'")

	e.alice.Send("<message to='echo@%s' type='chat' id='c1'><body>ping</body></message>", gateway)
	got := readUntil(t, comp, buf, regexp.MustCompile(`<message [^>]*>.*</message>`))
	for _, want := range []string{"from='alice@localhost/a'", "to='echo@" + gateway + "'", "<body>ping</body>"} {
		if !strings.Contains(got, want) {
			t.Fatalf("component got %q, lacks %s", got, want)
		}
	}
	io.WriteString(comp, "<message from='echo@"+gateway+"' to='alice@localhost/a' type='chat' id='c2'><body>pong</body></message>")
	e.alice.expect("the component's answer", isMessage("echo@"+gateway, "<body>pong</body>"))
}

// readUntil reads from c into buf until re matches what buf holds.
func readUntil(t *testing.T, c net.Conn, buf *strings.Builder, re *regexp.Regexp) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 4096)
	for !re.MatchString(buf.String()) {
		n, err := c.Read(b)
		buf.Write(b[:n])
		if err != nil && !re.MatchString(buf.String()) {
			t.Fatalf("waiting for %s: %v; got %q", re, err, buf.String())
		}
	}
	return buf.String()
}

// s2sPeer is where the server-to-server check's peer, remote.test,
// listens: chosen before the server under test starts, which routes
// remote.test there.
var s2sPeer = func() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}()

// withS2S federates the server under test with remote.test at s2sPeer.
var withS2S = []xmpptest.Option{xmpptest.WithS2S("127.0.0.1:0"), xmpptest.WithS2SRoute("remote.test", s2sPeer)}

// checkRFC6120S2S: the server-to-server half of RFC 6120 with a second
// xmppd serving remote.test: streams both ways (TLS, then dialback as
// neither certificate is one the other trusts), a message each way, an
// IQ to the remote server answered, and a subscription approved with
// presence following it (RFC 6121 across servers).
func checkRFC6120S2S(t *testing.T, e *env) {
	peer := xmpptest.Start(t, xmpptest.WithDomain("remote.test"), xmpptest.WithS2S(s2sPeer),
		xmpptest.WithS2SRoute(domain, e.srv.S2SAddr().String()))
	carolJID := peer.AddUser(t, "carol", "pw")
	carol := &client{Client: peer.Login(t, carolJID, "pw", xmpptest.LoginOptions{Resource: "c"}), t: t}
	carol.iq("get", "", "<query xmlns='jabber:iq:roster'/>")
	carol.online()

	e.alice.Send("<message to='carol@remote.test' type='chat' id='s2s1'><body>across</body></message>")
	m := carol.expect("alice's message", func(el xmpptest.Element) bool { return el.Attr("id") == "s2s1" })
	if m.Attr("from") != "alice@"+domain+"/a" || !m.Contains("across") {
		t.Fatalf("carol got %s", m.Raw)
	}
	carol.Send("<message to='alice@%s/a' type='chat' id='s2s2'><body>back</body></message>", domain)
	m = e.alice.expect("carol's message", func(el xmpptest.Element) bool { return el.Attr("id") == "s2s2" })
	if m.Attr("from") != "carol@remote.test/c" {
		t.Fatalf("alice got %s", m.Raw)
	}
	contains(t, "remote server's version", e.alice.ok("get", "remote.test", "<query xmlns='jabber:iq:version'/>"), "<name>xmppd</name>")

	e.alice.iq("get", "", "<query xmlns='jabber:iq:roster'/>")
	e.alice.Send("<presence to='carol@remote.test' type='subscribe'/>")
	carol.expect("the subscription request", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("type") == "subscribe" && el.Attr("from") == "alice@"+domain
	})
	carol.Send("<presence to='alice@%s' type='subscribed'/>", domain)
	e.alice.expect("the approval's roster push", func(el xmpptest.Element) bool {
		return el.Name.Local == "iq" && el.Contains("jid='carol@remote.test'") && el.Contains("subscription='to'")
	})
	e.alice.expect("carol's presence", func(el xmpptest.Element) bool {
		return el.Name.Local == "presence" && el.Attr("from") == "carol@remote.test/c" && el.Attr("type") == ""
	})
	out, in := e.srv.S2S().Peers()
	if !slices.Contains(out, domain+" -> remote.test dialback") || !slices.Contains(in, "remote.test -> "+domain+" dialback") {
		t.Errorf("streams: out %v, in %v", out, in)
	}
}
