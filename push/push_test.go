package push_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

const (
	wait    = 5 * time.Second
	quiet   = 300 * time.Millisecond
	appJID  = "push.localhost"
	secret  = "s3cret"
	pubOpts = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>eruio234vzxc2kla-91</value></field></x>"
)

// appServer is a XEP-0357 app server played by an external component
// (XEP-0114) on push.localhost: it records every IQ it gets and answers
// each with a result, or with the error set by fail.
type appServer struct {
	t    *testing.T
	conn net.Conn
	got  chan string

	mu      sync.Mutex
	errType string // "" answers with a result
}

var (
	reIQ    = regexp.MustCompile(`(?s)<iq\b[^>]*?(?:/>|>.*?</iq>)`)
	reAttr  = func(name string) *regexp.Regexp { return regexp.MustCompile(`\b` + name + `=['"]([^'"]*)['"]`) }
	reID    = reAttr("id")
	reFrom  = reAttr("from")
	reTo    = reAttr("to")
	reCount = regexp.MustCompile(`<field var=['"]message-count['"]><value>(\d+)</value></field>`)
)

// startApp connects the app server to srv.
func startApp(t *testing.T, srv *xmpptest.Server) *appServer {
	t.Helper()
	c, err := net.Dial("tcp", srv.Component)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + appJID + "'>"))
	var buf strings.Builder
	b := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(wait))
	reStreamID := regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'`)
	for !reStreamID.MatchString(buf.String()) {
		n, err := c.Read(b)
		buf.Write(b[:n])
		if err != nil {
			t.Fatalf("app server: header: %v; got %q", err, buf.String())
		}
	}
	sum := sha1.Sum([]byte(reStreamID.FindStringSubmatch(buf.String())[1] + secret))
	c.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"))
	buf.Reset()
	for !strings.Contains(buf.String(), "<handshake/>") {
		n, err := c.Read(b)
		buf.Write(b[:n])
		if err != nil {
			t.Fatalf("app server: handshake: %v; got %q", err, buf.String())
		}
	}
	c.SetReadDeadline(time.Time{})
	a := &appServer{t: t, conn: c, got: make(chan string, 100)}
	go a.serve(strings.SplitN(buf.String(), "<handshake/>", 2)[1])
	return a
}

// serve reads IQs until the connection ends, recording and answering them.
func (a *appServer) serve(pending string) {
	defer close(a.got)
	b := make([]byte, 4096)
	for {
		for {
			loc := reIQ.FindStringIndex(pending)
			if loc == nil {
				break
			}
			iq := pending[loc[0]:loc[1]]
			pending = pending[loc[1]:]
			a.answer(iq)
			a.got <- iq
		}
		n, err := a.conn.Read(b)
		pending += string(b[:n])
		if err != nil {
			return
		}
	}
}

func attr(re *regexp.Regexp, s string) string {
	start := s[:strings.Index(s, ">")]
	if m := re.FindStringSubmatch(start); m != nil {
		return m[1]
	}
	return ""
}

func (a *appServer) answer(iq string) {
	a.mu.Lock()
	errType := a.errType
	a.mu.Unlock()
	head := fmt.Sprintf("<iq id='%s' from='%s' to='%s'", attr(reID, iq), attr(reTo, iq), attr(reFrom, iq))
	if errType == "" {
		a.conn.Write([]byte(head + " type='result'/>"))
		return
	}
	a.conn.Write([]byte(head + " type='error'><error type='" + errType + "'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"))
}

// fail makes the app server answer with errors of type typ ("" for
// results again).
func (a *appServer) fail(typ string) {
	a.mu.Lock()
	a.errType = typ
	a.mu.Unlock()
}

// expect returns the next IQ the app server got.
func (a *appServer) expect(what string) string {
	a.t.Helper()
	select {
	case iq, ok := <-a.got:
		if !ok {
			a.t.Fatalf("app server: connection ended waiting for %s", what)
		}
		return iq
	case <-time.After(wait):
		a.t.Fatalf("app server: no %s", what)
	}
	return ""
}

// none fails if the app server gets anything within quiet.
func (a *appServer) none(what string) {
	a.t.Helper()
	select {
	case iq := <-a.got:
		a.t.Fatalf("app server: %s: got %s", what, iq)
	case <-time.After(quiet):
	}
}

// notification checks that iq is a notification from user to the node
// with the summary's count and sender, and the body exactly when body is
// not "".
func notification(t *testing.T, iq, user, node string, count int, sender, body string, withOptions bool) {
	t.Helper()
	want := []string{
		"type='set'",
		"from='" + user + "'",
		"to='" + appJID + "'",
		"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='" + node + "'><item><notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>",
		"<field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>",
		fmt.Sprintf("<field var='message-count'><value>%d</value></field>", count),
		"<field var='last-message-sender'><value>" + sender + "</value></field>",
	}
	if body != "" {
		want = append(want, "<field var='last-message-body'><value>"+body+"</value></field>")
	} else if strings.Contains(iq, "last-message-body") {
		t.Fatalf("notification with a body: %s", iq)
	}
	if withOptions {
		want = append(want, "<publish-options>"+pubOpts+"</publish-options>")
	} else if strings.Contains(iq, "publish-options") {
		t.Fatalf("notification with publish-options: %s", iq)
	}
	for _, w := range want {
		if !strings.Contains(iq, w) {
			t.Fatalf("notification lacks %s:\n%s", w, iq)
		}
	}
}

// client is a logged-in test client that numbers its IQs.
type client struct {
	*xmpptest.Client
	t *testing.T
	n int
}

func login(t *testing.T, srv *xmpptest.Server, name, res string) *client {
	t.Helper()
	return &client{Client: srv.Login(t, jid.MustParse(name+"@localhost"), "pw", xmpptest.LoginOptions{Resource: res}), t: t}
}

// iq sends an IQ and returns its answer.
func (c *client) iq(typ, to, payload string) xmpptest.Element {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("iq%d", c.n)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.Send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload)
	return c.Expect(wait, "answer to "+id, func(e xmpptest.Element) bool {
		return e.Name.Local == "iq" && e.Attr("id") == id
	})
}

func (c *client) ok(payload string) {
	c.t.Helper()
	if e := c.iq("set", "", payload); e.Attr("type") != "result" {
		c.t.Fatalf("%s: %s", payload, e.Raw)
	}
}

func (c *client) fails(payload, cond string) {
	c.t.Helper()
	e := c.iq("set", "", payload)
	if e.Attr("type") != "error" || !e.Contains("<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'") {
		c.t.Fatalf("%s: got %s, want %s", payload, e.Raw, cond)
	}
}

func enable(node, form string) string {
	return "<enable xmlns='urn:xmpp:push:0' jid='" + appJID + "' node='" + node + "'>" + form + "</enable>"
}

func start(t *testing.T, opts ...xmpptest.Option) *xmpptest.Server {
	t.Helper()
	srv := xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithComponent(appJID, secret)}, opts...)...)
	srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	return srv
}

// TestEnableDisable: the feature on the account; enable and disable with
// and without a node, bad requests refused, and what each does to the
// notifications of a message to bob while he has no session.
func TestEnableDisable(t *testing.T) {
	srv := start(t)
	app := startApp(t, srv)
	bob := login(t, srv, "bob", "phone")
	info := bob.iq("get", "bob@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if !info.Contains("<feature var='urn:xmpp:push:0'>") {
		t.Fatalf("no urn:xmpp:push:0 on the account: %s", info.Raw)
	}
	for _, c := range []struct{ name, payload, cond string }{
		{"enable without jid", "<enable xmlns='urn:xmpp:push:0' node='n'/>", "bad-request"},
		{"enable without node", "<enable xmlns='urn:xmpp:push:0' jid='" + appJID + "'/>", "bad-request"},
		{"enable with a bad jid", "<enable xmlns='urn:xmpp:push:0' jid='@@' node='n'/>", "jid-malformed"},
		{"enable with another form", enable("n", "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>"), "bad-request"},
		{"enable to the account itself", "<enable xmlns='urn:xmpp:push:0' jid='bob@localhost' node='n'/>", "bad-request"},
		{"disable without jid", "<disable xmlns='urn:xmpp:push:0' node='n'/>", "bad-request"},
	} {
		t.Run(c.name, func(t *testing.T) { bob.t = t; bob.fails(c.payload, c.cond) })
	}
	bob.t = t
	bob.ok(enable("n1", pubOpts))
	bob.ok(enable("n2", ""))
	// Enabling to bob's own bare JID is the same.
	if e := bob.iq("set", "bob@localhost", enable("n3", "")); e.Attr("type") != "result" {
		t.Fatalf("enable to the bare JID: %s", e.Raw)
	}
	// Connected and available (no stream management): nothing.
	alice := login(t, srv, "alice", "a")
	bob.Send("<presence/>")
	bob.Sync()
	alice.Send("<message to='bob@localhost' type='chat'><body>online</body></message>")
	bob.Expect(wait, "alice's message", func(e xmpptest.Element) bool { return e.Contains("online") })
	app.none("a notification while bob is online")
	bob.Close()

	// Offline: each registration gets a notification.
	alice.Send("<message to='bob@localhost' type='chat'><body>hi</body></message>")
	got := map[string]string{}
	for range 3 {
		iq := app.expect("notification")
		m := regexp.MustCompile(`<publish node='([^']+)'`).FindStringSubmatch(iq)
		if m == nil {
			t.Fatalf("not a publish: %s", iq)
		}
		got[m[1]] = iq
	}
	notification(t, got["n1"], "bob@localhost", "n1", 1, "alice@localhost/a", "", true)
	notification(t, got["n2"], "bob@localhost", "n2", 1, "alice@localhost/a", "", false)
	notification(t, got["n3"], "bob@localhost", "n3", 1, "alice@localhost/a", "", false)
	app.none("a fourth notification")

	// Disabling one node leaves the others; disabling the app server
	// without a node ends them all.
	bob = login(t, srv, "bob", "phone")
	bob.ok("<disable xmlns='urn:xmpp:push:0' jid='" + appJID + "' node='n1'/>")
	bob.Close()
	alice.Send("<message to='bob@localhost' type='chat'><body>two</body></message>")
	nodes := []string{}
	for range 2 {
		iq := app.expect("notification")
		nodes = append(nodes, regexp.MustCompile(`<publish node='([^']+)'`).FindStringSubmatch(iq)[1])
		if !strings.Contains(iq, "<value>2</value>") {
			t.Fatalf("second message's count: %s", iq)
		}
	}
	if strings.Join(nodes, " ") != "n2 n3" && strings.Join(nodes, " ") != "n3 n2" {
		t.Fatalf("after disabling n1: notifications to %q", nodes)
	}
	app.none("a notification to n1")
	bob = login(t, srv, "bob", "phone")
	bob.ok("<disable xmlns='urn:xmpp:push:0' jid='" + appJID + "'/>")
	// Disabling what is not there is no error.
	bob.ok("<disable xmlns='urn:xmpp:push:0' jid='" + appJID + "'/>")
	bob.Close()
	alice.Send("<message to='bob@localhost' type='chat'><body>three</body></message>")
	alice.Sync()
	app.none("a notification after disabling all")
}

// smLogin logs name in on a raw connection with stream management
// enabled for resumption and initial presence sent, and returns the
// connection and the session's resumption id.
func smLogin(t *testing.T, srv *xmpptest.Server, name, resource string) (*xmpptest.Raw, string) {
	t.Helper()
	r := srv.DialTLS(t)
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+name+"\x00pw")) + "</auth>")
	if got := r.ReadUntil("<success", wait); !strings.Contains(got, "<success") {
		t.Fatalf("PLAIN: %q", got)
	}
	r.Reset()
	r.Send(srv.Header())
	r.ReadUntil("</stream:features>", wait)
	r.Reset()
	r.Send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	r.ReadUntil("</iq>", wait)
	r.Reset()
	r.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	got := r.ReadUntil("/>", wait)
	m := regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("stream management not enabled: %q", got)
	}
	r.Reset()
	r.Send("<presence/>")
	return r, m[1]
}

// detach drops r's connection without closing the stream, and waits until
// the server has noticed and keeps the session for a resumption.
func detach(t *testing.T, srv *xmpptest.Server, r *xmpptest.Raw, full string) {
	t.Helper()
	r.Conn.Close()
	j := jid.MustParse(full)
	xmpptest.WaitFor(t, wait, func() error {
		s, ok := srv.Router().SessionOf(j)
		if !ok || !router.Detached(s) {
			return fmt.Errorf("%s not detached yet", full)
		}
		return nil
	})
}

// TestDetached: a session that loses its connection sends one
// notification for the messages it had not acknowledged; then messages
// to a user whose only session waits for a resumption send one
// notification each, counting up, naming the sender, without the body; a
// chat state alone sends none; a connected session gets none, and the
// count starts again once one took a message.
func TestDetached(t *testing.T) {
	srv := start(t)
	app := startApp(t, srv)
	alice := login(t, srv, "alice", "a")
	r, _ := smLogin(t, srv, "bob", "phone")
	r.Send("<iq type='set' id='p1'>" + enable("node1", pubOpts) + "</iq>")
	if got := r.ReadUntil("id='p1'", wait); !strings.Contains(got, "type='result'") {
		t.Fatalf("enable: %q", got)
	}

	// Connected: nothing. The first message is acknowledged (the
	// server's answer to <r/> shows the <a/> was handled), the next two
	// (one a chat state) not.
	alice.Send("<message to='bob@localhost' type='chat'><body>acked</body></message>")
	got := r.ReadUntil("acked</body>", wait)
	h := strings.Count(got, "<message ") + strings.Count(got, "<presence") + strings.Count(got, "<iq ")
	r.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/><r xmlns='urn:xmpp:sm:3'/>", h))
	r.ReadUntil("<a xmlns='urn:xmpp:sm:3'", wait)
	alice.Send("<message to='bob@localhost' type='chat'><body>not acked</body></message>")
	alice.Send("<message to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	r.ReadUntil("<active ", wait)
	app.none("a notification while bob is connected")

	// The connection is lost: one notification for what bob did not
	// acknowledge, counting the one message that matters.
	detach(t, srv, r, "bob@localhost/phone")
	notification(t, app.expect("the notification of what was not acknowledged"), "bob@localhost", "node1", 1, "alice@localhost/a", "", true)
	app.none("a second notification of what was not acknowledged")
	// Then one per message.
	for i := 2; i <= 4; i++ {
		alice.Send("<message to='bob@localhost' type='chat'><body>secret %d</body></message>", i)
		notification(t, app.expect(fmt.Sprintf("notification %d", i)), "bob@localhost", "node1", i, "alice@localhost/a", "", true)
	}
	// To the full JID, too; chat states, receipts and headlines alone are
	// no reason to wake a phone; an OMEMO message without a body is.
	alice.Send("<message to='bob@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.Send("<message to='bob@localhost/phone' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/></message>")
	alice.Send("<message to='bob@localhost' type='headline'><body>news</body></message>")
	alice.Sync()
	app.none("a notification for a chat state, a receipt or a headline")
	alice.Send("<message to='bob@localhost/phone' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/><payload>AAAA</payload></encrypted></message>")
	notification(t, app.expect("notification of an OMEMO message"), "bob@localhost", "node1", 5, "alice@localhost/a", "", true)
	app.none("a second notification for one message")

	// Bob resumes; a message his connected session takes sends nothing
	// and starts the count again.
	c, _ := smLogin(t, srv, "bob", "tablet")
	alice.Send("<message to='bob@localhost/tablet' type='chat'><body>on the tablet</body></message>")
	c.ReadUntil("on the tablet", wait)
	app.none("a notification for the tablet's message")
	alice.Send("<message to='bob@localhost/phone' type='chat'><body>after</body></message>")
	notification(t, app.expect("notification after the count started again"), "bob@localhost", "node1", 1, "alice@localhost/a", "", true)
}

// TestIncludeBody: with [push] include_body the body goes along.
func TestIncludeBody(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Push.IncludeBody = true })
	app := startApp(t, srv)
	bob := login(t, srv, "bob", "phone")
	bob.ok(enable("n", ""))
	bob.Close()
	alice := login(t, srv, "alice", "a")
	alice.Send("<message to='bob@localhost' type='chat'><body>see you &amp; bye</body></message>")
	notification(t, app.expect("notification"), "bob@localhost", "n", 1, "alice@localhost/a", "see you &amp; bye", false)
}

// TestDisabledService: with [push] enabled = false nothing is advertised
// and enable is not served.
func TestDisabledService(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Push.Enabled = false })
	bob := login(t, srv, "bob", "phone")
	if info := bob.iq("get", "bob@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>"); info.Contains("urn:xmpp:push:0") {
		t.Fatalf("push advertised while disabled: %s", info.Raw)
	}
	bob.fails(enable("n", ""), "service-unavailable")
}

// registrations lists what storage holds for user, with the server
// stopped.
func registrations(t *testing.T, cfg config.Config, user string) []storage.PushRegistration {
	t.Helper()
	db, err := storage.Open(t.Context(), cfg.Storage.Driver, cfg.StorageDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	regs, err := db.Push().List(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return regs
}

// TestErrorsAndRestart, on both engines: registrations survive a restart
// with their publish-options; an app server that answers with an error
// has the registration removed, so the next message sends nothing and
// the row is gone; a wait error does not remove it.
func TestErrorsAndRestart(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var opts []xmpptest.Option
			if engine == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			srv := start(t, opts...)
			bob := login(t, srv, "bob", "phone")
			bob.ok(enable("keep", pubOpts))
			bob.ok(enable("drop", ""))
			bob.Close()
			srv.Stop(t)
			if regs := registrations(t, srv.Config, "bob@localhost"); len(regs) != 2 {
				t.Fatalf("stored: %+v", regs)
			}

			srv = xmpptest.StartConfig(t, srv.Config)
			app := startApp(t, srv)
			alice := login(t, srv, "alice", "a")
			alice.Send("<message to='bob@localhost' type='chat'><body>1</body></message>")
			got := map[string]string{}
			for range 2 {
				iq := app.expect("notification after the restart")
				got[regexp.MustCompile(`<publish node='([^']+)'`).FindStringSubmatch(iq)[1]] = iq
			}
			notification(t, got["keep"], "bob@localhost", "keep", 1, "alice@localhost/a", "", true)
			notification(t, got["drop"], "bob@localhost", "drop", 1, "alice@localhost/a", "", false)

			// A wait error leaves the registrations.
			app.fail("wait")
			alice.Send("<message to='bob@localhost' type='chat'><body>2</body></message>")
			app.expect("notification")
			app.expect("notification")
			app.fail("")
			alice.Send("<message to='bob@localhost' type='chat'><body>3</body></message>")
			app.expect("notification")
			app.expect("notification")

			// A cancel error removes the registration it answers.
			app.fail("cancel")
			bob = login(t, srv, "bob", "phone")
			bob.ok("<disable xmlns='urn:xmpp:push:0' jid='" + appJID + "' node='keep'/>")
			bob.Close()
			alice.Send("<message to='bob@localhost' type='chat'><body>4</body></message>")
			notification(t, app.expect("notification answered with an error"), "bob@localhost", "drop", 4, "alice@localhost/a", "", false)
			app.fail("")
			// Removed once the answer is in: the next message sends
			// nothing.
			xmpptest.WaitFor(t, wait, func() error {
				alice.Send("<message to='bob@localhost' type='chat'><body>5</body></message>")
				select {
				case iq := <-app.got:
					return fmt.Errorf("still notified: %s", iq)
				case <-time.After(quiet):
					return nil
				}
			})
			alice.Close()
			srv.Stop(t)
			if regs := registrations(t, srv.Config, "bob@localhost"); len(regs) != 0 {
				t.Fatalf("after the error: %+v", regs)
			}
		})
	}
}

// TestAckTimeout: a connected stream-managed client is asked to
// acknowledge each message that matters; one acknowledged in time sends
// nothing, one not acknowledged within [push] ack_timeout (a phone asleep
// behind a half-open connection) sends a notification, and the detach
// that follows does not send it again.
func TestAckTimeout(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Push.AckTimeout = config.Duration{Duration: 300 * time.Millisecond} })
	app := startApp(t, srv)
	alice := login(t, srv, "alice", "a")
	r, _ := smLogin(t, srv, "bob", "phone")
	r.Send("<iq type='set' id='p1'>" + enable("node1", "") + "</iq>")
	if got := r.ReadUntil("id='p1'", wait); !strings.Contains(got, "type='result'") {
		t.Fatalf("enable: %q", got)
	}

	alice.Send("<message to='bob@localhost' type='chat'><body>m0</body></message>")
	got := r.ReadUntil("<r xmlns='urn:xmpp:sm:3'/>", wait)
	if !strings.Contains(got, "m0</body>") || !strings.HasSuffix(got, "</message><r xmlns='urn:xmpp:sm:3'/>") {
		t.Fatalf("m0 and then a request for an acknowledgement: %q", got)
	}
	r.Reset()
	h := strings.Count(got, "<message ") + strings.Count(got, "<presence") + strings.Count(got, "<iq ")
	r.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h))
	select {
	case iq := <-app.got:
		t.Fatalf("notified of an acknowledged message: %s", iq)
	case <-time.After(3 * srv.Config.Push.AckTimeout.Duration):
	}

	alice.Send("<message to='bob@localhost' type='chat'><body>m1</body></message>")
	if got := r.ReadUntil("<r xmlns='urn:xmpp:sm:3'/>", wait); !strings.Contains(got, "m1</body>") {
		t.Fatalf("m1 and then a request for an acknowledgement: %q", got)
	}
	notification(t, app.expect("notification of an unacknowledged message"), "bob@localhost", "node1", 1, "alice@localhost/a", "", false)

	detach(t, srv, r, "bob@localhost/phone")
	app.none("m1 notified again at the detach")
	alice.Send("<message to='bob@localhost' type='chat'><body>m2</body></message>")
	notification(t, app.expect("notification while detached"), "bob@localhost", "node1", 2, "alice@localhost/a", "", false)
}

// TestMaxRegistrations: enabling one more than [push] max_registrations
// removes the oldest registration.
func TestMaxRegistrations(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Push.MaxRegistrations = 2 })
	app := startApp(t, srv)
	bob := login(t, srv, "bob", "phone")
	for _, n := range []string{"n1", "n2", "n3"} {
		bob.ok(enable(n, ""))
	}
	bob.Close()
	alice := login(t, srv, "alice", "a")
	alice.Send("<message to='bob@localhost' type='chat'><body>hi</body></message>")
	var nodes []string
	for range 2 {
		nodes = append(nodes, regexp.MustCompile(`<publish node='([^']+)'`).FindStringSubmatch(app.expect("notification"))[1])
	}
	if got := strings.Join(nodes, " "); got != "n2 n3" && got != "n3 n2" {
		t.Fatalf("notified %q, want n2 and n3", got)
	}
	app.none("a notification to the oldest registration")
}
