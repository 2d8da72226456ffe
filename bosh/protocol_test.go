package bosh_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

func ping(id string) string {
	return "<iq xmlns='jabber:client' type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
}

func isTerminal(r resp, status int, cond string) bool {
	return r.status == status && r.attrs["type"] == "terminate" && r.attrs["condition"] == cond
}

// TestRID: requests are taken in rid order, a repeated rid is answered
// with the same response, and a rid outside the window, a repeated rid
// whose response is gone, or an unknown sid end with item-not-found.
func TestRID(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "bob", "pw")
	url := boshURL(srv)

	t.Run("retransmission", func(t *testing.T) {
		b := create(t, url, "")
		b.login("bob", "pw", "r1")
		rid := b.rid + 1
		first := b.raw(rid, "", ping("p1"))
		if !strings.Contains(first.raw, "id='p1'") {
			t.Fatalf("ping: %s", first)
		}
		if again := b.raw(rid, "", ping("p1")); again.raw != first.raw {
			t.Fatalf("repeated rid: %s, want the same response %s", again, first)
		}
		// Beyond the responses kept (requests = 2), it is gone.
		b.raw(rid+1, "", ping("p2"))
		b.raw(rid+2, "", ping("p3"))
		if r := b.raw(rid, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
			t.Fatalf("repeated old rid: %s", r)
		}
		if r := b.raw(rid+3, "", ping("p4")); !isTerminal(r, http.StatusOK, "item-not-found") {
			t.Fatalf("session after item-not-found: %s", r)
		}
	})

	t.Run("order", func(t *testing.T) {
		b := create(t, url, "")
		b.login("bob", "pw", "r2")
		rid := b.rid
		// rid+2 first: it waits for rid+1.
		later := make(chan resp, 1)
		go func() { later <- b.raw(rid+2, "", ping("second")) }()
		time.Sleep(100 * time.Millisecond) // let it arrive first
		r1 := b.raw(rid+1, "", ping("first"))
		r2 := <-later
		all := strings.Join(append(r1.children, r2.children...), "")
		i, j := strings.Index(all, "id='first'"), strings.Index(all, "id='second'")
		if i < 0 || j < 0 || j < i {
			t.Fatalf("answers out of order or missing:\n%s\n%s", r1, r2)
		}
	})

	t.Run("outside window", func(t *testing.T) {
		b := create(t, url, "")
		if r := b.raw(b.rid+3, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
			t.Fatalf("rid beyond the window: %s", r)
		}
		if r := b.raw(b.rid+1, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
			t.Fatalf("after: %s", r)
		}
	})

	t.Run("legacy client gets 404", func(t *testing.T) {
		r := post(t, url, fmt.Sprintf("<body xmlns='%s' rid='10' to='localhost' wait='5' hold='1'/>", nsHTTPBind), nil)
		if r.attrs["sid"] == "" {
			t.Fatalf("creation: %s", r)
		}
		r = post(t, url, fmt.Sprintf("<body xmlns='%s' sid='%s' rid='50'/>", nsHTTPBind, r.attrs["sid"]), nil)
		if !isTerminal(r, http.StatusNotFound, "item-not-found") {
			t.Fatalf("rid beyond the window, legacy client: %s", r)
		}
	})

	t.Run("unknown sid", func(t *testing.T) {
		r := post(t, url, fmt.Sprintf("<body xmlns='%s' sid='nosuchsid' rid='5'/>", nsHTTPBind), nil)
		if !isTerminal(r, http.StatusOK, "item-not-found") {
			t.Fatalf("unknown sid: %s", r)
		}
	})
}

// TestHoldWait: a held request is answered empty after wait, and one
// beyond hold releases the oldest at once.
func TestHoldWait(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	b := create(t, boshURL(srv), "wait='2'")
	if b.created.attrs["wait"] != "2" {
		t.Fatalf("wait: %s", b.created)
	}
	start := time.Now()
	r := b.raw(b.rid+1, "", "")
	if d := time.Since(start); r.status != http.StatusOK || len(r.children) != 0 || r.attrs["type"] != "" || d < 1900*time.Millisecond || d > 4*time.Second {
		t.Fatalf("held request: %s after %v, want empty after 2s", r, d)
	}
	first := make(chan time.Duration, 1)
	start = time.Now()
	go func() {
		r := b.raw(b.rid+2, "", "")
		if len(r.children) != 0 || r.status != http.StatusOK {
			t.Errorf("released request: %s", r)
		}
		first <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond) // the first is held
	second := make(chan resp, 1)
	go func() { second <- b.raw(b.rid+3, "", "") }()
	if d := <-first; d > time.Second {
		t.Fatalf("the held request was answered after %v, want at once when a second came (hold 1)", d)
	}
	if r := <-second; r.status != http.StatusOK || r.attrs["type"] != "" {
		t.Fatalf("second: %s", r)
	}
}

// TestInactivity: a session without requests for max_inactivity loses
// its transport, as a dropped TCP connection: later requests get
// item-not-found, and with stream management the session is resumed over
// a new BOSH session, with what arrived meanwhile.
func TestInactivity(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.BOSH.MaxInactivity = config.Duration{Duration: time.Second}
	})
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	url := boshURL(srv)

	b := create(t, url, "wait='1'")
	if b.created.attrs["inactivity"] != "1" {
		t.Fatalf("inactivity: %s", b.created)
	}
	b.login("bob", "pw", "web")
	b.send("", "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	id := regexp.MustCompile(`id='([A-Za-z0-9_-]+)'`).FindStringSubmatch(b.expect("enabled", "<enabled "))
	if id == nil {
		t.Fatalf("enabled: no id in %q", b.seen)
	}
	b.send("", "<presence xmlns='jabber:client'/>")
	a.Send("<message to='bob@localhost/web' type='chat'><body>m1</body></message>")
	b.expect("m1", "<body>m1</body>")
	// Wait for the last answers, then go silent.
	for b.inflight > 0 {
		<-b.resps
		b.inflight--
	}
	time.Sleep(1500 * time.Millisecond) // the inactivity is what is tested
	if r := b.raw(b.rid+1, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
		t.Fatalf("request after inactivity: %s", r)
	}
	a.Send("<message to='bob@localhost/web' type='chat'><body>m2</body></message>")
	a.Sync()

	c := create(t, url, "")
	c.auth("bob", "pw")
	c.send("", fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='1' previd='%s'/>", id[1]))
	if r := c.expect("resumed", "<resumed "); !strings.Contains(r, "previd='"+id[1]+"'") {
		t.Fatalf("resumed: %q", r)
	}
	c.expect("m2", "<body>m2</body>")
}

// TestPause: a pause up to max_pause lets the session go without
// requests for longer than its inactivity, once; a longer pause is a
// policy violation.
func TestPause(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.BOSH.MaxInactivity = config.Duration{Duration: time.Second}
		c.BOSH.MaxPause = config.Duration{Duration: 3 * time.Second}
	})
	url := boshURL(srv)
	b := create(t, url, "wait='1'")
	if b.created.attrs["maxpause"] != "3" {
		t.Fatalf("maxpause: %s", b.created)
	}
	start := time.Now()
	if r := b.raw(b.rid+1, "pause='3'", ""); r.status != http.StatusOK || r.attrs["type"] != "" || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("pause: %s after %v, want an answer at once", r, time.Since(start))
	}
	time.Sleep(2 * time.Second) // longer than the inactivity, within the pause
	if r := b.raw(b.rid+2, "", ""); r.status != http.StatusOK || r.attrs["type"] != "" {
		t.Fatalf("after the pause: %s", r)
	}
	time.Sleep(2 * time.Second) // the pause was once
	if r := b.raw(b.rid+3, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
		t.Fatalf("after inactivity: %s", r)
	}

	b = create(t, url, "")
	if r := b.raw(b.rid+1, "pause='60'", ""); !isTerminal(r, http.StatusOK, "policy-violation") {
		t.Fatalf("pause beyond max_pause: %s", r)
	}
}

// TestStreamErrorInTerminate: when c2s ends the stream with an error
// (here a conflict: the same resource logs in over TCP), the response is a
// terminal body with remote-stream-error and the stream error inside.
func TestStreamErrorInTerminate(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	bob := srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "same")
	srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: "same"})
	r := b.expectTerminate()
	if r.attrs["condition"] != "remote-stream-error" || !strings.Contains(r.raw, "<stream:error") || !strings.Contains(r.raw, "<conflict ") {
		t.Fatalf("terminal body %s, want remote-stream-error with <conflict/>", r)
	}
	if r := b.raw(b.rid+1, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
		t.Fatalf("after the end: %s", r)
	}
}

// TestStanzaLimit: a stanza over max_stanza_bytes ends the stream with
// <policy-violation/> as over TCP; a request beyond the limit and the
// framing allowance is refused with 413 and ends its session.
func TestStanzaLimit(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) { c.C2S.MaxStanzaBytes = 4096 })
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "web")
	b.send("", "<message xmlns='jabber:client' to='bob@localhost'><body>"+strings.Repeat("x", 8000)+"</body></message>")
	r := b.expectTerminate()
	if r.attrs["condition"] != "remote-stream-error" || !strings.Contains(r.raw, "<policy-violation ") {
		t.Fatalf("terminal body %s, want remote-stream-error with <policy-violation/>", r)
	}

	b = create(t, boshURL(srv), "")
	if r := b.raw(b.rid+1, "", "<message xmlns='jabber:client'><body>"+strings.Repeat("x", 40000)+"</body></message>"); !isTerminal(r, http.StatusRequestEntityTooLarge, "policy-violation") {
		t.Fatalf("oversized request: %s", r)
	}
	if r := b.raw(b.rid+1, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
		t.Fatalf("the session after an oversized request: %s", r)
	}
}

// TestBadRequests: what is not a BOSH request is refused.
func TestBadRequests(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	url := boshURL(srv)
	for _, tc := range []struct{ name, body string }{
		{"not XML", "hello"},
		{"not well-formed", "<body xmlns='" + nsHTTPBind + "' rid='1'><message></body>"},
		{"other namespace", "<body xmlns='jabber:client' rid='1' to='localhost'/>"},
		{"other element", "<bod xmlns='" + nsHTTPBind + "' rid='1' to='localhost'/>"},
		{"no rid", "<body xmlns='" + nsHTTPBind + "' to='localhost'/>"},
		{"bad wait", "<body xmlns='" + nsHTTPBind + "' rid='1' wait='soon'/>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := post(t, url, tc.body, nil); !isTerminal(r, http.StatusBadRequest, "bad-request") {
				t.Fatalf("%s", r)
			}
		})
	}
	res, err := insecureHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s", res.Status)
	}
}

// TestPolling: a client holding no request that polls empty faster than
// polling allows is cut off with policy-violation.
func TestPolling(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	b := create(t, boshURL(srv), "hold='0'")
	if b.created.attrs["hold"] != "0" || b.created.attrs["requests"] != "1" || len(b.created.children) == 0 {
		t.Fatalf("creation: %s", b.created)
	}
	start := time.Now()
	if r := b.raw(b.rid+1, "", ""); r.status != http.StatusOK || r.attrs["type"] != "" || time.Since(start) > time.Second {
		t.Fatalf("poll: %s after %v, want an empty answer at once", r, time.Since(start))
	}
	if r := b.raw(b.rid+2, "", ""); !isTerminal(r, http.StatusOK, "policy-violation") {
		t.Fatalf("second poll at once: %s", r)
	}
}

// TestNamespaces: prefixes declared on <body/> do not upset c2s, and a
// child using one gets its declaration.
func TestNamespaces(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "web")
	r := b.raw(b.rid+1, "xmlns:xmpp='urn:xmpp:xbosh' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:xmpp:ping'",
		"<iq type='get' id='ns1' to='localhost'><p:ping/></iq>")
	if len(r.children) == 0 || !strings.Contains(r.children[0], "id='ns1'") || !strings.Contains(r.children[0], "type='result'") {
		t.Fatalf("ping with a prefix declared on <body/>: %s", r)
	}
}

// TestCORS: browsers' preflight and requests from allowed origins get
// CORS headers; other origins do not, and their requests are refused.
func TestCORS(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.HTTP.AllowedOrigins = []string{"https://chat.example.com"}
	})
	url := boshURL(srv)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		res, err := insecureHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := preflight("https://chat.example.com")
	if res.StatusCode/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("preflight from an allowed origin: %s %v", res.Status, res.Header)
	}
	if res := preflight("https://evil.example.net"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %v", res.Header)
	}
	create := fmt.Sprintf("<body xmlns='%s' rid='7' to='localhost' ver='1.11' wait='5' hold='1'/>", nsHTTPBind)
	r := post(t, url, create, http.Header{"Origin": {"https://chat.example.com"}})
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" || r.attrs["sid"] == "" {
		t.Fatalf("request from an allowed origin: %s %v", r, r.header)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(create))
	req.Header.Set("Origin", "https://evil.example.net")
	res, err := insecureHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("request from another origin: %s %v", res.Status, res.Header)
	}
}

// TestDisabled: with bosh.enabled false there is no /http-bind and
// host-meta does not list it.
func TestDisabled(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) { c.BOSH.Enabled = false })
	res, err := insecureHTTP.Post(boshURL(srv), "text/xml", strings.NewReader("<body/>"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("/http-bind: %s", res.Status)
	}
	res, err = insecureHTTP.Get("https://" + srv.HTTPS + "/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || !strings.Contains(string(b), "alt-connections:websocket") || strings.Contains(string(b), "xbosh") {
		t.Fatalf("host-meta.json without BOSH: %s %v", b, err)
	}
}

// TestHostMetaLink: host-meta lists the BOSH URL, in XRD and JRD.
func TestHostMetaLink(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) { c.HTTP.PublicURL = "https://xmpp.example.com" })
	for path, want := range map[string]string{
		"/.well-known/host-meta":      "<Link rel='urn:xmpp:alt-connections:xbosh' href='https://xmpp.example.com/http-bind'/>",
		"/.well-known/host-meta.json": `{"href":"https://xmpp.example.com/http-bind","rel":"urn:xmpp:alt-connections:xbosh"}`,
	} {
		res, err := insecureHTTP.Get("https://" + srv.HTTPS + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Fatalf("%s:\n%s\nwant %s", path, b, want)
		}
	}
}

// TestAcks: with ack='1' at creation, a response to a request held while
// a later one arrived acknowledges the later rid (XEP-0124 §9.1).
func TestAcks(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	b := create(t, boshURL(srv), "ack='1' wait='3'")
	if b.created.attrs["ack"] != fmt.Sprint(b.rid) {
		t.Fatalf("creation ack: %s, want %d", b.created, b.rid)
	}
	held := make(chan resp, 1)
	go func() { held <- b.raw(b.rid+1, "", "") }()
	time.Sleep(200 * time.Millisecond) // rid+1 is held
	later := make(chan resp, 1)
	go func() { later <- b.raw(b.rid+2, "", "") }()
	if r := <-held; r.attrs["ack"] != fmt.Sprint(b.rid+2) {
		t.Fatalf("response to rid+1: %s, want ack='%d'", r, b.rid+2)
	}
	if r := <-later; r.attrs["ack"] != "" {
		t.Fatalf("response to the last rid: %s, want no ack", r)
	}
	// Without ack='1', no acks.
	c := create(t, boshURL(srv), "")
	if c.created.attrs["ack"] != "" {
		t.Fatalf("creation without ack='1': %s", c.created)
	}
}

// TestRepeatWhileHeld: a request sent again while the first copy is held
// takes its place: the first copy is answered empty at once, the second
// gets what comes.
func TestRepeatWhileHeld(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "wait='3'")
	b.login("bob", "pw", "web")
	for b.inflight > 0 {
		<-b.resps
		b.inflight--
	}
	rid := b.rid + 1
	first := make(chan resp, 1)
	go func() { first <- b.raw(rid, "", "") }()
	time.Sleep(200 * time.Millisecond) // held
	second := make(chan resp, 1)
	go func() { second <- b.raw(rid, "", "") }()
	if r := <-first; r.status != http.StatusOK || len(r.children) != 0 || r.attrs["type"] != "" {
		t.Fatalf("first copy: %s", r)
	}
	if r := b.raw(rid+1, "", ping("after")); r.attrs["type"] != "" {
		t.Fatalf("next request: %s", r)
	}
	r := <-second
	got := strings.Join(r.children, "")
	if r2 := b.raw(rid+1, "", ""); !strings.Contains(got+strings.Join(r2.children, ""), "id='after'") {
		t.Fatalf("the ping's answer reached neither the second copy (%s) nor its successor (%s)", r, r2)
	}
}

// TestShutdown: a request held when the server shuts down is answered at
// once with the session's end: remote-stream-error and
// <system-shutdown/>.
func TestShutdown(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "web")
	for b.inflight > 0 {
		<-b.resps
		b.inflight--
	}
	held := make(chan resp, 1)
	go func() { held <- b.raw(b.rid+1, "", "") }()
	time.Sleep(200 * time.Millisecond) // held
	start := time.Now()
	srv.Stop(t)
	select {
	case r := <-held:
		if r.attrs["type"] != "terminate" || r.attrs["condition"] != "remote-stream-error" || !strings.Contains(r.raw, "<system-shutdown ") {
			t.Fatalf("held request at shutdown: %s", r)
		}
	case <-time.After(wait):
		t.Fatal("held request not answered at shutdown")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}

// TestSlowConsumer: a client that stops fetching while stanzas pile up
// is treated as a slow TCP reader: the writes wait for room, then c2s
// drops the connection (here by its write timeout), and the client's next
// request gets what was written and a terminal body (undefined-condition:
// the stream was not ended).
func TestSlowConsumer(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.C2S.MaxStanzaBytes = 4096 // 32 KiB of output may wait
		c.C2S.WriteTimeout = config.Duration{Duration: time.Second}
	})
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "web")
	for b.inflight > 0 {
		<-b.resps
		b.inflight--
	}
	text := strings.Repeat("x", 2000)
	for i := range 40 {
		a.Send("<message to='bob@localhost/web' type='chat' id='m%d'><body>%s</body></message>", i, text)
	}
	a.Sync()
	time.Sleep(2 * time.Second) // the write timeout passes
	r := b.raw(b.rid+1, "", "")
	if r.attrs["type"] != "terminate" || r.attrs["condition"] != "undefined-condition" || strings.Count(r.raw, "<message ") >= 40 {
		t.Fatalf("after the write timeout: %d messages, %.300s", strings.Count(r.raw, "<message "), r.raw)
	}
	t.Logf("terminal body with %d of the 40 messages, condition %q", strings.Count(r.raw, "<message "), r.attrs["condition"])
}

// TestReport: a client acknowledging responses (ack='1' at creation)
// that acknowledges less than was answered is told at once which
// response it lacks (report, time: XEP-0124 §9.2), gets it again by
// repeating the rid, and responses it acknowledged are let go.
func TestReport(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "ack='1' wait='5'")
	b.login("bob", "pw", "web")
	for b.inflight > 0 {
		<-b.resps
		b.inflight--
	}
	rid := b.rid
	lost := b.raw(rid+1, "", ping("lost"))
	if !strings.Contains(lost.raw, "id='lost'") {
		t.Fatalf("ping: %s", lost)
	}
	start := time.Now()
	r := b.raw(rid+2, fmt.Sprintf("ack='%d'", rid), "")
	if r.attrs["report"] != fmt.Sprint(rid+1) || r.attrs["time"] == "" || time.Since(start) > time.Second {
		t.Fatalf("request acknowledging %d after %d was answered: %s after %v, want report='%d' at once", rid, rid+1, r, time.Since(start), rid+1)
	}
	if again := b.raw(rid+1, "", ping("lost")); again.raw != lost.raw {
		t.Fatalf("repeated rid: %s, want %s", again, lost)
	}
	// Acknowledging everything (no ack): the kept responses go.
	if r := b.raw(rid+3, "", ping("p3")); r.attrs["report"] != "" || !strings.Contains(r.raw, "id='p3'") {
		t.Fatalf("next: %s", r)
	}
	if r := b.raw(rid+1, "", ""); !isTerminal(r, http.StatusOK, "item-not-found") {
		t.Fatalf("repeated rid after its acknowledgement: %s", r)
	}
}

// TestBacklog: a client that sends faster than c2s reads (here its read
// rate is 2 KB/s) cannot make the server queue its input without bound:
// with hold=1 each request frees the window at once, so past a window's
// worth of the largest requests the session ends with policy-violation.
func TestBacklog(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.C2S.MaxStanzaBytes = 4096
		c.C2S.ReadRate = 2048
	})
	srv.AddUser(t, "bob", "pw")
	b := create(t, boshURL(srv), "")
	b.login("bob", "pw", "web")
	stanza := "<message xmlns='jabber:client' to='bob@localhost/web' type='chat'><body>" + strings.Repeat("x", 3900) + "</body></message>"
	// A window is (1+1)×(4,096+16,384) bytes: 12 requests of ~4 KB at
	// the rate c2s may read (2 KB/s) take 24 s to drain, and are sent in
	// well under one.
	var last resp
	for i := range 12 {
		last = b.raw(b.rid+int64(i)+1, "", stanza+stanza+stanza+stanza+stanza)
		if last.attrs["type"] == "terminate" {
			break
		}
	}
	if !isTerminal(last, http.StatusOK, "policy-violation") {
		t.Fatalf("a client far ahead of its read rate: last answer %s, want policy-violation", last)
	}
}
