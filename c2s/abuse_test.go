package c2s_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// The tests here stand for clients at different addresses by connecting
// from different loopback addresses (all of 127.0.0.0/8 is local on
// Linux). Networks remembered for an account are /24s, so "different
// networks" are 127.0.X.0/24 with different X.

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// saslAnswer reads until the server's answer to a SASL step is complete: a
// challenge, a success or a failure. It returns what it read.
func saslAnswer(t *testing.T, r *xmpptest.Raw) string {
	t.Helper()
	r.Conn.SetReadDeadline(time.Now().Add(wait))
	var got []byte
	buf := make([]byte, 4096)
	for {
		for _, end := range []string{"</challenge>", "</success>", "</failure>", "<success xmlns='" + nsSASL + "'/>"} {
			if bytes.Contains(got, []byte(end)) {
				return string(got)
			}
		}
		n, err := r.Conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the SASL answer: %v (got %q)", err, got)
		}
	}
}

// plainAuth tries PLAIN on r and returns the answer.
func plainAuth(t *testing.T, r *xmpptest.Raw, user, password string) string {
	t.Helper()
	r.Send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + b64("\x00"+user+"\x00"+password) + "</auth>")
	return saslAnswer(t, r)
}

// outcome names a SASL answer for messages.
func outcome(answer string) string {
	for _, c := range []string{"success", "not-authorized", "temporary-auth-failure", "aborted", "malformed-request", "invalid-mechanism"} {
		if strings.Contains(answer, "<"+c) {
			return c
		}
	}
	return answer
}

// login tries PLAIN from a fresh connection from the address from, and
// returns the outcome.
func login(t *testing.T, srv *xmpptest.Server, from, user, password string) string {
	t.Helper()
	r := srv.DialTLSFrom(t, from)
	defer r.Conn.Close()
	return outcome(plainAuth(t, r, user, password))
}

func TestThrottleAimsAtTheGuesser(t *testing.T) {
	t.Run("pair and account", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) {
			c.Auth.MaxFailures = 5
			c.Auth.AccountMaxFailures = 10
			c.Auth.AddressFailuresPerMinute = 100
			c.Auth.Lockout = config.Duration{Duration: time.Hour}
		})
		srv.AddUser(t, "alice", "alice's password")
		srv.AddUser(t, "bob", "bob's password")
		const home, guesser, fresh = "127.0.1.1", "127.0.2.1", "127.0.9.1"
		if got := login(t, srv, home, "alice", "alice's password"); got != "success" {
			t.Fatalf("alice at home: %s", got)
		}

		// Eight wrong passwords for alice from one address: five are
		// checked, then that address is refused for alice.
		r := srv.DialTLSFrom(t, guesser)
		for i := range 8 {
			want := "not-authorized"
			if i >= 5 {
				want = "temporary-auth-failure"
			}
			if got := outcome(plainAuth(t, r, "alice", fmt.Sprint("guess", i))); got != want {
				t.Fatalf("wrong password %d from the guesser's address: %s, want %s", i+1, got, want)
			}
		}
		// Bob, behind the same address, logs in at once.
		if got := login(t, srv, guesser, "bob", "bob's password"); got != "success" {
			t.Fatalf("bob from the guesser's address: %s, want success", got)
		}
		if got := login(t, srv, guesser, "alice", "alice's password"); got != "temporary-auth-failure" {
			t.Fatalf("alice from the guesser's address: %s, want temporary-auth-failure", got)
		}

		// Five more guesses from five other networks: ten in all, the
		// account is refused outside its remembered networks.
		for i := 3; i < 8; i++ {
			if got := login(t, srv, fmt.Sprintf("127.0.%d.1", i), "alice", "guess"); got != "not-authorized" {
				t.Fatalf("guess from 127.0.%d.1: %s", i, got)
			}
		}
		if got := login(t, srv, fresh, "alice", "alice's password"); got != "temporary-auth-failure" {
			t.Fatalf("alice from a fresh network: %s, want temporary-auth-failure", got)
		}
		// Its owner, at home (another address of the same /24), is let in.
		if got := login(t, srv, "127.0.1.2", "alice", "alice's password"); got != "success" {
			t.Fatalf("alice at home while refused elsewhere: %s, want success", got)
		}
		if got := login(t, srv, fresh, "bob", "bob's password"); got != "success" {
			t.Fatalf("bob from the fresh network: %s, want success", got)
		}
		// Remembered in storage, not only in memory.
		xmpptest.WaitFor(t, wait, func() error {
			var n int
			err := srv.DB().SQL().QueryRow(`SELECT COUNT(*) FROM login_networks WHERE jid = 'alice@localhost' AND network = '127.0.1.0/24'`).Scan(&n)
			if err != nil || n != 1 {
				return fmt.Errorf("%d rows for alice at 127.0.1.0/24 (%v)", n, err)
			}
			return nil
		})
	})

	t.Run("address cap across accounts", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) {
			c.Auth.MaxFailures = 3
			c.Auth.AddressFailuresPerMinute = 6
		})
		srv.AddUser(t, "bob", "bob's password")
		srv.AddUser(t, "carol", "carol's password")
		const office = "127.0.2.1"
		if got := login(t, srv, "127.0.2.9", "bob", "bob's password"); got != "success" {
			t.Fatalf("bob: %s", got)
		}
		r := srv.DialTLSFrom(t, office)
		for i := range 6 {
			if got := outcome(plainAuth(t, r, fmt.Sprintf("u%d", i), "guess")); got != "not-authorized" {
				t.Fatalf("guess %d: %s", i, got)
			}
		}
		if got := login(t, srv, office, "carol", "carol's password"); got != "temporary-auth-failure" {
			t.Fatalf("carol, never seen there, while the address is capped: %s, want temporary-auth-failure", got)
		}
		if got := login(t, srv, office, "bob", "bob's password"); got != "success" {
			t.Fatalf("bob, who logged in from that network before: %s, want success", got)
		}
		if got := login(t, srv, "127.0.3.1", "carol", "carol's password"); got != "success" {
			t.Fatalf("carol from elsewhere: %s, want success", got)
		}
	})
}

// scramLogin runs SCRAM-SHA-256 on r and returns the outcome.
func scramLogin(t *testing.T, r *xmpptest.Raw, user, password string) string {
	t.Helper()
	c, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := c.NewConversation()
	first, _ := conv.Step("")
	r.Send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64(first) + "</auth>")
	answer := saslAnswer(t, r)
	if !strings.Contains(answer, "<challenge") {
		return outcome(answer)
	}
	challenge := answer[strings.Index(answer, ">")+1 : strings.Index(answer, "</challenge>")]
	final, err := conv.Step(unb64(t, challenge))
	if err != nil {
		t.Fatal(err)
	}
	r.Send("<response xmlns='" + nsSASL + "'>" + b64(final) + "</response>")
	return outcome(saslAnswer(t, r))
}

// TestThrottleIgnoresProtocolFailures: a client that tries -PLUS with a
// binding the server lacks, or aborts, and then logs in, creeps toward no
// lockout however often it does so.
func TestThrottleIgnoresProtocolFailures(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.Auth.MaxFailures = 3
		c.Auth.AccountMaxFailures = 3
		c.Auth.AddressFailuresPerMinute = 3
		c.Auth.Lockout = config.Duration{Duration: time.Hour}
	})
	srv.AddUser(t, "alice", "alice's password")
	const from = "127.0.4.1"
	for i := range 10 {
		r := srv.DialTLSFrom(t, from)
		r.Send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256-PLUS'>" + b64("p=tls-unique,,n=alice,r=abcdefghijklmnop") + "</auth>")
		if got := outcome(saslAnswer(t, r)); got != "not-authorized" {
			t.Fatalf("round %d: -PLUS with tls-unique: %s, want not-authorized", i, got)
		}
		r.Send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64("n,,n=alice,r=abcdefghijklmnop") + "</auth>")
		saslAnswer(t, r)
		r.Send("<abort xmlns='" + nsSASL + "'/>")
		if got := outcome(saslAnswer(t, r)); got != "aborted" {
			t.Fatalf("round %d: abort: %s", i, got)
		}
		r.Send("<auth xmlns='" + nsSASL + "' mechanism='X-UNKNOWN'/>")
		if got := outcome(saslAnswer(t, r)); got != "invalid-mechanism" {
			t.Fatalf("round %d: unknown mechanism: %s", i, got)
		}
		if got := scramLogin(t, r, "alice", "alice's password"); got != "success" {
			t.Fatalf("round %d: SCRAM-SHA-256 after the fallbacks: %s, want success", i, got)
		}
		r.Conn.Close()
	}
	// None of the above counted: two typos and the right password still
	// log in (a third typo would lock this address out for alice).
	r := srv.DialTLSFrom(t, from)
	for i := range 2 {
		if got := outcome(plainAuth(t, r, "alice", "typo")); got != "not-authorized" {
			t.Fatalf("typo %d: %s", i, got)
		}
	}
	if got := outcome(plainAuth(t, r, "alice", "alice's password")); got != "success" {
		t.Fatalf("after two typos: %s, want success: the protocol failures were counted", got)
	}
}

// TestBruteForceIsSlowed: thirty wrong passwords from one address take at
// least the delays the throttle imposes (20 ms growing to 100 ms, then
// 100 ms per refusal), far longer than thirty logins.
func TestBruteForceIsSlowed(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.Auth.FailureDelay = config.Duration{Duration: delay}
		c.Auth.Lockout = config.Duration{Duration: time.Hour}
		c.C2S.ConnectionRatePerAddress = 0
	})
	srv.AddUser(t, "alice", "alice's password")
	srv.AddUser(t, "bob", "bob's password")

	start := time.Now()
	var r *xmpptest.Raw
	checked := 0
	for i := range 30 {
		if i%10 == 0 { // the stream ends after ten failures
			r = srv.DialTLSFrom(t, "127.0.5.1")
		}
		if outcome(plainAuth(t, r, "alice", fmt.Sprint("guess", i))) == "not-authorized" {
			checked++
		}
	}
	wrong := time.Since(start)

	start = time.Now()
	for i := range 30 {
		if got := login(t, srv, "127.0.6.1", "bob", "bob's password"); got != "success" {
			t.Fatalf("login %d: %s", i, got)
		}
	}
	right := time.Since(start)
	t.Logf("30 wrong passwords: %v (%d checked); 30 logins: %v", wrong, checked, right)
	if checked != 5 {
		t.Errorf("%d of the 30 guesses were checked, want 5 (then refused)", checked)
	}
	// 1+2+3+4+5 delays for the checked ones, 5 for each refusal.
	if least := (15 + 25*5) * delay; wrong < least {
		t.Errorf("30 wrong passwords took %v, less than the %v of delays", wrong, least)
	}
	if wrong < 2*right {
		t.Errorf("30 wrong passwords took %v, 30 logins %v: not far longer", wrong, right)
	}
}

// streamOpen dials from the address from and opens a stream; it returns
// the connection and what the server answered.
func streamOpen(t *testing.T, srv *xmpptest.Server, from string) (*xmpptest.Raw, string) {
	t.Helper()
	r := srv.DialRawFrom(t, from)
	r.Send(srv.Header())
	got := r.ReadUntil("</stream:features>", wait)
	return r, got
}

// refused reports whether answer is a stream error policy-violation with
// text in it, and the server closed the stream.
func refused(answer, text string) bool {
	return strings.Contains(answer, "<stream:error><policy-violation") && strings.Contains(answer, text) &&
		strings.HasSuffix(answer, "</stream:stream>")
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per address at once", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) {
			c.C2S.MaxConnectionsPerAddress = 2
			c.C2S.ConnectionRatePerAddress = 0
		})
		first, _ := streamOpen(t, srv, "127.0.8.1")
		if _, got := streamOpen(t, srv, "127.0.8.1"); !strings.Contains(got, "<starttls") {
			t.Fatalf("second connection: %q", got)
		}
		r, _ := streamOpen(t, srv, "127.0.8.1")
		if got, _ := r.ReadAll(wait); !refused(got, "too many connections from your address (at most 2 at once)") {
			t.Fatalf("third connection from the address: %q", got)
		}
		if _, got := streamOpen(t, srv, "127.0.8.2"); !strings.Contains(got, "<starttls") {
			t.Fatalf("another address: %q", got)
		}
		// Once one ends, the address may connect again.
		first.Conn.Close()
		xmpptest.WaitFor(t, wait, func() error {
			r, got := streamOpen(t, srv, "127.0.8.1")
			defer r.Conn.Close()
			if !strings.Contains(got, "<starttls") {
				return fmt.Errorf("after one closed: %q", got)
			}
			return nil
		})
	})

	t.Run("new connections per second", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) {
			c.C2S.ConnectionRatePerAddress = 1
			c.C2S.ConnectionBurstPerAddress = 3
		})
		for i := range 3 {
			r, got := streamOpen(t, srv, "127.0.8.3")
			if !strings.Contains(got, "<starttls") {
				t.Fatalf("connection %d of the burst: %q", i+1, got)
			}
			r.Conn.Close()
		}
		r, _ := streamOpen(t, srv, "127.0.8.3")
		if got, _ := r.ReadAll(wait); !refused(got, "too many new connections from your address") {
			t.Fatalf("fourth connection at once: %q", got)
		}
		if _, got := streamOpen(t, srv, "127.0.8.4"); !strings.Contains(got, "<starttls") {
			t.Fatalf("another address: %q", got)
		}
	})

	t.Run("total", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) { c.C2S.MaxConnections = 3 })
		for i := range 3 {
			if _, got := streamOpen(t, srv, fmt.Sprintf("127.0.8.%d", 10+i)); !strings.Contains(got, "<starttls") {
				t.Fatalf("connection %d: %q", i+1, got)
			}
		}
		r, _ := streamOpen(t, srv, "127.0.8.20")
		if got, _ := r.ReadAll(wait); !refused(got, "the server has as many connections as it takes") {
			t.Fatalf("one connection too many: %q", got)
		}
	})

	t.Run("direct TLS, after the handshake", func(t *testing.T) {
		srv := xmpptest.Start(t, func(c *config.Config) {
			c.C2S.MaxConnectionsPerAddress = 1
			c.C2S.MaxResourcesPerAccount = 0
		})
		alice := srv.AddUser(t, "alice", "pw")
		srv.Login(t, alice, "pw", xmpptest.LoginOptions{DirectTLS: true, From: "127.0.8.30"})
		_, err := srv.TryLogin(t, alice, "pw", xmpptest.LoginOptions{DirectTLS: true, From: "127.0.8.30"})
		if err == nil || !strings.Contains(err.Error(), "policy-violation") {
			t.Fatalf("second direct TLS connection from the address: %v, want a policy-violation stream error", err)
		}
	})
}

// bindRaw logs in on a fresh connection with PLAIN, restarts the stream
// and asks to bind resource; it returns the answer to the bind request.
func bindRaw(t *testing.T, srv *xmpptest.Server, user, password, resource string) string {
	t.Helper()
	r := srv.DialTLS(t)
	if got := outcome(plainAuth(t, r, user, password)); got != "success" {
		t.Fatalf("PLAIN: %s", got)
	}
	r.Reset()
	r.Send(srv.Header())
	r.ReadUntil("</stream:features>", wait)
	r.Reset()
	r.Send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	return r.ReadUntil("</iq>", wait)
}

func TestResourceLimit(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { c.C2S.MaxResourcesPerAccount = 2 })
	alice := srv.AddUser(t, "alice", "pw")
	phone := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "phone"})
	desk := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "desk"})

	got := bindRaw(t, srv, "alice", "pw", "laptop")
	if !strings.Contains(got, "type='error'") || !strings.Contains(got, "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") ||
		!strings.Contains(got, "this account has 2 sessions already") {
		t.Fatalf("third resource: %q, want a wait/resource-constraint error with a text", got)
	}
	// Replacing a session is not one more.
	if got := bindRaw(t, srv, "alice", "pw", "phone"); !strings.Contains(got, "type='result'") || !strings.Contains(got, "<jid>alice@localhost/phone</jid>") {
		t.Fatalf("binding phone again: %q, want it bound", got)
	}
	select {
	case <-phone.Done():
	case <-time.After(wait):
		t.Fatal("the replaced session did not end")
	}
	// Once a session ends, another may bind.
	desk.Close()
	xmpptest.WaitFor(t, wait, func() error {
		_, err := srv.TryLogin(t, alice, "pw", xmpptest.LoginOptions{Resource: "laptop"})
		return err
	})
}

// proxyV2 is a PROXY protocol v2 header for a TCP/IPv4 client src.
func proxyV2(src string, sport uint16) string {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	b = append(b, net.ParseIP(src).To4()...)
	b = append(b, 127, 0, 0, 1)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, 5223)
	return string(b)
}

func TestProxyProtocol(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.C2S.ProxyProtocol = true
		c.C2S.ProxyNetworks = []string{"127.0.0.1"}
		c.C2S.MaxConnectionsPerAddress = 1
		c.C2S.ConnectionRatePerAddress = 0
		c.C2S.MaxResourcesPerAccount = 0
	})
	alice := srv.AddUser(t, "alice", "pw")
	const proxy = "127.0.0.1"
	v1 := func(src string) string { return "PROXY TCP4 " + src + " 127.0.0.1 40000 5222\r\n" }

	// Two clients behind the proxy are two addresses: with one
	// connection allowed per address, both are let in, a third from the
	// first client's address is not.
	srv.Login(t, alice, "pw", xmpptest.LoginOptions{From: proxy, ProxyHeader: v1("198.51.100.7")})
	srv.Login(t, alice, "pw", xmpptest.LoginOptions{From: proxy, ProxyHeader: v1("198.51.100.8")})
	_, err := srv.TryLogin(t, alice, "pw", xmpptest.LoginOptions{From: proxy, ProxyHeader: v1("198.51.100.7")})
	if err == nil || !strings.Contains(err.Error(), "policy-violation") {
		t.Fatalf("a second connection of 198.51.100.7 through the proxy: %v, want policy-violation", err)
	}
	// Version 2, on the direct TLS listener; the login is remembered for
	// the client's network, not the proxy's.
	srv.Login(t, alice, "pw", xmpptest.LoginOptions{From: proxy, DirectTLS: true, ProxyHeader: proxyV2("203.0.113.5", 50000)})
	xmpptest.WaitFor(t, wait, func() error {
		var nets []string
		rows, err := srv.DB().SQL().Query(`SELECT network FROM login_networks WHERE jid = 'alice@localhost' ORDER BY network`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			rows.Scan(&n)
			nets = append(nets, n)
		}
		if got := strings.Join(nets, " "); got != "198.51.100.0/24 203.0.113.0/24" {
			return fmt.Errorf("alice's remembered networks: %q, want the clients' (198.51.100.0/24 203.0.113.0/24)", got)
		}
		return nil
	})
	// A proxy's health check (v2 LOCAL) is served as the proxy itself.
	local := "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
	srv.Login(t, alice, "pw", xmpptest.LoginOptions{From: proxy, ProxyHeader: local, Resource: "check"})

	// A peer that is not a trusted proxy is served directly without a
	// header, and refused with one: it could claim any address.
	srv.Login(t, alice, "pw", xmpptest.LoginOptions{From: "127.0.0.2", Resource: "direct"})
	r := srv.DialRawFrom(t, "127.0.0.2")
	r.Send(v1("192.0.2.1") + srv.Header())
	if got, _ := r.ReadAll(wait); !refused(got, "a PROXY protocol header is not accepted from your address") {
		t.Fatalf("header from an untrusted peer: %q", got)
	}

	// The trusted proxy must send one; a malformed one ends the
	// connection before anything else is read.
	for name, in := range map[string]string{
		"no header":      srv.Header(),
		"bad address":    "PROXY TCP4 198.51.100.300 127.0.0.1 1 2\r\n" + srv.Header(),
		"no CRLF":        "PROXY TCP4 198.51.100.9 127.0.0.1 1 2 " + strings.Repeat("x", 120),
		"bad v2 command": "\r\n\r\n\x00\r\nQUIT\n\x2f\x11\x00\x00" + srv.Header(),
		"truncated":      "PROXY TCP4 198.51",
	} {
		r := srv.DialRawFrom(t, proxy)
		r.Send(in)
		if name == "truncated" {
			r.Conn.(*net.TCPConn).CloseWrite()
		}
		r.Conn.SetReadDeadline(time.Now().Add(wait))
		n, err := r.Conn.Read(make([]byte, 1024))
		if ne, ok := err.(net.Error); n > 0 || err == nil || ok && ne.Timeout() {
			t.Errorf("%s: the server answered %d bytes (%v); want the connection closed without a stream", name, n, err)
		}
	}
}

// unb64 decodes base64 or fails the test.
func unb64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
