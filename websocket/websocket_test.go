package websocket_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/xdg-go/scram"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 5 * time.Second

const (
	framing   = "urn:ietf:params:xml:ns:xmpp-framing"
	openFrame = "<open xmlns='" + framing + "' to='localhost' version='1.0'/>"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// wsClient is a raw RFC 7395 client: one element per message.
type wsClient struct {
	t    *testing.T
	c    *ws.Conn
	raw  *rawWS   // instead of c: frames written and read by hand
	seen []string // every message received
}

var insecureHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// dialWS opens a WebSocket to url (ws:// or wss://) with opts.
func dialWS(url string, opts *ws.DialOptions) (*ws.Conn, *http.Response, error) {
	if opts == nil {
		opts = &ws.DialOptions{Subprotocols: []string{"xmpp"}}
	}
	opts.HTTPClient = insecureHTTP
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := ws.Dial(ctx, url, opts)
	if c != nil {
		c.SetReadLimit(-1)
	}
	return c, resp, err
}

// connect opens the WebSocket of the server's HTTPS listener.
func connect(t *testing.T, srv *xmpptest.Server) *wsClient {
	t.Helper()
	c, _, err := dialWS("wss://"+srv.HTTPS+"/xmpp-websocket", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", c.Subprotocol())
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if c.raw != nil {
		c.raw.text(s)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.c.Write(ctx, ws.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// next returns the next message; err is the connection's end.
func (c *wsClient) next() (string, error) {
	if c.raw != nil {
		m, err := c.raw.nextText()
		if err == nil {
			c.seen = append(c.seen, m)
		}
		return m, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	typ, b, err := c.c.Read(ctx)
	if err != nil {
		return "", err
	}
	if typ != ws.MessageText {
		return "", errors.New("binary message")
	}
	c.seen = append(c.seen, string(b))
	return string(b), nil
}

// expect reads messages until one contains want, and returns it.
func (c *wsClient) expect(what, want string) string {
	c.t.Helper()
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: %v; received %q", what, err, c.seen)
		}
		if strings.Contains(m, want) {
			return m
		}
	}
}

// expectClosed reads until the server closes the WebSocket normally.
func (c *wsClient) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.next()
		if err != nil {
			if s := ws.CloseStatus(err); s != ws.StatusNormalClosure {
				c.t.Fatalf("closed with %v (%v), want a normal closure; received %q", s, err, c.seen)
			}
			return
		}
	}
}

// auth opens the stream and authenticates with SCRAM-SHA-256, up to the
// features of the restarted stream.
func (c *wsClient) auth(user, password string) {
	c.t.Helper()
	c.send(openFrame)
	open := c.expect("open", "<open ")
	if !strings.Contains(open, "xmlns='"+framing+"'") || !strings.Contains(open, "from='localhost'") || !strings.Contains(open, "version='1.0'") || !strings.HasSuffix(open, "/>") {
		c.t.Fatalf("open: %q", open)
	}
	f := c.expect("features", "<stream:features")
	if !strings.HasPrefix(f, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'") || strings.Contains(f, "starttls") || !strings.Contains(f, "SCRAM-SHA-256") {
		c.t.Fatalf("features: %q", f)
	}
	sc, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		c.t.Fatal(err)
	}
	conv := sc.NewConversation()
	first, _ := conv.Step("")
	c.send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64(first) + "</auth>")
	ch := c.expect("challenge", "<challenge")
	challenge := ch[strings.Index(ch, ">")+1 : strings.Index(ch, "</challenge>")]
	raw, _ := base64.StdEncoding.DecodeString(challenge)
	final, err := conv.Step(string(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("<response xmlns='" + nsSASL + "'>" + b64(final) + "</response>")
	c.expect("success", "<success")
	c.send(openFrame)
	c.expect("open after SASL", "<open ")
	f = c.expect("features after SASL", "<stream:features")
	if !strings.Contains(f, "urn:ietf:params:xml:ns:xmpp-bind") || !strings.Contains(f, "urn:xmpp:sm:3") {
		c.t.Fatalf("features after SASL: %q", f)
	}
}

// login authenticates and binds resource.
func (c *wsClient) login(user, password, resource string) {
	c.t.Helper()
	c.auth(user, password)
	c.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if r := c.expect("bind result", "id='b1'"); !strings.Contains(r, "type='result'") || !strings.Contains(r, user+"@localhost/"+resource) {
		c.t.Fatalf("bind: %q", r)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestLoginAndMessages: a WebSocket client logs in with SCRAM through
// frames (open, features, auth, restart, bind), exchanges messages with a
// TCP client, and closes with <close/>.
func TestLoginAndMessages(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "bob's pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "tcp"})

	b := connect(t, srv)
	b.login("bob", "bob's pw", "web")
	b.send("<message xmlns='jabber:client' to='alice@localhost/tcp' type='chat'><body>hello from the web</body></message>")
	a.Expect(wait, "bob's message", func(e xmpptest.Element) bool { return e.Contains("hello from the web") })

	a.Send("<message to='bob@localhost/web' type='chat'><body>hello &amp; welcome</body></message>")
	m := b.expect("alice's message", "hello &amp; welcome")
	if !strings.HasPrefix(m, "<message xmlns='jabber:client'") || !strings.Contains(m, "from='alice@localhost/tcp'") {
		t.Fatalf("message frame: %q, want a namespace-qualified <message/> from alice", m)
	}

	b.send("<close xmlns='" + framing + "'/>")
	b.expect("close", "<close xmlns='"+framing+"'/>")
	b.expectClosed()
}

// TestSecureBehindProxy: over the plain listener, a connection is secure
// (SASL offered though STARTTLS is required) only when a loopback proxy
// says X-Forwarded-Proto: https.
func TestSecureBehindProxy(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTP(), func(c *config.Config) { c.C2S.RequireSTARTTLS = true })
	for name, tc := range map[string]struct {
		header http.Header
		sasl   bool
	}{
		"forwarded https": {http.Header{"X-Forwarded-Proto": {"https"}}, true},
		"plain":           {nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			c, _, err := dialWS("ws://"+srv.HTTP+"/xmpp-websocket", &ws.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: tc.header})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			cl := &wsClient{t: t, c: c}
			cl.send(openFrame)
			f := cl.expect("features", "<stream:features")
			if got := strings.Contains(f, "<mechanisms"); got != tc.sasl {
				t.Fatalf("SASL offered: %v, want %v: %q", got, tc.sasl, f)
			}
			if strings.Contains(f, "starttls") {
				t.Fatalf("STARTTLS offered over a WebSocket: %q", f)
			}
		})
	}
	// With [http] trusted_proxies naming another network, a loopback
	// peer's header is not believed.
	other := xmpptest.Start(t, xmpptest.WithHTTP(), func(c *config.Config) {
		c.C2S.RequireSTARTTLS = true
		c.HTTP.TrustedProxies = []string{"10.0.0.0/8"}
	})
	c, _, err := dialWS("ws://"+other.HTTP+"/xmpp-websocket", &ws.DialOptions{Subprotocols: []string{"xmpp"},
		HTTPHeader: http.Header{"X-Forwarded-Proto": {"https"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	cl := &wsClient{t: t, c: c}
	cl.send(openFrame)
	if f := cl.expect("features", "<stream:features"); strings.Contains(f, "<mechanisms") {
		t.Fatalf("SASL offered to an untrusted peer's X-Forwarded-Proto: %q", f)
	}
}

// TestHandshakeRefused: the handshake is refused without the xmpp
// subprotocol (400) and from an origin not allowed (403).
func TestHandshakeRefused(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.HTTP.AllowedOrigins = []string{"https://chat.example.com"}
	})
	url := "wss://" + srv.HTTPS + "/xmpp-websocket"
	for _, tc := range []struct {
		name   string
		protos []string
		origin string
		status int // 0: accepted
	}{
		{"no subprotocol", nil, "", http.StatusBadRequest},
		{"other subprotocol", []string{"mqtt"}, "", http.StatusBadRequest},
		{"refused origin", []string{"xmpp"}, "https://evil.example.net", http.StatusForbidden},
		{"allowed origin", []string{"xmpp"}, "https://chat.example.com", 0},
		{"xmpp among others", []string{"mqtt", "xmpp"}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := dialWS(url, &ws.DialOptions{Subprotocols: tc.protos, HTTPHeader: h})
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatalf("accepted, want %d", tc.status)
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("err %v, response %v, want status %d", err, resp, tc.status)
			}
		})
	}
}

// TestDefaultOrigin: without allowed_origins, a page of the host the
// request went to may connect and another may not.
func TestDefaultOrigin(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	url := "wss://" + srv.HTTPS + "/xmpp-websocket"
	c, _, err := dialWS(url, &ws.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {"https://" + srv.HTTPS}}})
	if err != nil {
		t.Fatalf("same host refused: %v", err)
	}
	c.CloseNow()
	_, resp, err := dialWS(url, &ws.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {"https://example.net"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another host: %v, %v; want 403", err, resp)
	}
}

// TestFramingErrors: messages that break RFC 7395's framing are answered
// with a stream error and <close/>, then a normal closure.
func TestFramingErrors(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	for _, tc := range []struct {
		name   string
		open   bool   // send <open/> first
		binary bool   // send msg as a binary message
		msg    string // what breaks the framing
		cond   string
	}{
		{"first message not open", false, false, "<message xmlns='jabber:client'/>", "invalid-namespace"},
		{"two elements in one message", true, false, "<iq type='get' id='1'/><iq type='get' id='2'/>", "not-well-formed"},
		{"partial element", true, false, "<message xmlns='jabber:client'><body>", "not-well-formed"},
		{"binary message", false, true, openFrame, "not-well-formed"},
		{"binary after open", true, true, "<iq type='get' id='1'/>", "not-well-formed"},
		{"open in another namespace", false, false, "<open xmlns='jabber:client' to='localhost' version='1.0'/>", "not-well-formed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, srv)
			if tc.open {
				c.send(openFrame)
				c.expect("features", "<stream:features")
			}
			if tc.binary {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if err := c.c.Write(ctx, ws.MessageBinary, []byte(tc.msg)); err != nil {
					t.Fatal(err)
				}
			} else {
				c.send(tc.msg)
			}
			e := c.expect("stream error", "<stream:error")
			if !strings.HasPrefix(e, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'") || !strings.Contains(e, "<"+tc.cond+" ") {
				t.Fatalf("stream error %q, want %s", e, tc.cond)
			}
			c.expect("close", "<close xmlns='"+framing+"'/>")
			c.expectClosed()
		})
	}
}

// TestStanzaLimit: a message over max_stanza_bytes ends the stream with
// <policy-violation/>, as over TCP.
func TestStanzaLimit(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) { c.C2S.MaxStanzaBytes = 4096 })
	srv.AddUser(t, "bob", "pw")
	c := connect(t, srv)
	c.login("bob", "pw", "web")
	c.send("<message xmlns='jabber:client' to='bob@localhost'><body>" + strings.Repeat("x", 8000) + "</body></message>")
	if e := c.expect("stream error", "<stream:error"); !strings.Contains(e, "<policy-violation ") {
		t.Fatalf("stream error %q, want policy-violation", e)
	}
	c.expect("close", "<close xmlns='"+framing+"'/>")
}

// TestStreamManagementResume: a WebSocket session with stream management
// is dropped without <close/> and resumed over a new WebSocket; what
// arrived meanwhile and what was not acknowledged is delivered.
func TestStreamManagementResume(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})

	b := connect(t, srv)
	b.login("bob", "pw", "web")
	b.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	id := regexp.MustCompile(`id='([a-z0-9]+)'`).FindStringSubmatch(b.expect("enabled", "<enabled "))
	if id == nil {
		t.Fatalf("enabled: no id in %q", b.seen)
	}
	b.send("<presence xmlns='jabber:client'/>")
	a.Send("<message to='bob@localhost/web' type='chat'><body>m1</body></message>")
	b.expect("m1", "<body>m1</body>")
	b.c.CloseNow() // the network is gone: no <close/>

	a.Send("<message to='bob@localhost/web' type='chat'><body>m2</body></message>")
	a.Sync()

	c := connect(t, srv)
	c.auth("bob", "pw")
	c.send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='1' previd='%s'/>", id[1]))
	if r := c.expect("resumed", "<resumed "); !strings.Contains(r, "previd='"+id[1]+"'") || !strings.Contains(r, "h='1'") {
		t.Fatalf("resumed: %q", r)
	}
	c.expect("m2", "<body>m2</body>")
	a.Send("<message to='bob@localhost/web' type='chat'><body>m3</body></message>")
	c.expect("m3 on the new WebSocket", "<body>m3</body>")
}

// TestHostMeta: XEP-0156's XRD and JRD list the WebSocket and BOSH URLs
// under the public URL, readable from any origin.
func TestHostMeta(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTP(), func(c *config.Config) { c.HTTP.PublicURL = "https://xmpp.example.com/" })
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %s, CORS %q", path, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		return resp, string(b)
	}
	resp, xrd := get("/.well-known/host-meta")
	want := "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://xmpp.example.com/xmpp-websocket'/>"
	if wantBOSH := "<Link rel='urn:xmpp:alt-connections:xbosh' href='https://xmpp.example.com/http-bind'/>"; !strings.Contains(xrd, wantBOSH) {
		t.Fatalf("host-meta:\n%s\nwant %s", xrd, wantBOSH)
	}
	if !strings.Contains(xrd, want) || !strings.Contains(xrd, "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>") {
		t.Fatalf("host-meta:\n%s\nwant %s", xrd, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/xrd+xml" {
		t.Fatalf("host-meta Content-Type %q", ct)
	}
	resp, jrd := get("/.well-known/host-meta.json")
	var doc struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.Unmarshal([]byte(jrd), &doc); err != nil {
		t.Fatalf("host-meta.json: %v: %s", err, jrd)
	}
	if len(doc.Links) != 2 || doc.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || doc.Links[0].Href != "wss://xmpp.example.com/xmpp-websocket" ||
		doc.Links[1].Rel != "urn:xmpp:alt-connections:xbosh" || doc.Links[1].Href != "https://xmpp.example.com/http-bind" {
		t.Fatalf("host-meta.json: %s", jrd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("host-meta.json Content-Type %q", ct)
	}
}
