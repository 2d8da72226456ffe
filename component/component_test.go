package component_test

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	wait    = 5 * time.Second
	gateway = "gateway.localhost"
	secret  = "s3cret"
)

// rawComponent is a component written by hand over a plain TCP socket.
type rawComponent struct {
	t    *testing.T
	conn net.Conn
	buf  strings.Builder
	id   string
}

func dial(t *testing.T, srv *xmpptest.Server) *rawComponent {
	t.Helper()
	c, err := net.Dial("tcp", srv.Component)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawComponent{t: t, conn: c}
}

func (c *rawComponent) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("component send: %v", err)
	}
}

// readUntil reads until what was received (since the last reset) matches
// re, and returns it; it fails the test at the timeout or the end of the
// connection.
func (c *rawComponent) readUntil(re string) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 4096)
	for !rx.MatchString(c.buf.String()) {
		n, err := c.conn.Read(b)
		c.buf.Write(b[:n])
		if err != nil && !rx.MatchString(c.buf.String()) {
			c.t.Fatalf("component: waiting for %s: %v; got %q", re, err, c.buf.String())
		}
	}
	return c.buf.String()
}

// closed waits until the server closes the connection.
func (c *rawComponent) closed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 4096)
	for {
		n, err := c.conn.Read(b)
		c.buf.Write(b[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("component: the server did not close the stream; got %q", c.buf.String())
			}
			return
		}
	}
}

func (c *rawComponent) reset() { c.buf.Reset() }

// open sends the stream header for domain and reads the server's, keeping
// its id.
func (c *rawComponent) open(domain string) {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>")
	got := c.readUntil(`<stream:stream [^>]*>`)
	m := regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'`).FindStringSubmatch(got)
	if m == nil {
		c.t.Fatalf("no stream id in %q", got)
	}
	c.id = m[1]
	c.reset()
}

func handshake(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return "<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"
}

// connect opens the stream and authenticates.
func connect(t *testing.T, srv *xmpptest.Server) *rawComponent {
	t.Helper()
	c := dial(t, srv)
	c.open(gateway)
	c.send(handshake(c.id, secret))
	c.readUntil(`<handshake/>`)
	c.reset()
	return c
}

func streamError(cond string) string {
	return `<stream:error><` + cond + ` xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`
}

func start(t *testing.T) *xmpptest.Server {
	t.Helper()
	return xmpptest.Start(t, xmpptest.WithComponent(gateway, secret))
}

// TestComponentHandshake: the server's header (from the component's
// domain, a fresh id), then <handshake/> for the right secret and a
// stream error otherwise.
func TestComponentHandshake(t *testing.T) {
	srv := start(t)
	c := dial(t, srv)
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + gateway + "'>")
	hdr := c.readUntil(`<stream:stream [^>]*>`)
	if !strings.Contains(hdr, "xmlns='jabber:component:accept'") || !strings.Contains(hdr, "from='"+gateway+"'") {
		t.Fatalf("server header %q", hdr)
	}
	other := dial(t, srv)
	other.open(gateway)
	if other.id == "" || strings.Contains(hdr, "id='"+other.id+"'") {
		t.Fatalf("stream ids not fresh: %q and %q", hdr, other.id)
	}

	for _, tc := range []struct {
		name, header, handshake, want string
	}{
		{"wrong secret", gateway, "wrong", "not-authorized"},
		{"unknown domain", "other.localhost", "", "host-unknown"},
		{"no domain", "", "", "host-unknown"},
		{"stanza before the handshake", gateway, "<message/>", "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv)
			c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + tc.header + "'>")
			if tc.handshake != "" {
				got := c.readUntil(`<stream:stream [^>]*\bid='([^']+)'[^>]*>`)
				id := regexp.MustCompile(`\bid='([^']+)'`).FindStringSubmatch(got)[1]
				if strings.HasPrefix(tc.handshake, "<") {
					c.send(tc.handshake)
				} else {
					c.send(handshake(id, tc.handshake))
				}
			}
			c.readUntil(regexp.QuoteMeta(streamError(tc.want)))
			c.closed()
			if strings.Contains(c.buf.String(), "<handshake/>") {
				t.Fatalf("handshake accepted: %q", c.buf.String())
			}
		})
	}

	t.Run("client namespace", func(t *testing.T) {
		c := dial(t, srv)
		c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + gateway + "'>")
		c.readUntil(`<stream:stream [^>]*>` + regexp.QuoteMeta(streamError("invalid-namespace")))
		c.closed()
	})
	t.Run("not well-formed", func(t *testing.T) {
		c := dial(t, srv)
		c.open(gateway)
		c.send("<handshake>abc</hand>")
		c.readUntil(regexp.QuoteMeta(streamError("not-well-formed")))
		c.closed()
	})
	t.Run("conflict", func(t *testing.T) {
		first := connect(t, srv)
		second := dial(t, srv)
		second.open(gateway)
		second.send(handshake(second.id, secret))
		second.readUntil(regexp.QuoteMeta(streamError("conflict")))
		second.closed()
		// The first is still the domain's component: it closes cleanly.
		first.send("</stream:stream>")
		first.readUntil(`</stream:stream>`)
		first.closed()
	})
}

// TestComponentRouting: a local user and a component exchange messages
// and an IQ; the server lists the component in its disco#items; a
// stanza from outside the component's domain ends its stream; while the
// component is away the user's messages bounce; shutdown ends the
// stream with system-shutdown.
func TestComponentRouting(t *testing.T) {
	srv := start(t)
	srv.AddUser(t, "alice", "pw")
	alice := srv.Login(t, jid.MustParse("alice@localhost"), "pw", xmpptest.LoginOptions{Resource: "a"})

	t.Run("disco items", func(t *testing.T) {
		alice.Send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
		got := alice.Expect(wait, "disco#items", func(e xmpptest.Element) bool { return e.Attr("id") == "items" })
		if !got.Contains("<item jid='" + gateway + "'") {
			t.Fatalf("disco#items lacks the component: %s", got.Raw)
		}
	})

	comp := connect(t, srv)

	t.Run("message to the component", func(t *testing.T) {
		alice.Send("<message to='x@%s' id='m1' type='chat'><body>hi</body></message>", gateway)
		got := comp.readUntil(`<message [^>]*>.*</message>`)
		for _, want := range []string{"from='alice@localhost/a'", "to='x@" + gateway + "'", "id='m1'", "<body>hi</body>"} {
			if !strings.Contains(got, want) {
				t.Fatalf("component got %q, lacks %s", got, want)
			}
		}
		comp.reset()
	})
	t.Run("message from the component", func(t *testing.T) {
		comp.send("<message from='bot@" + gateway + "' to='alice@localhost/a' type='chat' id='m2'><body>hello</body></message>")
		got := alice.Expect(wait, "message from the component", xmpptest.IsStanza("message", "chat"))
		if got.Attr("from") != "bot@"+gateway || got.Attr("id") != "m2" || !got.Contains("<body>hello</body>") {
			t.Fatalf("alice got %s", got.Raw)
		}
	})
	t.Run("iq round trip", func(t *testing.T) {
		alice.Send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>", gateway)
		got := comp.readUntil(`<iq [^>]*(/>|>.*</iq>)`)
		if !strings.Contains(got, "id='v1'") || !strings.Contains(got, "from='alice@localhost/a'") || !strings.Contains(got, "<query xmlns='jabber:iq:version'") {
			t.Fatalf("component got %q", got)
		}
		comp.reset()
		comp.send("<iq type='result' id='v1' from='" + gateway + "' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>gw</name></query></iq>")
		res := alice.Expect(wait, "version result", func(e xmpptest.Element) bool { return e.Attr("id") == "v1" })
		if res.Attr("type") != "result" || res.Attr("from") != gateway || !res.Contains("<name>gw</name>") {
			t.Fatalf("alice got %s", res.Raw)
		}
	})
	t.Run("iq from the component to the server", func(t *testing.T) {
		comp.send("<iq type='get' id='d1' from='" + gateway + "' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		got := comp.readUntil(`<iq [^>]*(/>|>.*</iq>)`)
		if !strings.Contains(got, "type='result'") || !strings.Contains(got, "to='"+gateway+"'") || !strings.Contains(got, "disco#info") {
			t.Fatalf("component got %q", got)
		}
		comp.reset()
	})
	t.Run("invalid from", func(t *testing.T) {
		comp.send("<message from='bot@localhost' to='alice@localhost/a'><body>spoofed</body></message>")
		comp.readUntil(regexp.QuoteMeta(streamError("invalid-from")))
		comp.closed()
		alice.ExpectNone(300*time.Millisecond, "spoofed message", func(e xmpptest.Element) bool { return e.Contains("spoofed") })
	})
	t.Run("bounce while disconnected", func(t *testing.T) {
		alice.Send("<message to='x@%s' id='m3'><body>anyone?</body></message>", gateway)
		got := alice.Expect(wait, "bounce", func(e xmpptest.Element) bool { return e.Attr("id") == "m3" })
		if got.Attr("type") != "error" || got.Attr("from") != "x@"+gateway ||
			!got.Contains("<error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'") {
			t.Fatalf("alice got %s", got.Raw)
		}
		alice.Send("<iq type='get' id='v2' to='%s'><query xmlns='jabber:iq:version'/></iq>", gateway)
		got = alice.Expect(wait, "iq bounce", func(e xmpptest.Element) bool { return e.Attr("id") == "v2" })
		if got.Attr("type") != "error" || !got.Contains("<remote-server-timeout") {
			t.Fatalf("alice got %s", got.Raw)
		}
	})
	t.Run("reconnect and shutdown", func(t *testing.T) {
		comp := connect(t, srv)
		alice.Send("<message to='x@%s' id='m4'><body>back?</body></message>", gateway)
		comp.readUntil(`<body>back\?</body></message>`)
		srv.Stop(t)
		comp.readUntil(regexp.QuoteMeta(streamError("system-shutdown")))
		comp.closed()
	})
}

// TestComponentStanzaNamespace: stanzas the component writes in its
// stream's namespace, or with jabber:client, reach a client in
// jabber:client, their children in their own namespaces.
func TestComponentStanzaNamespace(t *testing.T) {
	srv := start(t)
	srv.AddUser(t, "alice", "pw")
	alice := srv.Login(t, jid.MustParse("alice@localhost"), "pw", xmpptest.LoginOptions{Resource: "a"})
	comp := connect(t, srv)
	comp.send("<message xmlns='jabber:client' from='" + gateway + "' to='alice@localhost/a' id='n1' xml:lang='en'><body>one</body><x xmlns='urn:example'><y/></x></message>")
	got := alice.Expect(wait, "n1", func(e xmpptest.Element) bool { return e.Attr("id") == "n1" })
	if !got.Contains("<body>one</body>") || !got.Contains("<x xmlns='urn:example'><y></y></x>") || !got.Contains(" lang='en'") { // xmpptest renders xml:lang without its prefix
		t.Fatalf("alice got %s", got.Raw)
	}
	comp.send("<presence from='bot@" + gateway + "/r' to='alice@localhost'/>")
	comp.send("<foo from='" + gateway + "' to='alice@localhost'/>")
	comp.readUntil(regexp.QuoteMeta(streamError("unsupported-stanza-type")))
	comp.closed()
}

// TestComponentLimits: a stanza from a component over c2s's
// max_stanza_bytes ends its stream with <policy-violation/>; a component
// that stops reading while stanzas for it pile up past
// [component] send_queue_bytes is disconnected with
// <resource-constraint/>, and what waited for it bounces to the senders.
func TestComponentLimits(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithComponent(gateway, secret), func(c *config.Config) {
		c.C2S.MaxStanzaBytes = 10000
		c.C2S.SendQueueBytes = 10000
		c.Component.SendQueueBytes = 10000
	})
	t.Run("stanza too big", func(t *testing.T) {
		c := connect(t, srv)
		c.send("<message from='bot@" + gateway + "' to='alice@localhost'><body>" + strings.Repeat("x", 12000) + "</body></message>")
		c.readUntil(`policy-violation`)
		c.closed()
	})
	t.Run("not reading", func(t *testing.T) {
		alice := srv.AddUser(t, "alice", "pw")
		cl := srv.Login(t, alice, "pw", xmpptest.LoginOptions{})
		c := connect(t, srv)
		// The component reads nothing from here on; its socket buffers
		// fill, then its queue, then it is let go.
		body := strings.Repeat("y", 4000)
		bounced := 0
		for i := 0; i < 2000 && bounced == 0; i++ {
			cl.Send("<message to='bot@%s' id='m%d'><body>%s</body></message>", gateway, i, body)
			select {
			case e := <-cl.Elements():
				if e.Name.Local == "message" && e.Attr("type") == "error" {
					bounced++
				}
			default:
			}
		}
		e := cl.Expect(wait, "a bounce of what waited for the component", func(e xmpptest.Element) bool {
			return e.Name.Local == "message" && e.Attr("type") == "error"
		})
		if !e.Contains("bot@" + gateway) {
			t.Errorf("bounce %s is not of a message to the component", e.Raw)
		}
		// Its stream is ended (with <resource-constraint/> when the
		// socket still takes it); reading drains what was written.
		c.closed()
	})
}
