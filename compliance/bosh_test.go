package compliance_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// withHTTPS turns on the HTTPS listener, where BOSH is secure (SASL
// without STARTTLS).
var withHTTPS = xmpptest.WithHTTPS()

// boshSession is a minimal XEP-0206 client: one request at a time.
type boshSession struct {
	t   *testing.T
	url string
	sid string
	rid int
}

var insecureHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// post sends a request of the session and returns its response body.
func (b *boshSession) post(attrs, payload string) string {
	b.t.Helper()
	b.rid++
	body := fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' rid='%d' %s", b.rid, attrs)
	if b.sid != "" {
		body += " sid='" + b.sid + "'"
	}
	body += ">" + payload + "</body>"
	res, err := insecureHTTP.Post(b.url, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		b.t.Fatalf("BOSH request: %v", err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || strings.Contains(string(got), "type='terminate'") {
		b.t.Fatalf("BOSH response %d: %s", res.StatusCode, got)
	}
	return string(got)
}

// checkXEP0206: a user logs in over BOSH at /http-bind (session creation
// with XEP-0206's attributes, SCRAM, restart, bind) and exchanges
// messages with alice, who is on TCP.
func checkXEP0206(t *testing.T, e *env) {
	e.srv.AddUser(t, "carol", "pw")
	b := &boshSession{t: t, url: "https://" + e.srv.HTTPS + "/http-bind", rid: 4000}
	created := b.post("to='localhost' ver='1.11' wait='5' hold='1' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'", "")
	sid := regexp.MustCompile(`sid='([^']+)'`).FindStringSubmatch(created)
	if sid == nil || !strings.Contains(created, "xmpp:version='1.0'") || !strings.Contains(created, "xmpp:restartlogic='true'") ||
		!strings.Contains(created, "<stream:features") || !strings.Contains(created, "SCRAM-SHA-256") {
		t.Fatalf("session creation: %s", created)
	}
	b.sid = sid[1]
	conv, _ := scram.SHA256.NewClient("carol", "pw", "")
	c := conv.NewConversation()
	first, _ := c.Step("")
	ch := b.post("", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"+base64.StdEncoding.EncodeToString([]byte(first))+"</auth>")
	m := regexp.MustCompile(`<challenge[^>]*>([^<]+)</challenge>`).FindStringSubmatch(ch)
	if m == nil {
		t.Fatalf("challenge: %s", ch)
	}
	raw, _ := base64.StdEncoding.DecodeString(m[1])
	final, err := c.Step(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r := b.post("", "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"+base64.StdEncoding.EncodeToString([]byte(final))+"</response>"); !strings.Contains(r, "<success") {
		t.Fatalf("SASL: %s", r)
	}
	if r := b.post("to='localhost' xml:lang='en' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", ""); !strings.Contains(r, "urn:ietf:params:xml:ns:xmpp-bind") {
		t.Fatalf("restart: %s", r)
	}
	if r := b.post("", "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bosh</resource></bind></iq>"); !strings.Contains(r, "carol@localhost/bosh") {
		t.Fatalf("bind: %s", r)
	}
	// A ping in the same request, so that its answer comes at once.
	b.post("", "<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>over BOSH</body></message>"+
		"<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	e.alice.expect("carol's message", isMessage("carol@localhost/bosh", "over BOSH"))
	e.alice.Send("<message to='carol@localhost/bosh' type='chat'><body>to BOSH</body></message>")
	if r := b.post("", ""); !strings.Contains(r, "to BOSH") || !strings.Contains(r, "<message xmlns='jabber:client'") {
		t.Fatalf("alice's message: %s", r)
	}
}
