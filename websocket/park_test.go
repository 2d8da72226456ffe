package websocket_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// rawWS is a WebSocket client that writes and reads frames by hand, to
// send what a client library would not (unmasked, binary, reserved,
// fragmented frames, pings at chosen moments).
type rawWS struct {
	t     *testing.T
	c     net.Conn
	r     io.Reader
	pongs []string // payloads of the pongs received
	// fragments, when not zero, is the length of the fragments text cuts
	// its messages into, with a ping after the first.
	fragments int
}

// closedError is a close frame received, with its status code.
type closedError gws.StatusCode

func (e closedError) Error() string { return fmt.Sprintf("closed with %d", e) }

// dialRaw opens the WebSocket of the server's HTTPS listener.
func dialRaw(t *testing.T, srv *xmpptest.Server) *rawWS {
	t.Helper()
	d := gws.Dialer{Protocols: []string{"xmpp"}, TLSConfig: &tls.Config{InsecureSkipVerify: true}, Timeout: wait}
	c, br, hs, err := d.Dial(context.Background(), "wss://"+srv.HTTPS+"/xmpp-websocket")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if hs.Protocol != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", hs.Protocol)
	}
	r := io.Reader(c)
	if br != nil {
		r = io.MultiReader(br, c)
	}
	return &rawWS{t: t, c: c, r: bufio.NewReader(r)}
}

// rawClient is a wsClient over a rawWS.
func rawClient(t *testing.T, srv *xmpptest.Server) *wsClient {
	t.Helper()
	return &wsClient{t: t, raw: dialRaw(t, srv)}
}

// write writes b, the bytes of frames.
func (r *rawWS) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// frameBytes is a frame as a client sends it: masked unless unmasked.
func frameBytes(op gws.OpCode, fin bool, p string, unmasked bool) []byte {
	f := gws.NewFrame(op, fin, []byte(p))
	if !unmasked {
		f = gws.MaskFrame(f)
	}
	return gws.MustCompileFrame(f)
}

func (r *rawWS) frame(op gws.OpCode, fin bool, p string) {
	r.t.Helper()
	r.write(frameBytes(op, fin, p, false))
}

func (r *rawWS) text(s string) {
	r.t.Helper()
	if r.fragments == 0 || len(s) <= r.fragments {
		r.frame(gws.OpText, true, s)
		return
	}
	op := gws.OpText
	for len(s) > r.fragments {
		r.frame(op, false, s[:r.fragments])
		if op == gws.OpText {
			r.frame(gws.OpPing, true, "between")
		}
		s, op = s[r.fragments:], gws.OpContinuation
	}
	r.frame(gws.OpContinuation, true, s)
}

// nextFrame reads a frame; the server's are never masked.
func (r *rawWS) nextFrame() (gws.Frame, error) {
	r.c.SetReadDeadline(time.Now().Add(wait))
	f, err := gws.ReadFrame(r.r)
	if err == nil && f.Header.Masked {
		err = errors.New("a masked frame from the server")
	}
	return f, err
}

// nextText returns the next text message, noting the pongs before it; a
// close frame is a closedError.
func (r *rawWS) nextText() (string, error) {
	var msg []byte
	for {
		f, err := r.nextFrame()
		if err != nil {
			return "", err
		}
		switch f.Header.OpCode {
		case gws.OpPong:
			r.pongs = append(r.pongs, string(f.Payload))
		case gws.OpClose:
			code, _ := gws.ParseCloseFrameData(f.Payload)
			return "", closedError(code)
		case gws.OpText, gws.OpContinuation:
			msg = append(msg, f.Payload...)
			if f.Header.Fin {
				return string(msg), nil
			}
		default:
			return "", fmt.Errorf("unexpected frame, opcode %d", f.Header.OpCode)
		}
	}
}

// expectPong reads until the pong carrying payload.
func (r *rawWS) expectPong(payload string) {
	r.t.Helper()
	for {
		for _, p := range r.pongs {
			if p == payload {
				r.pongs = nil
				return
			}
		}
		f, err := r.nextFrame()
		if err != nil {
			r.t.Fatalf("waiting for the pong %q: %v", payload, err)
		}
		if f.Header.OpCode == gws.OpPong {
			r.pongs = append(r.pongs, string(f.Payload))
		}
	}
}

// expectClose reads until a close frame, which must carry code, and then
// the end of the connection.
func (r *rawWS) expectClose(code gws.StatusCode) {
	r.t.Helper()
	for {
		_, err := r.nextText()
		var ce closedError
		if errors.As(err, &ce) {
			if gws.StatusCode(ce) != code {
				r.t.Fatalf("closed with %d, want %d", ce, code)
			}
			break
		}
		if err != nil {
			r.t.Fatalf("waiting for a close frame: %v", err)
		}
	}
	// The server closes the connection after its close frame (at once,
	// or once the client answers it).
	r.write(frameBytes(gws.OpClose, true, string(closeBodyOf(code)), false))
	if _, err := r.nextFrame(); err == nil {
		r.t.Fatal("a frame after the close frame")
	} else if errors.Is(err, io.EOF) || isReset(err) {
		return
	} else {
		r.t.Fatalf("after the close frame: %v, want the connection's end", err)
	}
}

func closeBodyOf(code gws.StatusCode) []byte { return []byte{byte(code >> 8), byte(code)} }

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// readLoops counts the goroutines running a session's read loop: a parked
// session has none.
func readLoops() int {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "c2s.(*Session).readLoop")
}

func waitReadLoops(t *testing.T, want int) {
	t.Helper()
	xmpptest.WaitFor(t, wait, func() error {
		if n := readLoops(); n != want {
			return fmt.Errorf("%d read loops running, want %d", n, want)
		}
		return nil
	})
}

func isChat(body string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && strings.Contains(e.Inner, "<body>"+body+"</body>")
	}
}

// TestParking: silent WebSocket sessions give back their read goroutines
// as TCP ones do, and a parked one wakes for whatever its client sends: a
// message, a ping (answered with a pong), a message fragmented across
// pauses, a frame cut inside its header, <close/>.
func TestParking(t *testing.T) {
	const park = 50 * time.Millisecond
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.C2S.ParkAfter = config.Duration{Duration: park}
		c.C2S.MaxResourcesPerAccount = 0
	})
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := rawClient(t, srv)
	b.login("bob", "pw", "web")
	for i := range 10 {
		rawClient(t, srv).login("bob", "pw", fmt.Sprintf("idle%d", i))
	}
	waitReadLoops(t, 0)

	// Each message wakes the parked sender; it parks again.
	for i := range 3 {
		body := fmt.Sprintf("m%d", i)
		b.send("<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>" + body + "</body></message>")
		a.Expect(wait, body, isChat(body))
		waitReadLoops(t, 0)
	}
	// A parked session receives.
	a.Send("<message to='bob@localhost/web' type='chat'><body>to-web</body></message>")
	b.expect("message to the parked session", "<body>to-web</body>")

	// A ping wakes it; the pong comes back and it parks again.
	waitReadLoops(t, 0)
	b.raw.frame(gws.OpPing, true, "p1")
	b.raw.expectPong("p1")
	waitReadLoops(t, 0)

	// A message in fragments, apart by more than park_after, with a
	// ping between them.
	b.raw.frame(gws.OpText, false, "<message xmlns='jabber:client' to='alice@localhost/a' type='chat'>")
	time.Sleep(3 * park)
	b.raw.frame(gws.OpPing, true, "p2")
	b.raw.expectPong("p2")
	b.raw.frame(gws.OpContinuation, false, "<body>frag")
	time.Sleep(3 * park)
	b.raw.frame(gws.OpContinuation, true, "mented</body></message>")
	a.Expect(wait, "fragmented message", isChat("fragmented"))

	// A frame cut inside its header, then inside its payload.
	waitReadLoops(t, 0)
	f := frameBytes(gws.OpText, true, "<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>cut</body></message>", false)
	b.raw.write(f[:1])
	time.Sleep(3 * park)
	b.raw.write(f[1:20])
	time.Sleep(3 * park)
	b.raw.write(f[20:])
	a.Expect(wait, "message cut in pieces", isChat("cut"))

	// <close/> from a parked session ends it.
	waitReadLoops(t, 0)
	before := srv.Router().SessionCount()
	b.send("<close xmlns='" + framing + "'/>")
	b.expect("close", "<close xmlns='"+framing+"'/>")
	b.raw.expectClose(gws.StatusNormalClosure)
	xmpptest.WaitFor(t, wait, func() error {
		if n := srv.Router().SessionCount(); n != before-1 {
			return fmt.Errorf("%d sessions, want %d", n, before-1)
		}
		return nil
	})
}

// TestParkedKeepalive: the keepalive of a parked WebSocket session pings
// it; a client that answers stays, one that does not is closed with
// <connection-timeout/>.
func TestParkedKeepalive(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.C2S.ParkAfter = config.Duration{Duration: 20 * time.Millisecond}
		c.C2S.PingInterval = config.Duration{Duration: 300 * time.Millisecond}
		c.C2S.PingTimeout = config.Duration{Duration: 300 * time.Millisecond}
	})
	srv.AddUser(t, "bob", "pw")
	b := rawClient(t, srv)
	b.login("bob", "pw", "web")
	waitReadLoops(t, 0)
	ping := b.expect("keepalive ping", "urn:xmpp:ping")
	id := ping[strings.Index(ping, "id='")+4:]
	id = id[:strings.IndexByte(id, '\'')]
	b.send("<iq xmlns='jabber:client' type='result' id='" + id + "'/>")
	b.expect("second keepalive ping", "urn:xmpp:ping")
	if e := b.expect("stream error", "<stream:error"); !strings.Contains(e, "<connection-timeout ") {
		t.Fatalf("stream error %q, want connection-timeout", e)
	}
	b.expect("close", "<close xmlns='"+framing+"'/>")
	b.raw.expectClose(gws.StatusNormalClosure)
}

// TestFrameErrors: frames that break RFC 6455 close the WebSocket with
// 1002 (protocol error); a binary message breaks RFC 7395 and ends the
// stream with <not-well-formed/>, then a normal closure.
func TestFrameErrors(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	for _, tc := range []struct {
		name   string
		frames [][]byte
		code   gws.StatusCode
	}{
		{"unmasked frame", [][]byte{frameBytes(gws.OpText, true, "<iq xmlns='jabber:client' type='get' id='1'/>", true)}, gws.StatusProtocolError},
		{"unmasked ping", [][]byte{frameBytes(gws.OpPing, true, "x", true)}, gws.StatusProtocolError},
		{"reserved bits", [][]byte{func() []byte {
			b := frameBytes(gws.OpText, true, "<iq xmlns='jabber:client' type='get' id='1'/>", false)
			b[0] |= 0x40
			return b
		}()}, gws.StatusProtocolError},
		{"reserved opcode", [][]byte{frameBytes(gws.OpCode(3), true, "x", false)}, gws.StatusProtocolError},
		{"continuation without a message", [][]byte{frameBytes(gws.OpContinuation, true, "<iq/>", false)}, gws.StatusProtocolError},
		{"new message inside a fragmented one", [][]byte{
			frameBytes(gws.OpText, false, "<iq xmlns='jabber:client'", false),
			frameBytes(gws.OpText, true, "<iq/>", false),
		}, gws.StatusProtocolError},
		{"fragmented ping", [][]byte{frameBytes(gws.OpPing, false, "x", false)}, gws.StatusProtocolError},
		{"long ping", [][]byte{frameBytes(gws.OpPing, true, strings.Repeat("x", 126), false)}, gws.StatusProtocolError},
		{"binary message", [][]byte{frameBytes(gws.OpBinary, true, "<iq xmlns='jabber:client' type='get' id='1'/>", false)}, gws.StatusNormalClosure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawClient(t, srv)
			c.send(openFrame)
			c.expect("features", "<stream:features")
			for _, f := range tc.frames {
				c.raw.write(f)
			}
			if tc.code == gws.StatusNormalClosure {
				e := c.expect("stream error", "<stream:error")
				if !strings.Contains(e, "<not-well-formed ") {
					t.Fatalf("stream error %q, want not-well-formed", e)
				}
				c.expect("close", "<close xmlns='"+framing+"'/>")
			}
			c.raw.expectClose(tc.code)
		})
	}
}

// TestFragmentedLogin: a whole login in messages cut into fragments of a
// few bytes, with pings among them.
func TestFragmentedLogin(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := rawClient(t, srv)
	b.raw.fragments = 7
	b.login("bob", "pw", "web")
	b.send("<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>in pieces</body></message>")
	a.Expect(wait, "fragmented message", isChat("in pieces"))
	a.Send("<message to='bob@localhost/web' type='chat'><body>back</body></message>")
	b.expect("message", "<body>back</body>")
	if len(b.raw.pongs) == 0 {
		t.Fatal("no pong for the pings among the fragments")
	}
}

// TestFrameWithRequest: a first frame sent along with the upgrade request,
// which the HTTP server reads before the handshake is done, is served.
func TestFrameWithRequest(t *testing.T) {
	srv := xmpptest.Start(t, xmpptest.WithHTTPS())
	c, err := tls.Dial("tcp", srv.HTTPS, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /xmpp-websocket HTTP/1.1\r\nHost: " + srv.HTTPS + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(append([]byte(req), frameBytes(gws.OpText, true, openFrame, false)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("status %q (%v), want 101", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	w := &wsClient{t: t, raw: &rawWS{t: t, c: c, r: br}}
	w.expect("open", "<open ")
	w.expect("features", "<stream:features")
}

// TestPongAfterWriteTimeout: a ping that comes after c2s's write deadline
// has passed (nothing was sent for longer than c2s.write_timeout) is
// answered, and the TLS connection keeps working: the pong is written
// under a deadline of its own, not under c2s's expired one (a timed-out
// write would break TLS for good).
func TestPongAfterWriteTimeout(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	srv := xmpptest.Start(t, xmpptest.WithHTTPS(), func(c *config.Config) {
		c.C2S.WriteTimeout = config.Duration{Duration: writeTimeout}
	})
	alice := srv.AddUser(t, "alice", "pw")
	srv.AddUser(t, "bob", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "a"})
	b := rawClient(t, srv)
	b.login("bob", "pw", "web")
	for i := range 2 {
		time.Sleep(3 * writeTimeout)
		p := fmt.Sprintf("late%d", i)
		b.raw.frame(gws.OpPing, true, p)
		b.raw.expectPong(p)
	}
	a.Send("<message to='bob@localhost/web' type='chat'><body>still-there</body></message>")
	b.expect("a message after the late pings", "<body>still-there</body>")
	b.send("<message xmlns='jabber:client' to='alice@localhost/a' type='chat'><body>and-back</body></message>")
	a.Expect(wait, "bob's answer", isChat("and-back"))
}
