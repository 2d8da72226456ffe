// Package xmpptest starts a real xmppd in-process for tests and logs real
// clients into it over TCP: mellium's client for negotiation (STARTTLS,
// SASL, bind), then raw stanzas both ways so that tests assert on exactly
// what a client receives.
package xmpptest

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/server"
	"xmppd.dev/xmppd/storage/storagetest"
)

// Server is a running xmppd for one test.
type Server struct {
	*server.Server
	Config    config.Config
	Domain    string
	Addr      string // c2s STARTTLS address
	DirectTLS string // direct TLS address
	HTTP      string // plain HTTP address; "" unless WithHTTP
	HTTPS     string // HTTPS address; "" unless WithHTTPS
	Component string // [component] address; "" unless WithComponent

	mu      sync.Mutex
	stopped bool
}

// Option changes the configuration before the server starts.
type Option func(*config.Config)

// Start starts xmppd on loopback ports with SQLite in a temporary
// directory and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return StartLog(t, nil, opts...)
}

// StartLog is Start with the server's log also handed to h (nil: none),
// for tests that assert on what is logged; h sees the records of every
// level it enables.
func StartLog(t testing.TB, h slog.Handler, opts ...Option) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	cfg.C2S.Listen = "127.0.0.1:0"
	cfg.C2S.DirectTLSListen = "127.0.0.1:0"
	cfg.HTTP.Listen = ""
	// Federation only when a test asks for it (WithS2S): without it a
	// stanza for another domain gets remote-server-not-found at once.
	cfg.S2S.Enabled = false
	cfg.S2S.Listen, cfg.S2S.DirectTLSListen = "", ""
	cfg.Auth.FailureDelay = config.Duration{Duration: time.Millisecond}
	// Sessions park between almost every stanza, so that every test
	// exercises parking and waking.
	cfg.C2S.ParkAfter = config.Duration{Duration: 5 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	// Not validated: port 0 (any free port) is refused for admins but is
	// what tests need.
	return startConfig(t, cfg, h)
}

// StartConfig starts xmppd with cfg as given (ports, data directory).
func StartConfig(t testing.TB, cfg config.Config) *Server {
	t.Helper()
	return startConfig(t, cfg, nil)
}

func startConfig(t testing.TB, cfg config.Config, extra slog.Handler) *Server {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("XMPPD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})
	if extra != nil {
		h = slog.NewMultiHandler(h, extra)
	}
	log := slog.New(h)
	srv := server.New(cfg, log, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("xmpptest: start: %v", err)
	}
	s := &Server{Server: srv, Config: cfg, Domain: cfg.Server.Domain}
	addrs := srv.Addrs()
	s.Addr = addrs[0].String()
	if len(addrs) > 1 {
		s.DirectTLS = addrs[1].String()
	}
	if a := srv.HTTPAddr(); a != nil {
		s.HTTP = a.String()
	}
	if a := srv.HTTPSAddr(); a != nil {
		s.HTTPS = a.String()
	}
	if a := srv.ComponentAddr(); a != nil {
		s.Component = a.String()
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// WithHTTP turns on the plain HTTP listener, on a free loopback port
// (Server.HTTP), and with it the upload service ([httpupload]).
func WithHTTP() Option {
	return func(c *config.Config) { c.HTTP.Listen = "127.0.0.1:0" }
}

// WithComponent turns on the XEP-0114 listener on a free loopback port
// (Server.Component), accepting a component for domain with secret.
func WithComponent(domain, secret string) Option {
	return func(c *config.Config) {
		c.Component.Listen = "127.0.0.1:0"
		c.Component.Services = append(c.Component.Services, config.ComponentService{Domain: domain, Secret: secret})
	}
}

// WithHTTPS turns on the HTTPS listener, on a free loopback port
// (Server.HTTPS). Without public_url, upload URLs then use it.
func WithHTTPS() Option {
	return func(c *config.Config) { c.HTTP.TLSListen = "127.0.0.1:0" }
}

func (s *Server) stop(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Server.Shutdown(ctx); err != nil {
		t.Errorf("xmpptest: shutdown did not finish: %v", err)
	}
	if n := s.Router().SessionCount(); n != 0 {
		t.Errorf("xmpptest: %d sessions still bound after shutdown", n)
	}
}

// Stop shuts the server down now (for restart tests).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t)
}

// At describes an xmppd this test did not start in-process (another
// process, say) listening for STARTTLS clients on addr and serving domain.
// Only Login, TryLogin, DialRaw, DialTLS and Header work on it; accounts
// are made some other way (the xmppd command).
func At(addr, domain string) *Server {
	return &Server{Domain: domain, Addr: addr, stopped: true}
}

// testWriter sends the server's log to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// AddUser creates an account.
func (s *Server) AddUser(t testing.TB, local, password string) jid.JID {
	t.Helper()
	j := jid.MustParse(local + "@" + s.Domain)
	if err := s.Auth().Create(context.Background(), j, password); err != nil {
		t.Fatalf("xmpptest: add user %s: %v", j, err)
	}
	return j
}

// Login options.
type LoginOptions struct {
	Resource  string
	Mechs     []sasl.Mechanism // default SCRAM-SHA-256
	DirectTLS bool
	TLS       *tls.Config // default: InsecureSkipVerify, TLS 1.2+
	// From is the loopback address to connect from (127.0.0.2, …), so
	// that tests can stand for clients at different addresses; "" lets
	// the system choose.
	From string
	// ProxyHeader is sent first, before TLS or XML: a PROXY protocol
	// header, for tests of a server behind a proxy.
	ProxyHeader string
}

// dialer returns a dialer from the loopback address from ("" for any).
func dialer(from string) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d
}

// Client is a logged-in test client. Stanzas it receives are queued and
// read with Next or Expect.
type Client struct {
	t    testing.TB
	JID  jid.JID
	S    *xmpp.Session
	conn net.Conn
	in   chan Element
	done chan struct{}
	err  error // why reading stopped; read after done
	mu   sync.Mutex
	wmu  sync.Mutex // serialises writes: the reading goroutine answers caps queries

	caps        map[string]string // caps node#ver → disco#info answer; guarded by mu
	capsQueries int               // caps queries answered; guarded by mu

	syncN int // owned by the test goroutine
}

// Element is one received top-level element.
type Element struct {
	Name  xml.Name
	Attrs map[string]string
	Inner string // the raw XML between the start and end tags
	Raw   string // the whole element as received (re-serialised)
}

// Attr returns an attribute.
func (e Element) Attr(name string) string { return e.Attrs[name] }

// Contains reports whether the element's serialisation contains s.
func (e Element) Contains(s string) bool { return strings.Contains(e.Raw, s) }

// Login connects and negotiates as user with password.
func (s *Server) Login(t testing.TB, user jid.JID, password string, o LoginOptions) *Client {
	t.Helper()
	c, err := s.TryLogin(t, user, password, o)
	if err != nil {
		t.Fatalf("xmpptest: login %s: %v", user, err)
	}
	return c
}

// TryLogin is Login returning the negotiation error.
func (s *Server) TryLogin(t testing.TB, user jid.JID, password string, o LoginOptions) (*Client, error) {
	t.Helper()
	if len(o.Mechs) == 0 {
		o.Mechs = []sasl.Mechanism{sasl.ScramSha256}
	}
	tlsCfg := o.TLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = s.Domain
	}
	addr := s.Addr
	var conn net.Conn
	var err error
	if o.DirectTLS {
		addr = s.DirectTLS
	}
	conn, err = dialer(o.From).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.ProxyHeader != "" {
		if _, err := io.WriteString(conn, o.ProxyHeader); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if o.DirectTLS {
		c := tlsCfg.Clone()
		c.NextProtos = []string{"xmpp-client"}
		tc := tls.Client(conn, c)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	feats := []xmpp.StreamFeature{}
	if !o.DirectTLS {
		feats = append(feats, xmpp.StartTLS(tlsCfg))
	}
	feats = append(feats, xmpp.SASL("", password, o.Mechs...), xmpp.BindResource())
	if o.Resource != "" {
		feats[len(feats)-1] = bindResource(o.Resource)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	xs, err := xmpp.NewSession(ctx, user.Domain(), user, conn, 0, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: feats}
	}))
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &Client{t: t, JID: xs.LocalAddr(), S: xs, conn: xs.Conn(), in: make(chan Element, 10000), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	r := c.S.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		// innerxml needs a decoder over bytes; this one reads tokens, so
		// the element is re-serialised (namespaces declared where they
		// change, attribute values in single quotes).
		enc := xmlenc.Encoder{Default: start.Name.Space}
		for depth := 1; depth > 0; {
			tok, err := d.Token()
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
				if depth == 0 {
					continue
				}
			}
			enc.EncodeToken(xml.CopyToken(tok))
		}
		e := Element{Name: start.Name, Attrs: map[string]string{}, Inner: string(enc.Buf)}
		var b strings.Builder
		b.WriteString("<" + start.Name.Local)
		for _, a := range start.Attr {
			if a.Name.Space == "" {
				e.Attrs[a.Name.Local] = a.Value
			}
			fmt.Fprintf(&b, " %s='%s'", a.Name.Local, a.Value)
		}
		b.WriteString(">" + e.Inner + "</" + start.Name.Local + ">")
		e.Raw = b.String()
		if c.answerCaps(e) {
			continue
		}
		select {
		case c.in <- e:
		default:
			c.t.Errorf("xmpptest: %s: receive queue full, dropping %s", c.JID, e.Raw)
		}
	}
}

// Send writes raw XML to the stream.
func (c *Client) Send(format string, args ...any) {
	c.t.Helper()
	if err := c.write(fmt.Sprintf(format, args...)); err != nil {
		c.t.Fatalf("xmpptest: %s: send: %v", c.JID, err)
	}
}

// write writes s to the stream in one Write.
func (c *Client) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.conn, s)
	return err
}

// Next returns the next element, failing the test after timeout.
func (c *Client) Next(timeout time.Duration) Element {
	c.t.Helper()
	select {
	case e := <-c.in:
		return e
	case <-time.After(timeout):
		c.t.Fatalf("xmpptest: %s: nothing received within %v (stream: %v)", c.JID, timeout, c.Err())
	}
	return Element{}
}

// Expect returns the first element for which match is true, skipping the
// others, and fails the test after timeout.
func (c *Client) Expect(timeout time.Duration, what string, match func(Element) bool) Element {
	c.t.Helper()
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case e := <-c.in:
			if match(e) {
				return e
			}
			seen = append(seen, e.Raw)
		case <-deadline:
			c.t.Fatalf("xmpptest: %s: no %s within %v; received instead: %q (stream: %v)", c.JID, what, timeout, seen, c.Err())
			return Element{}
		}
	}
}

// ExpectNone fails if anything matching arrives within d.
func (c *Client) ExpectNone(d time.Duration, what string, match func(Element) bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-c.in:
			if match(e) {
				c.t.Fatalf("xmpptest: %s: unexpected %s: %s", c.JID, what, e.Raw)
			}
		case <-deadline:
			return
		}
	}
}

// Elements is the queue Next and Expect read, for tests that read with
// their own deadline and rules.
func (c *Client) Elements() <-chan Element { return c.in }

// Done is closed when the client's stream has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the stream ended (nil while it runs).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the stream cleanly.
func (c *Client) Close() {
	c.write("</stream:stream>")
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
	}
	c.conn.Close()
}

// IsStanza matches elements by kind and type ("" matches any type).
func IsStanza(kind, typ string) func(Element) bool {
	return func(e Element) bool {
		return e.Name.Local == kind && (typ == "" || e.Attrs["type"] == typ)
	}
}

// WaitFor polls f until it returns nil or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("xmpptest: condition not met within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Raw is a plain TCP connection for tests that speak XML by hand.
type Raw struct {
	t    testing.TB
	Conn net.Conn
	buf  strings.Builder
}

// DialRaw opens a plain TCP connection to the STARTTLS port.
func (s *Server) DialRaw(t testing.TB) *Raw {
	t.Helper()
	return s.DialRawFrom(t, "")
}

// DialRawFrom is DialRaw from the loopback address from ("" for any).
func (s *Server) DialRawFrom(t testing.TB, from string) *Raw {
	t.Helper()
	c, err := dialer(from).Dial("tcp", s.Addr)
	if err != nil {
		t.Fatalf("xmpptest: dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{t: t, Conn: c}
}

// Send writes s.
func (r *Raw) Send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.Conn, s); err != nil {
		r.t.Fatalf("xmpptest: raw send: %v", err)
	}
}

// ReadUntil reads until the received text contains want or the connection
// closes or timeout passes; it returns everything received so far.
func (r *Raw) ReadUntil(want string, timeout time.Duration) string {
	r.t.Helper()
	r.Conn.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	for !strings.Contains(r.buf.String(), want) {
		n, err := r.Conn.Read(b)
		r.buf.Write(b[:n])
		if err != nil {
			break
		}
	}
	return r.buf.String()
}

// ReadAll reads until the server closes the connection or timeout passes.
func (r *Raw) ReadAll(timeout time.Duration) (string, bool) {
	r.t.Helper()
	r.Conn.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	for {
		n, err := r.Conn.Read(b)
		r.buf.Write(b[:n])
		if err == io.EOF {
			return r.buf.String(), true
		}
		if err != nil {
			return r.buf.String(), false
		}
	}
}

// Header is a client stream header for the test server's domain.
func (s *Server) Header() string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" + s.Domain + "'>"
}

// Reset forgets what was received so far.
func (r *Raw) Reset() { r.buf.Reset() }

// DialTLS opens a connection and negotiates STARTTLS by hand; it returns
// with the post-TLS stream open and its features read, ready for SASL.
func (s *Server) DialTLS(t testing.TB) *Raw {
	t.Helper()
	return s.DialTLSFrom(t, "")
}

// DialTLSFrom is DialTLS from the loopback address from ("" for any).
func (s *Server) DialTLSFrom(t testing.TB, from string) *Raw {
	t.Helper()
	r := s.DialRawFrom(t, from)
	r.Send(s.Header())
	if got := r.ReadUntil("</stream:features>", 5*time.Second); !strings.Contains(got, "starttls") {
		t.Fatalf("xmpptest: no STARTTLS offered: %q", got)
	}
	r.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if got := r.ReadUntil("<proceed", 5*time.Second); !strings.Contains(got, "<proceed") {
		t.Fatalf("xmpptest: STARTTLS refused: %q", got)
	}
	tc := tls.Client(r.Conn, &tls.Config{InsecureSkipVerify: true, ServerName: s.Domain})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("xmpptest: TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	r.Conn = tc
	r.Reset()
	r.Send(s.Header())
	r.ReadUntil("</stream:features>", 5*time.Second)
	r.Reset()
	return r
}

// DialDirectTLS opens a connection to the direct TLS port (XEP-0368) and
// completes the TLS handshake; the stream is not opened yet.
func (s *Server) DialDirectTLS(t testing.TB) *Raw {
	t.Helper()
	c, err := tls.DialWithDialer(dialer(""), "tcp", s.DirectTLS,
		&tls.Config{InsecureSkipVerify: true, ServerName: s.Domain, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatalf("xmpptest: dial direct TLS: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{t: t, Conn: c}
}

// bindResource is the client side of resource binding with a requested
// resource. mellium v0.23.0's own client sends an empty <resource/> when
// asked for one, so tests that choose their resource use this.
func bindResource(res string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-bind", Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List:       func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) { return true, nil },
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			var b strings.Builder
			xml.EscapeText(&b, []byte(res))
			if _, err := io.WriteString(s.Conn(), "<iq type='set' id='bind-1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+b.String()+"</resource></bind></iq>"); err != nil {
				return 0, nil, err
			}
			r := s.TokenReader()
			defer r.Close()
			d := xml.NewTokenDecoder(r)
			var reply struct {
				Type string `xml:"type,attr"`
				JID  string `xml:"bind>jid"`
			}
			for {
				tok, err := d.Token()
				if err != nil {
					return 0, nil, err
				}
				if start, ok := tok.(xml.StartElement); ok {
					if err := d.DecodeElement(&reply, &start); err != nil {
						return 0, nil, err
					}
					break
				}
			}
			if reply.Type != "result" {
				return 0, nil, fmt.Errorf("xmpptest: bind refused (%s)", reply.Type)
			}
			j, err := jid.Parse(reply.JID)
			if err != nil {
				return 0, nil, err
			}
			s.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}

// Sync pings the server and returns everything received before the
// answer. The server handles one client's stanzas in order, so whatever
// an earlier stanza of this client (or a stanza another client synced
// before) caused has been delivered by then.
func (c *Client) Sync() []Element {
	c.t.Helper()
	c.syncN++
	id := fmt.Sprintf("sync-%d", c.syncN)
	c.Send("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id, c.JID.Domainpart())
	var got []Element
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-c.in:
			if e.Name.Local == "iq" && e.Attr("id") == id {
				return got
			}
			got = append(got, e)
		case <-deadline:
			c.t.Fatalf("xmpptest: %s: no answer to sync ping; received %d elements (stream: %v)", c.JID, len(got), c.Err())
			return nil
		}
	}
}

// WithPostgres runs the server on a fresh PostgreSQL database (see
// storagetest.Postgres: skipped without PostgreSQL, fatal under CI).
func WithPostgres(t testing.TB) Option {
	t.Helper()
	e := storagetest.Postgres(t)
	e.Require(t)
	return func(c *config.Config) {
		c.Storage.Driver = e.Driver
		c.Storage.DSN = e.DSN
	}
}
