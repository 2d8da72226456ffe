package compliance_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/xdg-go/scram"
)

// checkRFC7395: a user logs in over the WebSocket at /xmpp-websocket
// (subprotocol xmpp, <open/> framing, SCRAM, a new <open/> after SASL,
// bind), with a WebSocket client library other than the server's, and
// exchanges messages with alice, who is on TCP; <close/> ends the stream.
func checkRFC7395(t *testing.T, e *env) {
	e.srv.AddUser(t, "carol", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := ws.Dial(ctx, "wss://"+e.srv.HTTPS+"/xmpp-websocket", &ws.DialOptions{
		Subprotocols: []string{"xmpp"},
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	})
	if err != nil {
		t.Fatalf("WebSocket handshake: %v", err)
	}
	defer c.CloseNow()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp (RFC 7395 §3.1)", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	send := func(s string) {
		t.Helper()
		if err := c.Write(ctx, ws.MessageText, []byte(s)); err != nil {
			t.Fatalf("send %q: %v", s, err)
		}
	}
	// until reads messages, one element each, until one contains want.
	until := func(want string) string {
		t.Helper()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if typ != ws.MessageText {
				t.Fatalf("a binary message: %q", b)
			}
			if strings.Contains(string(b), want) {
				return string(b)
			}
		}
	}
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	send(open)
	if o := until("<open"); !strings.Contains(o, "urn:ietf:params:xml:ns:xmpp-framing") {
		t.Fatalf("answer to <open/>: %s", o)
	}
	if f := until("<stream:features"); !strings.Contains(f, "xmlns:stream='http://etherx.jabber.org/streams'") || !strings.Contains(f, "SCRAM-SHA-256") {
		t.Fatalf("features, namespace-qualified as RFC 7395 §3.3.3 asks: %s", f)
	}
	conv, _ := scram.SHA256.NewClient("carol", "pw", "")
	sc := conv.NewConversation()
	first, _ := sc.Step("")
	send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>")
	m := regexp.MustCompile(`<challenge[^>]*>([^<]+)</challenge>`).FindStringSubmatch(until("<challenge"))
	raw, _ := base64.StdEncoding.DecodeString(m[1])
	final, err := sc.Step(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</response>")
	until("<success")
	send(open)
	until("urn:ietf:params:xml:ns:xmpp-bind")
	send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>")
	if b := until("id='b1'"); !strings.Contains(b, "carol@localhost/ws") {
		t.Fatalf("bind: %s", b)
	}
	send("<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>over WebSocket</body></message>")
	e.alice.expect("carol's message", isMessage("carol@localhost/ws", "over WebSocket"))
	e.alice.Send("<message to='carol@localhost/ws' type='chat'><body>to WebSocket</body></message>")
	if got := until("to WebSocket"); !strings.HasPrefix(got, "<message xmlns='jabber:client'") {
		t.Fatalf("alice's message, one qualified element per WebSocket message: %s", got)
	}
	send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	until("<close")
}
