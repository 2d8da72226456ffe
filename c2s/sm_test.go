package c2s_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// smClient is a raw client session, bound, speaking stream management by
// hand.
type smClient struct {
	t *testing.T
	*xmpptest.Raw
	pending string // read, not matched yet
	all     string // everything read
}

// stanzas counts the stanzas received so far, for an acknowledgement.
func (c *smClient) stanzas() int {
	return strings.Count(c.all, "<message ") + strings.Count(c.all, "<presence") + strings.Count(c.all, "<iq ")
}

// smLogin logs in on a new connection with PLAIN and binds resource.
func smLogin(t *testing.T, srv *xmpptest.Server, user, password, resource string) *smClient {
	t.Helper()
	c := smAuth(t, srv, user, password)
	c.Send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	c.expect("bind result", regexp.MustCompile(`<iq [^>]*type='result'[^>]*>.*?</iq>`))
	c.pending, c.all = "", ""
	return c
}

// smAuth logs in on a new connection with PLAIN and reads the features of
// the restarted stream, stopping before binding.
func smAuth(t *testing.T, srv *xmpptest.Server, user, password string) *smClient {
	t.Helper()
	r := srv.DialTLS(t)
	if got := outcome(plainAuth(t, r, user, password)); got != "success" {
		t.Fatalf("PLAIN: %s", got)
	}
	r.Reset()
	r.Send(srv.Header())
	if got := r.ReadUntil("</stream:features>", wait); !strings.Contains(got, "<sm xmlns='urn:xmpp:sm:3'/>") || !strings.Contains(got, "<csi xmlns='urn:xmpp:csi:0'/>") {
		t.Fatalf("stream management or client state indication not offered after authentication: %q", got)
	}
	r.Reset()
	return &smClient{t: t, Raw: r}
}

// expect reads until the received text matches re and returns the match;
// what was read up to the end of the match is consumed.
func (c *smClient) expect(what string, re *regexp.Regexp) []string {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 4096)
	for {
		got := c.pending
		if m := re.FindStringSubmatchIndex(got); m != nil {
			sub := make([]string, len(m)/2)
			for i := range sub {
				if m[2*i] >= 0 {
					sub[i] = got[m[2*i]:m[2*i+1]]
				}
			}
			c.pending = got[m[1]:]
			return sub
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not received; got %q", what, got)
		}
		c.Conn.SetReadDeadline(deadline)
		n, err := c.Conn.Read(buf)
		c.pending += string(buf[:n])
		c.all += string(buf[:n])
		if err != nil && n == 0 {
			c.t.Fatalf("%s: %v; got %q", what, err, c.pending)
		}
	}
}

var (
	reEnabled  = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3'[^>]*/>`)
	reResumeID = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([a-z0-9]+)' resume='true' max='(\d+)'/>`)
	reResumed  = regexp.MustCompile(`<resumed xmlns='urn:xmpp:sm:3' h='(\d+)' previd='([a-z0-9]+)'/>`)
	reAck      = regexp.MustCompile(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`)
	reRequest  = regexp.MustCompile(`<r xmlns='urn:xmpp:sm:3'/>`)
	reBody     = regexp.MustCompile(`<body>([^<]*)</body>`)
	reFailedSM = regexp.MustCompile(`<failed xmlns='urn:xmpp:sm:3'[^>]*>(.*?)</failed>`)
)

// bodies returns the message bodies in s, in order.
func bodies(s string) []string {
	var out []string
	for _, m := range reBody.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestStreamManagement(t *testing.T) {
	srv := xmpptest.Start(t)
	srv.AddUser(t, "alice", "pw")

	t.Run("enable, counting and acknowledgements", func(t *testing.T) {
		c := smLogin(t, srv, "alice", "pw", "sm1")
		c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
		c.expect("enabled", reEnabled)
		// Three stanzas handled: two pings and a message to nobody.
		c.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
		c.Send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
		c.Send("<message to='nobody@localhost' type='chat'><body>x</body></message>")
		c.Send("<r xmlns='urn:xmpp:sm:3'/>")
		if h := c.expect("answer to r", reAck)[1]; h != "3" {
			t.Fatalf("h = %s, want 3 (two pings and a message)", h)
		}
		// The server asks after five unacknowledged stanzas: two ping
		// results and an error so far; two more pings make five.
		c.Send("<iq type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p4'><ping xmlns='urn:xmpp:ping'/></iq>")
		c.expect("the server's request", reRequest)
		c.Send("<a xmlns='urn:xmpp:sm:3' h='5'/>")
		c.Send("<r xmlns='urn:xmpp:sm:3'/>")
		if h := c.expect("answer to r", reAck)[1]; h != "5" {
			t.Fatalf("h = %s, want 5", h)
		}
		// Enabling twice is refused.
		c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
		if got := c.expect("second enable", reFailedSM)[1]; !strings.Contains(got, "unexpected-request") {
			t.Fatalf("second enable: %q", got)
		}
	})

	t.Run("an acknowledgement of more than was sent ends the stream", func(t *testing.T) {
		c := smLogin(t, srv, "alice", "pw", "sm2")
		c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
		c.expect("enabled", reEnabled)
		c.Send("<a xmlns='urn:xmpp:sm:3' h='7'/>")
		c.expect("stream error", regexp.MustCompile(`<stream:error><undefined-condition[^>]*/>.*<handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='0'/></stream:error>`))
	})

	t.Run("enable before bind is refused", func(t *testing.T) {
		r := srv.DialTLS(t)
		plainAuth(t, r, "alice", "pw")
		r.Reset()
		r.Send(srv.Header())
		r.ReadUntil("</stream:features>", wait)
		r.Reset()
		r.Send("<enable xmlns='urn:xmpp:sm:3'/>")
		if got := r.ReadUntil("</failed>", wait); !strings.Contains(got, "<unexpected-request") {
			t.Fatalf("enable before bind: %q", got)
		}
	})
}

// TestStreamManagementNothingLost: what a stream-managed client did not
// acknowledge before its connection died reaches it at its next login,
// exactly once; what it acknowledged does not come again.
func TestStreamManagementNothingLost(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})

	b := smLogin(t, srv, "bob", "pw", "phone")
	b.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	b.expect("enabled", reEnabled)
	for i := 1; i <= 4; i++ {
		a.Send("<message to='bob@localhost/phone' type='chat'><body>m%d</body></message>", i)
	}
	for i := 1; i <= 4; i++ {
		b.expect(fmt.Sprintf("m%d", i), regexp.MustCompile(`<body>m`+fmt.Sprint(i)+`</body>`))
	}
	b.Send("<a xmlns='urn:xmpp:sm:3' h='2'/>") // m1 and m2 arrived, m3 and m4 the client never saw
	b.Send("<r xmlns='urn:xmpp:sm:3'/>")
	b.expect("the ack is processed (answer to r)", reAck)
	b.Conn.Close() // no </stream:stream>, no final ack

	c := loginAndCollect(t, srv, bob, "desk", 2)
	if got := strings.Join(c, " "); got != "m3 m4" {
		t.Fatalf("at the next login: %q, want the two unacknowledged (m3 m4), once each", got)
	}
}

// loginAndCollect logs user in with initial presence and returns the
// bodies of the messages it receives, waiting for want of them and then
// for any more the server sends before answering a ping; then it logs
// out.
func loginAndCollect(t *testing.T, srv *xmpptest.Server, user jid.JID, resource string, want int) []string {
	t.Helper()
	var c *xmpptest.Client
	xmpptest.WaitFor(t, wait, func() error {
		var err error
		c, err = srv.TryLogin(t, user, "pw", xmpptest.LoginOptions{Resource: resource})
		return err
	})
	c.Send("<presence/>")
	var got []string
	deadline := time.After(wait)
	for len(got) < want {
		select {
		case e := <-nextElement(c):
			if e.Name.Local == "message" {
				got = append(got, bodies(e.Raw)...)
			}
		case <-deadline:
			t.Fatalf("received %q, want %d messages", got, want)
		}
	}
	for _, e := range c.Sync() {
		if e.Name.Local == "message" {
			got = append(got, bodies(e.Raw)...)
		}
	}
	c.Close()
	xmpptest.WaitFor(t, wait, func() error { // gone from the router too
		if _, ok := srv.Router().SessionOf(c.JID); ok {
			return fmt.Errorf("%s still bound", c.JID)
		}
		return nil
	})
	return got
}

// nextElement reads the client's next element on a channel.
func nextElement(c *xmpptest.Client) <-chan xmpptest.Element {
	ch := make(chan xmpptest.Element, 1)
	go func() { ch <- c.Next(wait) }()
	return ch
}

// TestStreamManagementUnackedBound: a client that never acknowledges is
// closed at max_unacked_stanzas, and every message reaches it later,
// exactly once.
func TestStreamManagementUnackedBound(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.C2S.MaxUnackedStanzas = 10 })
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := smLogin(t, srv, "bob", "pw", "phone")
	b.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	b.expect("enabled", reEnabled)
	for i := 1; i <= 15; i++ {
		a.Send("<message to='bob@localhost/phone' type='chat'><body>m%d</body></message>", i)
	}
	b.expect("closed", regexp.MustCompile(`<stream:error><resource-constraint[^>]*/><text[^>]*>your client does not acknowledge`))
	a.Sync()
	got := loginAndCollect(t, srv, bob, "desk", 15)
	want := make([]string, 15)
	for i := range want {
		want[i] = fmt.Sprintf("m%d", i+1)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("at the next login: %q, want m1…m15 once each, in order", got)
	}
}

// TestStreamManagementOfflineAcked: offline messages handed to a
// stream-managed session stay stored until the client acknowledges them.
func TestStreamManagementOfflineAcked(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	for i := 1; i <= 3; i++ {
		a.Send("<message to='bob@localhost' type='chat'><body>o%d</body></message>", i)
	}
	a.Sync()
	stored := func() int {
		n, err := srv.DB().Offline().Count(t.Context(), "bob@localhost")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := stored(); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}

	// Delivered, not acknowledged, connection lost: still stored.
	b := smLogin(t, srv, "bob", "pw", "phone")
	b.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	b.expect("enabled", reEnabled)
	b.Send("<presence/>")
	b.expect("o3", regexp.MustCompile(`<body>o3</body>`))
	time.Sleep(100 * time.Millisecond) // let a wrong deletion happen if it would
	if n := stored(); n != 3 {
		t.Fatalf("%d stored after delivery without acknowledgement, want 3", n)
	}
	b.Conn.Close()

	// Delivered again and acknowledged: deleted.
	b = smLogin(t, srv, "bob", "pw", "phone")
	b.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	b.expect("enabled", reEnabled)
	b.Send("<presence/>")
	b.expect("o1 again", regexp.MustCompile(`<body>o1</body>`))
	b.expect("o3 again", regexp.MustCompile(`<body>o3</body>`))
	// Acknowledge everything received (the messages and the presence
	// broadcast to bob's own resource).
	b.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", b.stanzas()))
	xmpptest.WaitFor(t, wait, func() error {
		if n := stored(); n != 0 {
			return fmt.Errorf("%d stored after acknowledgement", n)
		}
		return nil
	})
}

// smEnableResume enables resumable stream management on c and returns the
// session's id.
func (c *smClient) enableResume() string {
	c.t.Helper()
	c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	return c.expect("enabled with resume", reResumeID)[1]
}

// TestStreamManagementResume: a connection cut mid-conversation (no
// </stream:stream>, no final ack) and resumed on a new connection: every
// message is delivered exactly once, the session never went offline, and
// both sides' counts carry over.
func TestStreamManagementResume(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})

	b := smLogin(t, srv, "bob", "pw", "phone")
	id := b.enableResume()
	b.Send("<presence/>")
	b.Send("<message to='alice@localhost/a' type='chat'><body>from bob</body></message>")
	a.Expect(wait, "bob's message", func(e xmpptest.Element) bool { return e.Contains("from bob") })
	for i := 1; i <= 3; i++ {
		a.Send("<message to='bob@localhost/phone' type='chat'><body>m%d</body></message>", i)
	}
	b.expect("m3", regexp.MustCompile(`<body>m3</body>`))
	before := b.stanzas()                                              // bob's own presence, m1, m2, m3
	b.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", before-2)) // m2 and m3 "lost in the air"
	b.Send("<r xmlns='urn:xmpp:sm:3'/>")
	b.expect("ack", reAck)
	b.Conn.Close()

	// While bob is away: a message, and bob is still online for alice.
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m4</body></message>")
	a.Send("<presence type='probe' to='bob@localhost'/>")
	a.Sync()

	c := smAuth(t, srv, "bob", "pw")
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='%d' previd='%s'/>", before-2, id))
	m := c.expect("resumed", reResumed)
	if m[1] != "2" || m[2] != id { // bob sent presence and a message
		t.Fatalf("resumed h=%s previd=%s, want h=2 previd=%s", m[1], m[2], id)
	}
	c.expect("m4", regexp.MustCompile(`<body>m4</body>`))
	if got := strings.Join(bodies(c.all), " "); got != "m2 m3 m4" {
		t.Fatalf("after resuming: %q, want m2 m3 m4, once each", got)
	}
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m5</body></message>")
	c.expect("m5 on the new connection", regexp.MustCompile(`<body>m5</body>`))
	// The session's counts carry over: bob's h is now 3.
	c.Send("<presence/>")
	c.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := c.expect("ack", reAck)[1]; h != "3" {
		t.Fatalf("h after resuming = %s, want 3", h)
	}
	for _, e := range a.Sync() {
		if e.Name.Local == "presence" && e.Attr("type") == "unavailable" {
			t.Fatalf("alice saw bob go offline: %s", e.Raw)
		}
	}
}

// TestStreamManagementResumeHalfOpen: a client that resumes while its old
// connection is still open (half-open: the phone moved network) takes the
// session over; the old connection is closed.
func TestStreamManagementResumeHalfOpen(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	old := smLogin(t, srv, "bob", "pw", "phone")
	id := old.enableResume()
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m1</body></message>")
	old.expect("m1", regexp.MustCompile(`<body>m1</body>`))

	c := smAuth(t, srv, "bob", "pw")
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	c.expect("resumed", reResumed)
	c.expect("m1 again (not acknowledged)", regexp.MustCompile(`<body>m1</body>`))
	if got, _ := old.ReadAll(wait); strings.Contains(got, "<body>") {
		t.Fatalf("the old connection got more: %q", got)
	}
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m2</body></message>")
	c.expect("m2", regexp.MustCompile(`<body>m2</body>`))
}

// TestStreamManagementNotResumed: a session not resumed within
// resume_timeout ends: contacts see it go, and its unacknowledged messages
// arrive at the next login exactly once. A resumption after that, or of a
// session closed with </stream:stream>, fails with item-not-found and the
// client may bind instead.
func TestStreamManagementNotResumed(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.ResumeTimeout = config.Duration{Duration: 300 * time.Millisecond}
	})
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})

	b := smLogin(t, srv, "bob", "pw", "phone")
	id := b.enableResume()
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m1</body></message>")
	b.expect("m1", regexp.MustCompile(`<body>m1</body>`))
	b.Conn.Close()
	a.Send("<message to='bob@localhost/phone' type='chat'><body>m2</body></message>")
	a.Sync()
	xmpptest.WaitFor(t, wait, func() error {
		if n := srv.Router().SessionCount(); n != 1 {
			return fmt.Errorf("%d sessions, want alice's alone once bob's expired", n)
		}
		return nil
	})
	c := smAuth(t, srv, "bob", "pw")
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	if got := c.expect("failed", reFailedSM)[1]; !strings.Contains(got, "item-not-found") {
		t.Fatalf("resuming an expired session: %q", got)
	}
	c.Conn.Close()
	if got := strings.Join(loginAndCollect(t, srv, bob, "desk", 2), " "); got != "m1 m2" {
		t.Fatalf("at the next login: %q, want m1 m2 once each", got)
	}

	// Closed on purpose: no resumption.
	d := smLogin(t, srv, "bob", "pw", "tablet")
	id = d.enableResume()
	d.Send("</stream:stream>")
	d.ReadAll(wait)
	e := smAuth(t, srv, "bob", "pw")
	e.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	if got := e.expect("failed", reFailedSM)[1]; !strings.Contains(got, "item-not-found") {
		t.Fatalf("resuming a session closed with </stream:stream>: %q", got)
	}
	// Ended with a stream error by the client: no resumption either.
	h := smLogin(t, srv, "bob", "pw", "fourth")
	id = h.enableResume()
	h.Send("<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
	h.ReadAll(wait)
	k := smAuth(t, srv, "bob", "pw")
	k.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	if got := k.expect("failed", reFailedSM)[1]; !strings.Contains(got, "item-not-found") {
		t.Fatalf("resuming a session the client ended with a stream error: %q", got)
	}
	// Someone else's session cannot be resumed either.
	f := smLogin(t, srv, "bob", "pw", "third")
	id = f.enableResume()
	g := smAuth(t, srv, "alice", "pw")
	g.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	if got := g.expect("failed", reFailedSM)[1]; !strings.Contains(got, "item-not-found") {
		t.Fatalf("alice resuming bob's session: %q", got)
	}
	g.Send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	g.expect("bind after a failed resumption", regexp.MustCompile(`<iq [^>]*type='result'`))
}

// TestClientStateIndication: while bob's client says it is inactive,
// presence updates wait (only the latest from each sender) and chat states
// wait; a message with a body goes at once, after what waited, in order;
// <active/> sends the rest. Stream management counts what was written:
// acknowledging everything received and resuming resends nothing.
func TestClientStateIndication(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := smAuth(t, srv, "bob", "pw")
	b.Send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
	b.expect("bind", regexp.MustCompile(`type='result'[^>]*>.*?</iq>`))
	b.pending, b.all = "", "" // counting starts at enable
	id := b.enableResume()
	b.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	b.Send("<r xmlns='urn:xmpp:sm:3'/>")
	b.expect("inactive processed", reAck)

	for i := 1; i <= 3; i++ {
		a.Send("<presence to='bob@localhost/phone'><status>s%d</status></presence>", i)
	}
	a.Send("<message to='bob@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	a.Sync()
	b.Conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := b.Conn.Read(make([]byte, 1024)); n > 0 {
		t.Fatalf("an inactive client got %d bytes of presence and chat states", n)
	}
	a.Send("<message to='bob@localhost/phone' type='chat'><body>hello</body></message>")
	b.expect("the message", regexp.MustCompile(`<body>hello</body>`))
	got := b.all
	if strings.Contains(got, "<status>s1</status>") || strings.Contains(got, "<status>s2</status>") {
		t.Fatalf("superseded presence delivered: %q", got)
	}
	i3, ic, im := strings.Index(got, "<status>s3</status>"), strings.Index(got, "<composing"), strings.Index(got, "<body>hello")
	if i3 < 0 || ic < 0 || !(i3 < ic && ic < im) {
		t.Fatalf("want the latest presence, the chat state, then the message, in order: %q", got)
	}

	a.Send("<message to='bob@localhost/phone' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
	a.Sync()
	b.Send("<active xmlns='urn:xmpp:csi:0'/>")
	b.expect("the held chat state, on active", regexp.MustCompile(`<paused`))
	a.Send("<presence to='bob@localhost/phone'><status>s4</status></presence>")
	b.expect("presence at once while active", regexp.MustCompile(`<status>s4</status>`))

	// Acknowledge all that arrived, lose the connection, resume: nothing
	// is sent again, so nothing held or superseded was counted.
	h := b.stanzas()
	b.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h))
	b.Send("<r xmlns='urn:xmpp:sm:3'/>")
	b.expect("ack", reAck)
	b.Conn.Close()
	c := smAuth(t, srv, "bob", "pw")
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='%d' previd='%s'/>", h, id))
	c.expect("resumed", reResumed)
	a.Send("<message to='bob@localhost/phone' type='chat'><body>after</body></message>")
	c.expect("after", regexp.MustCompile(`<body>after</body>`))
	if n := c.stanzas(); n != 1 {
		t.Fatalf("after resuming with everything acknowledged: %d stanzas (%q), want only the new message", n, c.all)
	}
}

// TestStreamManagementGracefulClose: a client that closes its stream with
// stanzas unacknowledged does not get them again on that stream; they
// wait for its next login, once.
func TestStreamManagementGracefulClose(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	for round := range 5 { // the settling races with the close: try it a few times
		b := smLogin(t, srv, "bob", "pw", "phone")
		b.enableResume()
		b.Send("<presence/>")
		a.Send("<message to='bob@localhost/phone' type='chat'><body>r%d</body></message>", round)
		b.expect("the message", regexp.MustCompile(fmt.Sprintf(`<body>r%d</body>`, round)))
		b.Send("</stream:stream>")
		rest, _ := b.ReadAll(wait)
		if got := bodies(b.all + rest); len(got) != 1 {
			t.Fatalf("round %d: the closing stream carried %q, want the message once", round, got)
		}
		if got := strings.Join(loginAndCollect(t, srv, bob, "desk", 1), " "); got != fmt.Sprintf("r%d", round) {
			t.Fatalf("round %d: at the next login: %q, want the unacknowledged message once", round, got)
		}
	}
}

// TestStreamManagementResumeAfterReset: the connection is reset (RST)
// while messages are being written to it, so the writer's failure and the
// read loop's race to detach the session; resuming gets every message
// once, in order.
func TestStreamManagementResumeAfterReset(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	for round := range 5 {
		b := smLogin(t, srv, "bob", "pw", "phone")
		id := b.enableResume()
		if tc, ok := b.Conn.(*tls.Conn); ok {
			tc.NetConn().(*net.TCPConn).SetLinger(0)
		}
		b.Conn.Close() // RST
		var want []string
		for i := range 50 {
			body := fmt.Sprintf("r%d-%d", round, i)
			want = append(want, body)
			a.Send("<message to='bob@localhost/phone' type='chat'><body>%s</body></message>", body)
		}
		a.Sync()
		c := smAuth(t, srv, "bob", "pw")
		c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
		c.expect("resumed", reResumed)
		c.expect("the last message", regexp.MustCompile(want[len(want)-1]+`</body>`))
		if got := strings.Join(bodies(c.all), " "); got != strings.Join(want, " ") {
			t.Fatalf("round %d: after resuming: %q\nwant %q", round, got, want)
		}
		c.Send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.stanzas()))
		c.Send("</stream:stream>")
		c.ReadAll(wait)
	}
}

// TestDiscoListsMobileFeatures: the server's disco#info lists stream
// management, client state indication, carbons and blocking; an account's
// lists the services it has, carbons and blocking.
func TestDiscoListsMobileFeatures(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	for _, tc := range []struct {
		to   string
		want []string
	}{
		{"localhost", []string{"urn:xmpp:sm:3", "urn:xmpp:csi:0", "urn:xmpp:carbons:2", "urn:xmpp:blocking"}},
		{"bob@localhost", []string{"urn:xmpp:carbons:2", "urn:xmpp:blocking"}},
	} {
		a.Send("<iq type='get' id='d-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", tc.to, tc.to)
		r := a.Expect(wait, "disco#info of "+tc.to, func(e xmpptest.Element) bool { return e.Attr("id") == "d-"+tc.to })
		for _, f := range tc.want {
			if !r.Contains("<feature var='"+f+"'") && !r.Contains(`<feature var="`+f+`"`) {
				t.Errorf("%s's disco#info lacks %s: %s", tc.to, f, r.Raw)
			}
		}
	}
}

// TestStreamManagementResumeOnOtherListener: a session enabled on the
// STARTTLS listener is resumed on the direct TLS one (XEP-0368): any
// listener carries any session.
func TestStreamManagementResumeOnOtherListener(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := smLogin(t, srv, "bob", "pw", "phone")
	id := b.enableResume()
	b.Conn.Close()
	a.Send("<message to='bob@localhost/phone' type='chat'><body>while away</body></message>")
	a.Sync()

	c := &smClient{t: t, Raw: srv.DialDirectTLS(t)}
	c.Send(srv.Header())
	c.expect("features", regexp.MustCompile(`</stream:features>`))
	if got := outcome(plainAuth(t, c.Raw, "bob", "pw")); got != "success" {
		t.Fatalf("PLAIN on direct TLS: %s", got)
	}
	c.pending = ""
	c.Send(srv.Header())
	c.expect("features after SASL", regexp.MustCompile(`<sm xmlns='urn:xmpp:sm:3'/>.*</stream:features>`))
	c.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id))
	c.expect("resumed on direct TLS", reResumed)
	c.expect("the message", regexp.MustCompile(`<body>while away</body>`))
}
