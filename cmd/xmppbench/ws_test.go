package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
)

// frames returns the messages wsConn.Write would send for the given
// writes, and what is left waiting for the next Write.
func frames(t *testing.T, writes ...string) ([]string, string) {
	t.Helper()
	var out []string
	var rest []byte
	for _, w := range writes {
		b := append(rest, w...)
		r, err := splitClient(b, func(kind int, el []byte) bool {
			if m := toServer(kind, el, nil); m != nil {
				out = append(out, string(m))
			}
			return true
		})
		if err != nil {
			t.Fatalf("splitClient(%q): %v", b, err)
		}
		rest = append([]byte(nil), r...)
	}
	return out, string(rest)
}

func TestClientToFrames(t *testing.T) {
	const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
		rest   string
	}{
		{"stream header",
			[]string{"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"},
			[]string{open + " to='localhost' version='1.0'/>"}, ""},
		{"header with xml:lang and double quotes",
			[]string{`<stream:stream xmlns:stream="http://etherx.jabber.org/streams" xml:lang="en" to="a.example" version="1.0" xmlns="jabber:client">`},
			[]string{open + ` xml:lang="en" to="a.example" version="1.0"/>`}, ""},
		{"stream end", []string{"</stream:stream>"}, []string{"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"}, ""},
		{"namespaced elements pass as they are",
			[]string{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biws</auth>"},
			[]string{"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biws</auth>"}, ""},
		{"stanzas get jabber:client",
			[]string{"<presence/><iq type='get' id='ready' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"},
			[]string{"<presence xmlns='jabber:client'/>", "<iq xmlns='jabber:client' type='get' id='ready' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"}, ""},
		{"a batch of messages, quotes with > and / inside",
			[]string{"<message to='b@x/r' id='1'><body>a &gt; b</body></message>\n<message to='c@x' id='2' x='/>'><body/></message> "},
			[]string{"<message xmlns='jabber:client' to='b@x/r' id='1'><body>a &gt; b</body></message>", "<message xmlns='jabber:client' to='c@x' id='2' x='/>'><body/></message>"}, ""},
		{"nested elements of the same name",
			[]string{"<message><x><x/></x></message>"},
			[]string{"<message xmlns='jabber:client'><x><x/></x></message>"}, ""},
		{"prefixed element untouched",
			[]string{"<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>"},
			[]string{"<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>"}, ""},
		{"element split over writes",
			[]string{"<message to='b@x'><bo", "dy>hi</body></mess", "age><r xmlns='urn:xmpp:sm:3'/>"},
			[]string{"<message xmlns='jabber:client' to='b@x'><body>hi</body></message>", "<r xmlns='urn:xmpp:sm:3'/>"}, ""},
		{"quote split over writes",
			[]string{"<presence/><iq id='a>", "b'/>"},
			[]string{"<presence xmlns='jabber:client'/>", "<iq xmlns='jabber:client' id='a>b'/>"}, ""},
		{"incomplete element waits",
			[]string{"<presence/><message><body>"},
			[]string{"<presence xmlns='jabber:client'/>"}, "<message><body>"},
		{"restart, then stanzas, then the end",
			[]string{"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='d' version='1.0'><iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq></stream:stream>"},
			[]string{open + " to='d' version='1.0'/>", "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>", "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rest := frames(t, tc.writes...)
			if !reflect.DeepEqual(got, tc.want) || rest != tc.rest {
				t.Errorf("got %q, rest %q\nwant %q, rest %q", got, rest, tc.want, tc.rest)
			}
		})
	}
	if _, err := splitClient([]byte("hello<presence/>"), func(int, []byte) bool { return true }); err == nil {
		t.Error("text outside an element accepted")
	}
}

func TestFramesToStream(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='localhost' version='1.0' xml:lang='en'/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0' xml:lang='en'>"},
		{`<open from="localhost" xmlns="urn:ietf:params:xml:ns:xmpp-framing" id="x/y" version="1.0" />`,
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from="localhost" id="x/y" version="1.0">`},
		{"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "</stream:stream>"},
		{"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='wss://other/'/>", "</stream:stream>"},
		{"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"<message xmlns='jabber:client' to='a@b'><body>x</body></message>\n", "<message xmlns='jabber:client' to='a@b'><body>x</body></message>"},
	} {
		if got := string(fromServer([]byte(tc.in), nil)); got != tc.want {
			t.Errorf("fromServer(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestWSConn runs the adapter over a real WebSocket: what the client
// writes arrives as one message per element, and the server's messages
// read as a stream the splitter cuts as it would a TCP stream.
func TestWSConn(t *testing.T) {
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, &ws.AcceptOptions{Subprotocols: []string{"xmpp"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for _, m := range []string{
			"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='localhost' version='1.0'/>",
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>",
			"<message xmlns='jabber:client' from='a@localhost/r'><body>" + strings.Repeat("x", 5000) + "</body></message>",
			"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
		} {
			if err := c.Write(ctx, ws.MessageText, []byte(m)); err != nil {
				return
			}
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				close(got)
				return
			}
			got <- string(b)
		}
	}))
	defer srv.Close()
	o := &options{timeout: 5 * time.Second, domain: "localhost", wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/xmpp-websocket"}
	conn, _, err := dialWS(o, newWSTransport(o))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("<presence/><message to='b@localhost'><body>hi</body></message></stream:stream>")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
		"<presence xmlns='jabber:client'/>",
		"<message xmlns='jabber:client' to='b@localhost'><body>hi</body></message>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
	}
	for _, w := range want {
		select {
		case m := <-got:
			if m != w {
				t.Errorf("server got %q, want %q", m, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("server did not get %q", w)
		}
	}
	sp := newSplitter(conn, 64)
	el, err := sp.next()
	if err != nil || string(localName(el)) != "features" {
		t.Fatalf("first element %q, %v; want the features", el, err)
	}
	el, err = sp.next()
	if err != nil || !strings.HasPrefix(string(el), "<message") || len(el) < 5000 {
		t.Fatalf("second element %.80q, %v; want the long message", el, err)
	}
	if _, err := sp.next(); err != errStreamClosed {
		t.Fatalf("after <close/>: %v, want the stream closed", err)
	}
}

func TestWSOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-transport", "quic", "login"}, "-transport"},
		{[]string{"-transport", "websocket", "-ws-url", "wss://192.0.2.1:5281/xmpp-websocket", "login"}, "loopback"},
		{[]string{"-transport", "websocket", "-ws-url", "https://127.0.0.1:5281/xmpp-websocket", "login"}, "ws://"},
	} {
		var out, errOut strings.Builder
		err := run(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
	o := options{mech: "SCRAM-SHA-1", userPattern: "u%d", n: 2, concurrency: 1, senders: 1, rate: 1, mucRate: 1, pepRate: 1, maxStart: 1, smAckEvery: 1,
		addr: "127.0.0.1:5281", transport: "websocket"}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	if o.wsURL != "wss://127.0.0.1:5281/xmpp-websocket" || o.wsOrigin != "https://127.0.0.1:5281" {
		t.Errorf("defaults: url %q origin %q", o.wsURL, o.wsOrigin)
	}
}

// BenchmarkClientFrames measures the write side's splitting and
// translation of a batch of chat messages.
func BenchmarkClientFrames(b *testing.B) {
	batch := []byte(strings.Repeat("<message to='user17@localhost/bench' type='chat' id='m123456'><body>xbench 1733420000000000000 "+strings.Repeat("x", 40)+"</body></message>", 8))
	var frame []byte
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		splitClient(batch, func(kind int, el []byte) bool {
			frame = toServer(kind, el, frame[:0])
			return true
		})
	}
}
