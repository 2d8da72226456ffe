package offline_test

import (
	"encoding/xml"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 5 * time.Second

// received is a message as the recipient's client parses it.
type received struct {
	From  string `xml:"from,attr"`
	To    string `xml:"to,attr"`
	Type  string `xml:"type,attr"`
	ID    string `xml:"id,attr"`
	Body  string `xml:"body"`
	Delay []struct {
		From  string `xml:"from,attr"`
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
}

func parse(t *testing.T, e xmpptest.Element) received {
	t.Helper()
	var m received
	if err := xml.Unmarshal([]byte(e.Raw), &m); err != nil {
		t.Fatalf("message %q: %v", e.Raw, err)
	}
	return m
}

func isMessage(e xmpptest.Element) bool { return e.Name.Local == "message" }

// env is a server with alice (online, available) and bob (offline).
type env struct {
	srv         *xmpptest.Server
	alice       *xmpptest.Client
	aliceJ, bob jid.JID
}

func newEnv(t *testing.T, opts ...xmpptest.Option) *env {
	t.Helper()
	srv := xmpptest.Start(t, opts...)
	e := &env{srv: srv, aliceJ: srv.AddUser(t, "alice", "pw"), bob: srv.AddUser(t, "bob", "pw")}
	e.alice = srv.Login(t, e.aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
	e.alice.Send("<presence/>")
	e.alice.Sync()
	return e
}

// send has alice send the messages, then waits until the server has
// routed (and so stored) them, and returns what alice got meanwhile.
func (e *env) send(stanzas ...string) []xmpptest.Element {
	for _, s := range stanzas {
		e.alice.Send("%s", s)
	}
	return e.alice.Sync()
}

// stored is the number of messages kept for bob.
func (e *env) stored(t *testing.T) int {
	t.Helper()
	n, err := e.srv.DB().Offline().Count(t.Context(), e.bob.String())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// bobOnline logs bob in with resource res and sends initial presence with
// priority prio.
func (e *env) bobOnline(t *testing.T, res string, prio int) *xmpptest.Client {
	t.Helper()
	c := e.srv.Login(t, e.bob, "pw", xmpptest.LoginOptions{Resource: res})
	c.Send("<presence><priority>%d</priority></presence>", prio)
	return c
}

// expectMessages waits for n messages on c and returns them in order.
func expectMessages(t *testing.T, c *xmpptest.Client, n int) []received {
	t.Helper()
	var out []received
	for len(out) < n {
		out = append(out, parse(t, c.Expect(wait, fmt.Sprintf("message %d of %d", len(out)+1, n), isMessage)))
	}
	return out
}

func chat(id, body string) string {
	return fmt.Sprintf("<message to='bob@localhost' type='chat' id='%s'><body>%s</body></message>", id, body)
}

// TestDeliveredAtLogin: a message to an offline user is kept, delivered
// once at login with a XEP-0203 delay from the domain stamped when it was
// stored, and then gone; on both storage engines.
func TestDeliveredAtLogin(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			var opts []xmpptest.Option
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			e := newEnv(t, opts...)
			const body = `Hello Bob <b>&amp;</b> & 'quoted' — café ✓`
			before := time.Now().Truncate(time.Millisecond)
			e.alice.Send("<message to='bob@localhost' type='chat' id='m1'><body>%s</body></message>",
				strings.NewReplacer("&", "&amp;", "<", "&lt;").Replace(body))
			if got := e.alice.Sync(); len(got) != 0 {
				t.Fatalf("alice got %q, want nothing (the message is stored, not refused)", got[0].Raw)
			}
			after := time.Now()
			if n := e.stored(t); n != 1 {
				t.Fatalf("%d messages stored for bob, want 1", n)
			}

			bob := e.bobOnline(t, "b", 0)
			m := expectMessages(t, bob, 1)[0]
			if m.Body != body || m.From != "alice@localhost/a" || m.Type != "chat" || m.ID != "m1" {
				t.Errorf("bob got %+v, want alice's chat m1 with body %q", m, body)
			}
			if len(m.Delay) != 1 {
				t.Fatalf("bob's message has %d <delay/>, want 1", len(m.Delay))
			}
			d := m.Delay[0]
			if d.From != "localhost" {
				t.Errorf("delay from %q, want the domain localhost", d.From)
			}
			stamp, err := time.Parse(time.RFC3339Nano, d.Stamp)
			if err != nil || !strings.HasSuffix(d.Stamp, "Z") {
				t.Fatalf("delay stamp %q: want XEP-0082 UTC with Z (%v)", d.Stamp, err)
			}
			if stamp.Before(before) || stamp.After(after) {
				t.Errorf("delay stamp %s not within the time the message was sent: %s .. %s", stamp, before, after)
			}
			bob.ExpectNone(300*time.Millisecond, "second delivery", isMessage)
			xmpptest.WaitFor(t, wait, func() error {
				if n := e.stored(t); n != 0 {
					return fmt.Errorf("%d messages still stored after delivery", n)
				}
				return nil
			})

			// Once delivered, gone: the next login gets nothing.
			bob.Close()
			bob = e.bobOnline(t, "b2", 0)
			bob.ExpectNone(300*time.Millisecond, "message at the second login", isMessage)
		})
	}
}

// TestOrderKept: many messages arrive in the order they were sent, each
// once, across several batches.
func TestOrderKept(t *testing.T) {
	cases := []struct {
		name string
		opts []xmpptest.Option
	}{
		{"default queue", nil},
		// A send queue of 8 stanzas: batches of 4, so 50 messages need
		// 13 of them, and the queue must never overflow.
		{"small send queue", []xmpptest.Option{func(c *config.Config) { c.C2S.SendQueueStanzas = 8 }}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			const n = 50
			var msgs []string
			for i := range n {
				msgs = append(msgs, chat(fmt.Sprint(i), fmt.Sprintf("message %d", i)))
			}
			if got := e.send(msgs...); len(got) != 0 {
				t.Fatalf("alice got %q, want nothing", got[0].Raw)
			}
			bob := e.bobOnline(t, "b", 0)
			for i, m := range expectMessages(t, bob, n) {
				if want := fmt.Sprintf("message %d", i); m.Body != want || len(m.Delay) != 1 {
					t.Fatalf("message %d: body %q with %d delays, want %q with 1", i, m.Body, len(m.Delay), want)
				}
			}
			bob.ExpectNone(300*time.Millisecond, "a message delivered twice", isMessage)
			if err := bob.Err(); err != nil {
				t.Fatalf("bob's stream ended: %v", err)
			}
		})
	}
}

// TestLimit: past max_messages the sender gets service-unavailable and
// nothing more is stored.
func TestLimit(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Offline.MaxMessages = 3 })
	if got := e.send(chat("1", "one"), chat("2", "two"), chat("3", "three")); len(got) != 0 {
		t.Fatalf("alice got %q within the limit", got[0].Raw)
	}
	got := e.send(chat("4", "four"))
	if len(got) != 1 || got[0].Attr("type") != "error" || got[0].Attr("id") != "4" ||
		!strings.Contains(got[0].Inner, "service-unavailable") || got[0].Attr("from") != "bob@localhost" {
		t.Fatalf("alice got %q for the 4th message, want a service-unavailable error from bob@localhost", got)
	}
	if n := e.stored(t); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}
	bob := e.bobOnline(t, "b", 0)
	var bodies []string
	for _, m := range expectMessages(t, bob, 3) {
		bodies = append(bodies, m.Body)
	}
	if strings.Join(bodies, " ") != "one two three" {
		t.Errorf("bob got %q, want one two three", bodies)
	}
	bob.ExpectNone(300*time.Millisecond, "the refused message", isMessage)
}

// TestByteLimit: a message that would take the user past max_bytes gets
// the same service-unavailable as one past max_messages and is not
// stored, while a smaller one that still fits is; on both storage engines.
func TestByteLimit(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			opts := []xmpptest.Option{func(c *config.Config) { c.Offline.MaxBytes = 3000 }}
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			e := newEnv(t, opts...)
			// Each big one is stored as about 1,290 bytes: two fit in
			// 3,000, a third does not, a small one after them does.
			big := strings.Repeat("é", 600) // 1,200 bytes
			if got := e.send(chat("1", big), chat("2", big)); len(got) != 0 {
				t.Fatalf("alice got %q within the limit", got[0].Raw)
			}
			got := e.send(chat("3", big))
			if len(got) != 1 || got[0].Attr("type") != "error" || got[0].Attr("id") != "3" ||
				!strings.Contains(got[0].Inner, "service-unavailable") || got[0].Attr("from") != "bob@localhost" {
				t.Fatalf("alice got %q for the message past max_bytes, want a service-unavailable error from bob@localhost", got)
			}
			if got := e.send(chat("4", "small")); len(got) != 0 {
				t.Fatalf("alice got %q for a small message that fits", got[0].Raw)
			}
			if n := e.stored(t); n != 3 {
				t.Fatalf("%d stored, want 3", n)
			}
			bob := e.bobOnline(t, "b", 0)
			var ids []string
			for _, m := range expectMessages(t, bob, 3) {
				ids = append(ids, m.ID)
			}
			if strings.Join(ids, " ") != "1 2 4" {
				t.Errorf("bob got messages %q, want 1 2 4", ids)
			}
			bob.ExpectNone(300*time.Millisecond, "the refused message", isMessage)
		})
	}
}

// TestWhatIsStored: which messages are kept (XEP-0160 §3, XEP-0334) and
// what the sender learns about the others.
func TestWhatIsStored(t *testing.T) {
	cases := []struct {
		name, stanza string
		stored       bool
		bounce       bool // the sender gets service-unavailable
	}{
		{"chat with body", "<message to='bob@localhost' type='chat'><body>hi</body></message>", true, false},
		{"normal without type", "<message to='bob@localhost'><body>hi</body></message>", true, false},
		{"normal", "<message to='bob@localhost' type='normal'><subject>s</subject><body>hi</body></message>", true, false},
		{"to a full JID that is gone", "<message to='bob@localhost/gone' type='chat'><body>hi</body></message>", true, false},
		{"store hint without body", "<message to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>", true, false},
		{"reaction without body", "<message to='bob@localhost' type='chat'><reactions id='x' xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions></message>", true, false},
		{"receipt", "<message to='bob@localhost' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/></message>", true, false},
		{"chat state alone", "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", false, true},
		{"chat state with ids and thread", "<message to='bob@localhost' type='chat'><thread>t</thread><paused xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='x'/></message>", false, true},
		{"empty", "<message to='bob@localhost' type='chat'/>", false, true},
		{"no-store hint", "<message to='bob@localhost' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>", false, true},
		{"no-store wins over store", "<message to='bob@localhost' type='chat'><store xmlns='urn:xmpp:hints'/><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>", false, true},
		{"headline", "<message to='bob@localhost' type='headline'><body>news</body></message>", false, false},
		{"groupchat", "<message to='bob@localhost' type='groupchat'><body>hi all</body></message>", false, true},
		{"error", "<message to='bob@localhost' type='error'><body>x</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", false, false},
	}
	e := newEnv(t)
	want := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.send(tc.stanza)
			bounced := len(got) == 1 && got[0].Attr("type") == "error" && strings.Contains(got[0].Inner, "service-unavailable")
			if bounced != tc.bounce || len(got) > 1 || (len(got) == 1 && !bounced) {
				t.Errorf("alice got %q; want a service-unavailable error: %v", got, tc.bounce)
			}
			if tc.stored {
				want++
			}
			if n := e.stored(t); n != want {
				t.Errorf("%d stored, want %d", n, want)
				want = n
			}
		})
	}
}

// TestExpiredSwept: messages older than max_age are deleted by the sweep
// and never delivered.
func TestExpiredSwept(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Offline.MaxAge = config.Duration{Duration: 300 * time.Millisecond}
		c.Offline.SweepInterval = config.Duration{Duration: 20 * time.Millisecond}
	})
	e.send(chat("old", "old"))
	if n := e.stored(t); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
	xmpptest.WaitFor(t, wait, func() error {
		if n := e.stored(t); n != 0 {
			return fmt.Errorf("%d messages still stored past max_age", n)
		}
		return nil
	})
	bob := e.bobOnline(t, "b", 0)
	bob.ExpectNone(300*time.Millisecond, "an expired message", isMessage)
}

// TestNegativePriority: a resource with a negative priority gets nothing
// (RFC 6121 §8.5.2.1.1 keeps messages to the bare JID from it), and the
// messages wait for one with a non-negative priority.
func TestNegativePriority(t *testing.T) {
	e := newEnv(t)
	e.send(chat("1", "one"))
	neg := e.bobOnline(t, "neg", -1)
	neg.Sync()
	// With only a negative-priority resource, a new message is stored too.
	e.send(chat("2", "two"))
	neg.ExpectNone(300*time.Millisecond, "a message to a negative-priority resource", isMessage)
	if n := e.stored(t); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
	pos := e.bobOnline(t, "pos", 0)
	ms := expectMessages(t, pos, 2)
	if ms[0].Body != "one" || ms[1].Body != "two" {
		t.Errorf("got %q, %q; want one, two", ms[0].Body, ms[1].Body)
	}
	neg.ExpectNone(100*time.Millisecond, "a message to a negative-priority resource", isMessage)
}

// TestConcurrentLogins: two resources coming online at once share the
// stored messages between them without any arriving twice.
func TestConcurrentLogins(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			const n = 60
			var msgs []string
			for i := range n {
				msgs = append(msgs, chat(fmt.Sprint(i), fmt.Sprint(i)))
			}
			e.send(msgs...)
			b1 := e.srv.Login(t, e.bob, "pw", xmpptest.LoginOptions{Resource: "one"})
			b2 := e.srv.Login(t, e.bob, "pw", xmpptest.LoginOptions{Resource: "two"})
			var wg sync.WaitGroup
			for _, c := range []*xmpptest.Client{b1, b2} {
				wg.Go(func() { c.Send("<presence/>") })
			}
			wg.Wait()
			seen := map[string]string{}
			total := 0
			deadline := time.Now().Add(wait)
			for total < n && time.Now().Before(deadline) {
				for _, c := range []*xmpptest.Client{b1, b2} {
					for _, el := range c.Sync() {
						if !isMessage(el) {
							continue
						}
						m := parse(t, el)
						if who, dup := seen[m.Body]; dup {
							t.Fatalf("message %s delivered twice (to %s and %s)", m.Body, who, c.JID)
						}
						seen[m.Body] = c.JID.String()
						total++
					}
				}
			}
			if total != n {
				t.Fatalf("%d of %d messages delivered", total, n)
			}
			for _, c := range []*xmpptest.Client{b1, b2} {
				c.ExpectNone(200*time.Millisecond, "a message delivered twice", isMessage)
			}
		})
	}
}

// TestDiscoFeature: the server advertises msgoffline (XEP-0160 §4).
func TestDiscoFeature(t *testing.T) {
	e := newEnv(t)
	e.alice.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := e.alice.Expect(wait, "disco#info result", func(el xmpptest.Element) bool { return el.Attr("id") == "d1" })
	if r.Attr("type") != "result" || !strings.Contains(r.Inner, "var='msgoffline'") {
		t.Fatalf("disco#info = %s, want feature msgoffline", r.Raw)
	}
}

// TestDisabled: max_messages = 0 stores nothing and advertises nothing.
func TestDisabled(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Offline.MaxMessages = 0 })
	got := e.send(chat("1", "hi"))
	if len(got) != 1 || !strings.Contains(got[0].Inner, "service-unavailable") {
		t.Fatalf("alice got %q, want service-unavailable", got)
	}
	e.alice.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := e.alice.Expect(wait, "disco#info result", func(el xmpptest.Element) bool { return el.Attr("id") == "d1" })
	if strings.Contains(r.Inner, "msgoffline") {
		t.Fatalf("disco#info = %s, want no msgoffline", r.Raw)
	}
}

// TestShutdownDuringDelivery: the server stops while bob is being
// delivered many messages in small batches; what was not written stays
// stored, and after a restart the next login gets the rest: nothing is
// lost.
func TestShutdownDuringDelivery(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.C2S.SendQueueStanzas = 4 })
	const n = 300
	var msgs []string
	for i := range n {
		msgs = append(msgs, chat(fmt.Sprint(i), fmt.Sprint(i)))
	}
	e.send(msgs...)
	bob := e.bobOnline(t, "b", 0)
	got := map[string]int{}
	for _, m := range expectMessages(t, bob, 3) {
		got[m.Body]++
	}
	cfg := e.srv.Config
	e.srv.Stop(t)
	<-bob.Done()
	for _, el := range drain(bob, 100*time.Millisecond) {
		if isMessage(el) {
			got[parse(t, el).Body]++
		}
	}
	before := len(got)

	srv := xmpptest.StartConfig(t, cfg)
	bob = srv.Login(t, e.bob, "pw", xmpptest.LoginOptions{Resource: "b"})
	bob.Send("<presence/>")
	xmpptest.WaitFor(t, 2*wait, func() error {
		for _, el := range drain(bob, 10*time.Millisecond) {
			if isMessage(el) {
				got[parse(t, el).Body]++
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d messages delivered", len(got), n)
		}
		return nil
	})
	t.Logf("%d messages before the shutdown, %d after the restart", before, n-before)
	if before == n {
		t.Log("the shutdown came after the last batch; nothing was left to deliver after the restart")
	}
}

// drain returns what c receives within d.
func drain(c *xmpptest.Client, d time.Duration) []xmpptest.Element {
	var out []xmpptest.Element
	c.ExpectNone(d, "", func(e xmpptest.Element) bool { out = append(out, e); return false })
	return out
}
