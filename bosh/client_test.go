package bosh_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/xdg-go/scram"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const (
	wait       = 5 * time.Second
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
)

var insecureHTTP = &http.Client{Transport: &http.Transport{
	TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
	MaxIdleConnsPerHost: 8,
}}

// resp is a response: its status, <body/>'s attributes (xmpp:* under
// "xmpp:"), its children as sent and all of it.
type resp struct {
	status   int
	header   http.Header
	attrs    map[string]string
	children []string
	raw      string
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.status, r.raw) }

// parseResp reads a response body; a body that is not one <body/> of
// the httpbind namespace fails the test.
func parseResp(t *testing.T, status int, h http.Header, b []byte) resp {
	t.Helper()
	r := resp{status: status, header: h, attrs: map[string]string{}, raw: string(b)}
	d := xml.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	for err == nil {
		if _, ok := tok.(xml.StartElement); ok {
			break
		}
		tok, err = d.Token()
	}
	if err != nil {
		t.Fatalf("response %d %q: %v", status, b, err)
	}
	start := tok.(xml.StartElement)
	if start.Name.Space != nsHTTPBind || start.Name.Local != "body" {
		t.Fatalf("response %q: not an httpbind <body/>", b)
	}
	for _, a := range start.Attr {
		switch a.Name.Space {
		case "":
			r.attrs[a.Name.Local] = a.Value
		case "urn:xmpp:xbosh":
			r.attrs["xmpp:"+a.Name.Local] = a.Value
		}
	}
	depth, from := 0, int64(0)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("response %q: %v", b, err)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				from = off
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				return r
			}
			depth--
			if depth == 0 {
				r.children = append(r.children, string(b[from:d.InputOffset()]))
			}
		}
	}
}

// post sends one raw request.
func post(t *testing.T, url, body string, hdr http.Header) resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := insecureHTTP.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode < 300 && ct != "text/xml; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	return parseResp(t, res.StatusCode, res.Header, b)
}

// client is a BOSH client: requests go out concurrently, as a browser
// sends them, and elements are read in the order responses arrive.
type client struct {
	t       *testing.T
	url     string
	sid     string
	created resp

	mu       sync.Mutex
	rid      int64
	inflight int
	resps    chan resp
	queue    []string
	seen     []string
	term     *resp // the terminal response, once received
}

// create opens a session with extra attributes on the creation request.
func create(t *testing.T, url, extra string) *client {
	t.Helper()
	c := &client{t: t, url: url, rid: 1000 + time.Now().UnixNano()%100000, resps: make(chan resp, 16)}
	r := post(t, url, fmt.Sprintf("<body xmlns='%s' content='text/xml; charset=utf-8' rid='%d' to='localhost' ver='1.11' wait='10' hold='1' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' %s/>",
		nsHTTPBind, c.rid, extra), nil)
	if r.status != http.StatusOK || r.attrs["sid"] == "" {
		t.Fatalf("creation: %s", r)
	}
	c.sid, c.created = r.attrs["sid"], r
	c.queue = append(c.queue, r.children...)
	return c
}

// body returns a request of the session with the next rid.
func (c *client) body(attrs, payload string) (int64, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rid++
	return c.rid, fmt.Sprintf("<body xmlns='%s' sid='%s' rid='%d' %s>%s</body>", nsHTTPBind, c.sid, c.rid, attrs, payload)
}

// send sends payload in a request of its own, without waiting.
func (c *client) send(attrs, payload string) {
	_, b := c.body(attrs, payload)
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(b))
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		res, err := insecureHTTP.Do(req)
		if err != nil {
			c.resps <- resp{status: -1, raw: err.Error()}
			return
		}
		defer res.Body.Close()
		rb, _ := io.ReadAll(res.Body)
		c.resps <- resp{status: res.StatusCode, header: res.Header, raw: string(rb)}
	}()
}

// next returns the next element received; when no request is out, it
// sends an empty one to fetch. err is the session's end.
func (c *client) next() (string, error) {
	c.t.Helper()
	deadline := time.NewTimer(3 * wait)
	defer deadline.Stop()
	for {
		if len(c.queue) > 0 {
			e := c.queue[0]
			c.queue = c.queue[1:]
			c.seen = append(c.seen, e)
			return e, nil
		}
		if c.term != nil {
			return "", errors.New("terminated: " + c.term.raw)
		}
		c.mu.Lock()
		idle := c.inflight == 0
		c.mu.Unlock()
		if idle {
			c.send("", "")
		}
		select {
		case r := <-c.resps:
			c.mu.Lock()
			c.inflight--
			c.mu.Unlock()
			if r.status != http.StatusOK {
				return "", fmt.Errorf("response %d: %s", r.status, r.raw)
			}
			p := parseResp(c.t, r.status, r.header, []byte(r.raw))
			c.queue = append(c.queue, p.children...)
			if p.attrs["type"] == "terminate" {
				c.term = &p
			}
		case <-deadline.C:
			return "", fmt.Errorf("timeout; received %q", c.seen)
		}
	}
}

// expect reads elements until one contains want.
func (c *client) expect(what, want string) string {
	c.t.Helper()
	for {
		e, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: %v; received %q", what, err, c.seen)
		}
		if strings.Contains(e, want) {
			return e
		}
	}
}

// expectTerminate reads until the terminal response and returns it.
func (c *client) expectTerminate() resp {
	c.t.Helper()
	for {
		if _, err := c.next(); err != nil {
			if c.term == nil {
				c.t.Fatalf("no terminal body: %v; received %q", err, c.seen)
			}
			return *c.term
		}
	}
}

// auth authenticates with SCRAM-SHA-256 and restarts the stream.
func (c *client) auth(user, password string) {
	c.t.Helper()
	f := c.expect("features", "<stream:features")
	if !strings.Contains(f, "SCRAM-SHA-256") || strings.Contains(f, "starttls") {
		c.t.Fatalf("features: %q", f)
	}
	sc, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		c.t.Fatal(err)
	}
	conv := sc.NewConversation()
	first, _ := conv.Step("")
	c.send("", "<auth xmlns='"+nsSASL+"' mechanism='SCRAM-SHA-256'>"+b64(first)+"</auth>")
	ch := c.expect("challenge", "<challenge")
	challenge := ch[strings.Index(ch, ">")+1 : strings.Index(ch, "</challenge>")]
	raw, _ := base64.StdEncoding.DecodeString(challenge)
	final, err := conv.Step(string(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("", "<response xmlns='"+nsSASL+"'>"+b64(final)+"</response>")
	c.expect("success", "<success")
	c.send("to='localhost' xml:lang='en' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", "")
	f = c.expect("features after restart", "<stream:features")
	if !strings.Contains(f, "urn:ietf:params:xml:ns:xmpp-bind") || !strings.Contains(f, "urn:xmpp:sm:3") {
		c.t.Fatalf("features after restart: %q", f)
	}
}

// login authenticates and binds resource.
func (c *client) login(user, password, resource string) {
	c.t.Helper()
	c.auth(user, password)
	c.send("", "<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	if r := c.expect("bind result", "id='b1'"); !strings.Contains(r, "type='result'") || !strings.Contains(r, user+"@localhost/"+resource) {
		c.t.Fatalf("bind: %q", r)
	}
}

// raw sends a request with the given rid and body attributes, and
// waits for its response.
func (c *client) raw(rid int64, attrs, payload string) resp {
	c.t.Helper()
	return post(c.t, c.url, fmt.Sprintf("<body xmlns='%s' sid='%s' rid='%d' %s>%s</body>", nsHTTPBind, c.sid, rid, attrs, payload), nil)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wsClient is a minimal RFC 7395 client.
type wsClient struct {
	t *testing.T
	c *ws.Conn
}

func dialWS(t *testing.T, srv *xmpptest.Server) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := ws.Dial(ctx, "wss://"+srv.HTTPS+"/xmpp-websocket", &ws.DialOptions{Subprotocols: []string{"xmpp"}, HTTPClient: insecureHTTP})
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.c.Write(ctx, ws.MessageText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) expect(what, want string) string {
	c.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, b, err := c.c.Read(ctx)
		cancel()
		if err != nil {
			c.t.Fatalf("%s: %v", what, err)
		}
		if strings.Contains(string(b), want) {
			return string(b)
		}
	}
}

func (c *wsClient) login(user, password, resource string) {
	c.t.Helper()
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	c.send(open)
	c.expect("features", "<stream:features")
	sc, _ := scram.SHA256.NewClient(user, password, "")
	conv := sc.NewConversation()
	first, _ := conv.Step("")
	c.send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64(first) + "</auth>")
	ch := c.expect("challenge", "<challenge")
	raw, _ := base64.StdEncoding.DecodeString(ch[strings.Index(ch, ">")+1 : strings.Index(ch, "</challenge>")])
	final, err := conv.Step(string(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("<response xmlns='" + nsSASL + "'>" + b64(final) + "</response>")
	c.expect("success", "<success")
	c.send(open)
	c.expect("features after SASL", "<stream:features")
	c.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	c.expect("bind", "id='b1'")
}
