package c2s_test

import (
	"fmt"
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
	r := srv.DialTLS(t)
	if got := outcome(plainAuth(t, r, user, password)); got != "success" {
		t.Fatalf("PLAIN: %s", got)
	}
	r.Reset()
	r.Send(srv.Header())
	if got := r.ReadUntil("</stream:features>", wait); !strings.Contains(got, "<sm xmlns='urn:xmpp:sm:3'/>") {
		t.Fatalf("stream management not offered after authentication: %q", got)
	}
	r.Reset()
	r.Send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if got := r.ReadUntil("</iq>", wait); !strings.Contains(got, "type='result'") {
		t.Fatalf("bind: %q", got)
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
// bodies of the messages it receives, waiting for want of them and then a
// little for any more.
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
