package c2s

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// The failures the server sends, byte for byte.
const (
	failNotAuthorized  = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>`
	failInvalidMech    = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>`
	failAborted        = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>`
	failIncorrectEnc   = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/></failure>`
	failInvalidAuthzID = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-authzid/></failure>`
	failMalformed      = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><malformed-request/></failure>`
	emptyChallenge     = `<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
)

const (
	alicePassword = "correct horse battery staple"
	wrongPassword = "Tr0ub4dor&3"
)

var testDomain = jid.MustParse("example.org")

var _ CredentialStore = (*fakeStore)(nil)

// fakeStore is an in-memory CredentialStore whose SCRAM keys are derived
// with xdg-go, as the account store derives them.
type fakeStore struct {
	fault     error                                    // when set, every call fails with it
	passwords map[string]string                        // bare JID → password
	creds     map[string]map[string]storage.Credential // bare JID → mechanism → keys
}

func newFakeStore(t *testing.T, users map[string]string) *fakeStore {
	t.Helper()
	s := &fakeStore{passwords: map[string]string{}, creds: map[string]map[string]storage.Credential{}}
	for local, pw := range users {
		j, err := jid.New(local, testDomain.Domainpart(), "")
		if err != nil {
			t.Fatal(err)
		}
		s.passwords[j.String()] = pw
		s.creds[j.String()] = map[string]storage.Credential{}
		for mech, h := range map[string]scram.HashGeneratorFcn{mechSCRAMSHA1: scram.SHA1, mechSCRAMSHA256: scram.SHA256} {
			salt := make([]byte, fakeSaltLen)
			rand.Read(salt)
			c, err := h.NewClient(j.Localpart(), pw, "")
			if err != nil {
				t.Fatal(err)
			}
			sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: fakeIterations})
			if err != nil {
				t.Fatal(err)
			}
			s.creds[j.String()][mech] = storage.Credential{Mechanism: mech, Salt: salt, Iterations: sc.Iters, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}
		}
	}
	return s
}

func (s *fakeStore) Credential(ctx context.Context, j jid.JID, mechanism string) (storage.Credential, error) {
	if s.fault != nil {
		return storage.Credential{}, s.fault
	}
	c, ok := s.creds[j.Bare().String()][mechanism]
	if !ok {
		return storage.Credential{}, fmt.Errorf("fake store: %s: %w", j, auth.ErrUnknownUser)
	}
	return c, nil
}

func (s *fakeStore) VerifyPlain(ctx context.Context, j jid.JID, password string) error {
	if s.fault != nil {
		return s.fault
	}
	want, ok := s.passwords[j.Bare().String()]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 {
		return fmt.Errorf("fake store: %s: %w", j, auth.ErrNotAuthorized)
	}
	return nil
}

// syncBuffer collects log output from the server goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testTLSConfig returns a server config with a throwaway self-signed
// certificate for example.org.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.org"},
		DNSNames:     []string{"example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
}

// serverOpts configures startServer.
type serverOpts struct {
	store     CredentialStore
	throttle  *authThrottle
	remoteIP  string
	plaintext bool // no STARTTLS; SASL offered without TLS (AllowInsecure)
}

// serverResult is how one server-side negotiation ended.
type serverResult struct {
	user jid.JID // passed to OnSuccess; zero if it was not called
	err  error   // from the negotiation
}

// startServer accepts one connection on loopback and negotiates it with
// STARTTLS, the SASL feature under test, XEP-0440 and bind. It returns the
// address, the server's log and the outcome.
func startServer(t *testing.T, o serverOpts) (string, *syncBuffer, <-chan serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tlsCfg := testTLSConfig(t)
	endPoint := endPointBinding(tlsCfg.Certificates[0].Leaf)
	fakeKey := make([]byte, 32)
	rand.Read(fakeKey)
	if o.remoteIP == "" {
		o.remoteIP = "192.0.2.1"
	}

	result := make(chan serverResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			result <- serverResult{err: err}
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv := &Server{TLS: tlsCfg, RequireTLS: !o.plaintext, Limits: Limits{MaxStanzaBytes: 64 << 10}}
		n := &negotiation{
			srv:      srv,
			raw:      conn,
			g:        newGuardConn(conn, 64<<10),
			domain:   testDomain,
			offerTLS: !o.plaintext,
			bound:    func(jid.JID) error { return nil },
			sasl: saslConfig{
				Domain:        testDomain,
				Store:         o.store,
				Throttle:      o.throttle,
				RemoteIP:      o.remoteIP,
				AllowInsecure: o.plaintext,
				Log:           log,
				FakeSaltKey:   fakeKey,
				EndPoint:      endPoint,
			},
		}
		err = n.run(ctx)
		user := n.user
		result <- serverResult{user: user, err: err}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server goroutine did not finish")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
		for _, secret := range []string{alicePassword, wrongPassword} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("server log contains a password")
			}
		}
	})
	return ln.Addr().String(), logs, result
}

// waitResult returns the server's outcome.
func waitResult(t *testing.T, result <-chan serverResult) serverResult {
	t.Helper()
	select {
	case r := <-result:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the server")
		return serverResult{}
	}
}

// melliumLogin logs in with mellium's client: STARTTLS, SASL, bind.
func melliumLogin(t *testing.T, addr, user, pass string, tlsCfg *tls.Config, mechs ...sasl.Mechanism) error {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = xmpp.NewClientSession(ctx, jid.MustParse(user+"@example.org"), conn,
		xmpp.StartTLS(tlsCfg), xmpp.SASL("", pass, mechs...), xmpp.BindResource())
	return err
}

func TestSASLMellium(t *testing.T) {
	all := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}
	tests := []struct {
		name    string
		mechs   []sasl.Mechanism
		maxTLS  uint16
		pass    string
		wantLog string // in the server log; "" for a failure
	}{
		{name: "SCRAM-SHA-256-PLUS TLS 1.3", mechs: all, wantLog: "mechanism=SCRAM-SHA-256-PLUS channel_binding=tls-exporter"},
		{name: "SCRAM-SHA-256-PLUS TLS 1.2", mechs: all, maxTLS: tls.VersionTLS12, wantLog: "mechanism=SCRAM-SHA-256-PLUS channel_binding=tls-unique"},
		{name: "SCRAM-SHA-1-PLUS TLS 1.3", mechs: []sasl.Mechanism{sasl.ScramSha1Plus}, wantLog: "mechanism=SCRAM-SHA-1-PLUS channel_binding=tls-exporter"},
		{name: "SCRAM-SHA-1-PLUS TLS 1.2", mechs: []sasl.Mechanism{sasl.ScramSha1Plus}, maxTLS: tls.VersionTLS12, wantLog: "mechanism=SCRAM-SHA-1-PLUS channel_binding=tls-unique"},
		{name: "SCRAM-SHA-256", mechs: []sasl.Mechanism{sasl.ScramSha256}, wantLog: `mechanism=SCRAM-SHA-256 channel_binding=""`},
		{name: "SCRAM-SHA-1", mechs: []sasl.Mechanism{sasl.ScramSha1}, wantLog: `mechanism=SCRAM-SHA-1 channel_binding=""`},
		{name: "PLAIN", mechs: []sasl.Mechanism{sasl.Plain}, wantLog: `mechanism=PLAIN channel_binding=""`},
		{name: "PLAIN TLS 1.2", mechs: []sasl.Mechanism{sasl.Plain}, maxTLS: tls.VersionTLS12, wantLog: `mechanism=PLAIN channel_binding=""`},
		{name: "wrong password SCRAM-SHA-256-PLUS", mechs: all, pass: wrongPassword},
		{name: "wrong password PLAIN", mechs: []sasl.Mechanism{sasl.Plain}, pass: wrongPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newFakeStore(t, map[string]string{"alice": alicePassword})
			addr, logs, result := startServer(t, serverOpts{store: store})
			pass := alicePassword
			if tc.pass != "" {
				pass = tc.pass
			}
			err := melliumLogin(t, addr, "alice", pass, &tls.Config{InsecureSkipVerify: true, MaxVersion: tc.maxTLS}, tc.mechs...)
			if tc.wantLog == "" {
				if err == nil {
					t.Fatal("login succeeded with a wrong password")
				}
				r := waitResult(t, result)
				if !r.user.Equal(jid.JID{}) {
					t.Errorf("OnSuccess(%s) after a wrong password", r.user)
				}
				if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "condition=not-authorized") {
					t.Errorf("no Warn for the failure in the log")
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			r := waitResult(t, result)
			if r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			if want := jid.MustParse("alice@example.org"); !r.user.Equal(want) {
				t.Errorf("OnSuccess(%s), want %s", r.user, want)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q", tc.wantLog)
			}
		})
	}
}

// rawClient speaks the stream by hand, so that tests can retry, abort,
// tamper with channel bindings and compare the server's bytes.
type rawClient struct {
	t     *testing.T
	conn  net.Conn
	d     *xml.Decoder
	rec   *bytes.Buffer // every byte d has read, for slicing raw elements
	feats rawFeatures
	cs    tls.ConnectionState
}

// rawFeatures is the part of <stream:features/> the tests look at.
type rawFeatures struct {
	Mechanisms []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	Bindings   []struct {
		Type string `xml:"type,attr"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding>channel-binding"`
}

func (f rawFeatures) bindingTypes() []string {
	var ts []string
	for _, b := range f.Bindings {
		ts = append(ts, b.Type)
	}
	return ts
}

// dialRaw connects, negotiates STARTTLS unless tlsCfg is nil, and reads the
// features of the stream on which SASL happens.
func dialRaw(t *testing.T, addr string, tlsCfg *tls.Config) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &rawClient{t: t, conn: conn}
	c.open()
	if tlsCfg != nil {
		c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
		if name, raw := c.next(); name.Local != "proceed" {
			t.Fatalf("STARTTLS: got %s", raw)
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c.conn, c.cs = tc, tc.ConnectionState()
		c.open()
	}
	return c
}

// open sends a stream header and reads the answer up to the features.
func (c *rawClient) open() {
	c.t.Helper()
	c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>`)
	c.rec = &bytes.Buffer{}
	c.d = xml.NewDecoder(io.TeeReader(c.conn, c.rec))
	for {
		tok, err := c.d.Token()
		if err != nil {
			c.t.Fatalf("read stream header: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "stream" {
			break
		}
	}
	for {
		tok, err := c.d.Token()
		if err != nil {
			c.t.Fatalf("read features: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			c.feats = rawFeatures{}
			if err := c.d.DecodeElement(&c.feats, &s); err != nil {
				c.t.Fatalf("decode features: %v", err)
			}
			return
		}
	}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next element from the server and its exact bytes.
func (c *rawClient) next() (xml.Name, string) {
	c.t.Helper()
	for {
		off := c.d.InputOffset()
		tok, err := c.d.Token()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			continue
		case xml.StartElement:
			if err := c.d.Skip(); err != nil {
				c.t.Fatalf("read: %v", err)
			}
			return t.Name, string(c.rec.Bytes()[off:c.d.InputOffset()])
		default:
			c.t.Fatalf("unexpected %T %v", tok, tok)
		}
	}
}

// auth sends <auth/>; nil initial sends no initial response at all.
func (c *rawClient) auth(mech string, initial []byte) {
	c.t.Helper()
	payload := ""
	switch {
	case initial == nil:
	case len(initial) == 0:
		payload = "="
	default:
		payload = base64.StdEncoding.EncodeToString(initial)
	}
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` + payload + `</auth>`)
}

func (c *rawClient) response(data []byte) {
	c.t.Helper()
	c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString(data) + `</response>`)
}

// elementData decodes the base64 text of a raw <challenge/> or <success/>.
func elementData(t *testing.T, raw string) []byte {
	t.Helper()
	var el struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal([]byte(raw), &el); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	b, err := base64.StdEncoding.DecodeString(el.Text)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return b
}

// plain attempts PLAIN and returns the server's answer.
func (c *rawClient) plain(authzID, user, pass string) string {
	c.t.Helper()
	c.auth(mechPlain, []byte(authzID+"\x00"+user+"\x00"+pass))
	_, raw := c.next()
	return raw
}

// scramConv returns an xdg-go client conversation for user and pass.
func scramConv(t *testing.T, mech, user, pass, authzID string) *scram.Client {
	t.Helper()
	h := scram.SHA256
	if strings.HasPrefix(mech, mechSCRAMSHA1) && !strings.HasPrefix(mech, mechSCRAMSHA256) {
		h = scram.SHA1
	}
	cl, err := h.NewClient(user, pass, authzID)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// scram runs a SCRAM exchange and returns the server's last answer. On
// <success/> it checks the server's signature.
func (c *rawClient) scram(mech string, conv *scram.ClientConversation) string {
	c.t.Helper()
	first, err := conv.Step("")
	if err != nil {
		c.t.Fatal(err)
	}
	c.auth(mech, []byte(first))
	name, raw := c.next()
	if name.Local != "challenge" {
		return raw
	}
	final, err := conv.Step(string(elementData(c.t, raw)))
	if err != nil {
		c.t.Fatalf("client-final: %v", err)
	}
	c.response([]byte(final))
	name, raw = c.next()
	if name.Local == "success" {
		if _, err := conv.Step(string(elementData(c.t, raw))); err != nil || !conv.Valid() {
			c.t.Errorf("server signature rejected: %v", err)
		}
	}
	return raw
}

// endPoint returns the client's tls-server-end-point binding: a hash of
// the certificate the server presented.
func (c *rawClient) endPoint() scram.ChannelBinding {
	c.t.Helper()
	cb, err := scram.NewTLSServerEndpointBinding(&c.cs)
	if err != nil {
		c.t.Fatal(err)
	}
	return cb
}

// exporter returns the client's tls-exporter binding.
func (c *rawClient) exporter() scram.ChannelBinding {
	c.t.Helper()
	cb, err := scram.NewTLSExporterBinding(&c.cs)
	if err != nil {
		c.t.Fatal(err)
	}
	return cb
}

func isSuccess(raw string) bool {
	return strings.HasPrefix(raw, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'`)
}

// want fails the test unless got is want.
func want(t *testing.T, step, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", step, got, want)
	}
}

func TestSASLRaw(t *testing.T) {
	tls13 := &tls.Config{InsecureSkipVerify: true}
	tls12 := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	alice := jid.MustParse("alice@example.org")
	tests := []struct {
		name      string
		plaintext bool
		tls       *tls.Config
		run       func(t *testing.T, c *rawClient)
		wantUser  jid.JID // passed to OnSuccess; zero: never
		wantErr   error   // the stream error the negotiation ends with
	}{{
		name: "TLS 1.3 lists -PLUS, PLAIN and tls-exporter",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			if got, want := c.feats.Mechanisms, []string{mechSCRAMSHA256P, mechSCRAMSHA1P, mechSCRAMSHA256, mechSCRAMSHA1, mechPlain}; !slices.Equal(got, want) {
				t.Errorf("mechanisms %q, want %q", got, want)
			}
			if got, want := c.feats.bindingTypes(), []string{"tls-exporter", "tls-server-end-point"}; !slices.Equal(got, want) {
				t.Errorf("channel bindings %q, want %q", got, want)
			}
		},
	}, {
		name: "TLS 1.2 lists tls-unique",
		tls:  tls12,
		run: func(t *testing.T, c *rawClient) {
			if got, want := c.feats.Mechanisms, []string{mechSCRAMSHA256P, mechSCRAMSHA1P, mechSCRAMSHA256, mechSCRAMSHA1, mechPlain}; !slices.Equal(got, want) {
				t.Errorf("mechanisms %q, want %q", got, want)
			}
			if got, want := c.feats.bindingTypes(), []string{"tls-unique", "tls-server-end-point"}; !slices.Equal(got, want) {
				t.Errorf("channel bindings %q, want %q", got, want)
			}
		},
	}, {
		name:      "no TLS: neither PLAIN nor -PLUS is listed, SCRAM works",
		plaintext: true,
		run: func(t *testing.T, c *rawClient) {
			if got, want := c.feats.Mechanisms, []string{mechSCRAMSHA256, mechSCRAMSHA1}; !slices.Equal(got, want) {
				t.Errorf("mechanisms %q, want %q", got, want)
			}
			if len(c.feats.Bindings) != 0 {
				t.Errorf("channel bindings listed without TLS: %q", c.feats.bindingTypes())
			}
			want(t, "PLAIN", c.plain("", "alice", alicePassword), failInvalidMech)
			if raw := c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()); !isSuccess(raw) {
				t.Errorf("SCRAM-SHA-256: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "tls-server-end-point on TLS 1.3",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			if raw := c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversationWithChannelBinding(c.endPoint())); !isSuccess(raw) {
				t.Errorf("SCRAM-SHA-256-PLUS with tls-server-end-point: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "tls-server-end-point on TLS 1.2",
		tls:  tls12,
		run: func(t *testing.T, c *rawClient) {
			if raw := c.scram(mechSCRAMSHA1P, scramConv(t, mechSCRAMSHA1P, "alice", alicePassword, "").NewConversationWithChannelBinding(c.endPoint())); !isSuccess(raw) {
				t.Errorf("SCRAM-SHA-1-PLUS with tls-server-end-point: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "wrong password and unknown user get the same bytes",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			want(t, "SCRAM wrong password", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", wrongPassword, "").NewConversation()), failNotAuthorized)
			want(t, "SCRAM unknown user", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "mallory", wrongPassword, "").NewConversation()), failNotAuthorized)
			want(t, "SCRAM-SHA-1 unknown user", c.scram(mechSCRAMSHA1, scramConv(t, mechSCRAMSHA1, "mallory", wrongPassword, "").NewConversation()), failNotAuthorized)
			want(t, "SCRAM name that is no localpart", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "a@b", wrongPassword, "").NewConversation()), failNotAuthorized)
			want(t, "PLAIN wrong password", c.plain("", "alice", wrongPassword), failNotAuthorized)
			want(t, "PLAIN unknown user", c.plain("", "mallory", wrongPassword), failNotAuthorized)
		},
	}, {
		name: "retry on the same stream after a failure",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			want(t, "first try", c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", wrongPassword, "").NewConversationWithChannelBinding(c.exporter())), failNotAuthorized)
			if raw := c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversationWithChannelBinding(c.exporter())); !isSuccess(raw) {
				t.Errorf("second try: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "invalid mechanism, then PLAIN",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			c.auth("DIGEST-MD5", nil)
			_, raw := c.next()
			want(t, "DIGEST-MD5", raw, failInvalidMech)
			if raw := c.plain("", "alice", alicePassword); raw != `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` {
				t.Errorf("PLAIN: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "abort mid-exchange and outside one, then SCRAM",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			first, _ := scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation().Step("")
			c.auth(mechSCRAMSHA256, []byte(first))
			if name, raw := c.next(); name.Local != "challenge" {
				t.Fatalf("want a challenge, got %s", raw)
			}
			c.send(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
			_, raw := c.next()
			want(t, "abort in exchange", raw, failAborted)
			c.send(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
			_, raw = c.next()
			want(t, "abort alone", raw, failAborted)
			if raw := c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()); !isSuccess(raw) {
				t.Errorf("after abort: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "auth without initial response gets an empty challenge",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			conv := scramConv(t, mechSCRAMSHA1, "alice", alicePassword, "").NewConversation()
			c.auth(mechSCRAMSHA1, nil)
			_, raw := c.next()
			want(t, "empty auth", raw, emptyChallenge)
			first, _ := conv.Step("")
			c.response([]byte(first))
			_, raw = c.next()
			final, err := conv.Step(string(elementData(t, raw)))
			if err != nil {
				t.Fatal(err)
			}
			c.response([]byte(final))
			if _, raw = c.next(); !isSuccess(raw) {
				t.Errorf("final: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "bad encodings and malformed messages",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>not*base64</auth>`)
			_, raw := c.next()
			want(t, "bad base64", raw, failIncorrectEnc)
			c.auth(mechPlain, []byte("alice\x00"+alicePassword))
			_, raw = c.next()
			want(t, "PLAIN with two fields", raw, failMalformed)
			c.auth(mechSCRAMSHA256, []byte{})
			_, raw = c.next()
			want(t, "empty SCRAM message", raw, failMalformed)
			c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</response>`)
			_, raw = c.next()
			want(t, "response without auth", raw, failMalformed)
		},
	}, {
		name: "channel binding misuse",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			wrongCB := scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: make([]byte, 32)}
			want(t, "tls-exporter with wrong data",
				c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversationWithChannelBinding(wrongCB)), failNotAuthorized)
			want(t, "tls-unique on TLS 1.3",
				c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversationWithChannelBinding(scram.NewTLSUniqueBinding([]byte("x")))), failNotAuthorized)
			want(t, "-PLUS without binding (n)",
				c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversation()), failNotAuthorized)
			want(t, "downgrade: y while -PLUS is listed",
				c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversationAdvertisingChannelBinding()), failNotAuthorized)
			want(t, "p with a non-PLUS mechanism",
				c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversationWithChannelBinding(c.exporter())), failNotAuthorized)
		},
	}, {
		name:      "y is fine when -PLUS is not listed",
		plaintext: true,
		run: func(t *testing.T, c *rawClient) {
			if raw := c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversationAdvertisingChannelBinding()); !isSuccess(raw) {
				t.Errorf("y without -PLUS: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "authzid",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			want(t, "PLAIN as bob", c.plain("bob@example.org", "alice", alicePassword), failInvalidAuthzID)
			want(t, "SCRAM as bob", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "bob@example.org").NewConversation()), failInvalidAuthzID)
			if raw := c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "alice@example.org").NewConversation()); !isSuccess(raw) {
				t.Errorf("SCRAM as alice: %s", raw)
			}
		},
		wantUser: alice,
	}, {
		name: "a stanza during SASL ends the stream",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			want(t, "PLAIN", c.plain("", "alice", wrongPassword), failNotAuthorized)
			c.send(`<message xmlns='jabber:client' to='bob@example.org'><body>hi</body></message>`)
		},
		wantErr: stream.NotAuthorized,
	}, {
		name: "an oversized payload ends the stream",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", maxSASLPayload+4) + `</auth>`)
		},
		wantErr: stream.PolicyViolation,
	}, {
		name: "ten failures end the stream",
		tls:  tls13,
		run: func(t *testing.T, c *rawClient) {
			for i := range maxSASLFailures {
				c.auth("X-NOPE", nil)
				_, raw := c.next()
				want(t, fmt.Sprint("attempt ", i+1), raw, failInvalidMech)
			}
		},
		wantErr: stream.PolicyViolation,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newFakeStore(t, map[string]string{"alice": alicePassword, "bob": "bob's password"})
			addr, _, result := startServer(t, serverOpts{store: store, plaintext: tc.plaintext})
			c := dialRaw(t, addr, tc.tls)
			tc.run(t, c)
			c.conn.Close()
			r := waitResult(t, result)
			if !r.user.Equal(tc.wantUser) {
				t.Errorf("OnSuccess(%q), want %q", r.user, tc.wantUser)
			}
			if tc.wantErr != nil && !errors.Is(r.err, tc.wantErr) {
				t.Errorf("server ended with %v, want %v", r.err, tc.wantErr)
			}
		})
	}
}

// TestSASLUnknownUserLooksReal checks that the server-first-message for an
// unknown user looks like one for a real account, and stays the same when
// asked again.
func TestSASLUnknownUserLooksReal(t *testing.T) {
	store := newFakeStore(t, map[string]string{"alice": alicePassword})
	addr, _, _ := startServer(t, serverOpts{store: store})
	c := dialRaw(t, addr, &tls.Config{InsecureSkipVerify: true})

	serverFirst := func(user string) (salt []byte, iters string) {
		t.Helper()
		first, _ := scramConv(t, mechSCRAMSHA256, user, "x", "").NewConversation().Step("")
		c.auth(mechSCRAMSHA256, []byte(first))
		_, raw := c.next()
		c.send(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
		c.next()
		for _, f := range strings.Split(string(elementData(t, raw)), ",") {
			switch {
			case strings.HasPrefix(f, "s="):
				salt, _ = base64.StdEncoding.DecodeString(f[2:])
			case strings.HasPrefix(f, "i="):
				iters = f[2:]
			}
		}
		return salt, iters
	}
	realSalt, realIters := serverFirst("alice")
	s1, i1 := serverFirst("mallory")
	s2, i2 := serverFirst("Mallory") // the same account after case mapping
	if len(s1) != len(realSalt) || i1 != realIters {
		t.Errorf("unknown user: %d-byte salt, i=%s; real: %d-byte salt, i=%s", len(s1), i1, len(realSalt), realIters)
	}
	if !bytes.Equal(s1, s2) || i1 != i2 {
		t.Errorf("unknown user's salt changed between attempts")
	}
}

// TestSASLStoreFault checks that a store that cannot answer gets
// temporary-auth-failure, which the throttle does not count.
func TestSASLStoreFault(t *testing.T) {
	const unavailable = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/><text xml:lang='en'>Authentication is temporarily unavailable; try again later</text></failure>`
	store := newFakeStore(t, map[string]string{"alice": alicePassword})
	store.fault = errors.New("database is down")
	th := newAuthThrottle(AuthLimits{MaxFailures: 1, FailureWindow: time.Minute, Lockout: time.Minute}, nil, nil)
	addr, logs, _ := startServer(t, serverOpts{store: store, throttle: th})
	c := dialRaw(t, addr, &tls.Config{InsecureSkipVerify: true})
	want(t, "SCRAM", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()), unavailable)
	want(t, "PLAIN", c.plain("", "alice", alicePassword), unavailable)
	want(t, "SCRAM again, not throttled", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()), unavailable)
	c.conn.Close()
	if !strings.Contains(logs.String(), `level=ERROR msg="c2s: account store failed during SASL"`) {
		t.Errorf("store fault not logged at Error")
	}
}

// fakeClock is a settable clock for the throttle.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSASLThrottle(t *testing.T) {
	const tempFailure = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/><text xml:lang='en'>Too many failed authentication attempts; try again in 300 seconds</text></failure>`
	tls13 := &tls.Config{InsecureSkipVerify: true}
	tests := []struct {
		name string
		run  func(t *testing.T, store *fakeStore, th *authThrottle, clock *fakeClock)
	}{{
		name: "address locked out for the account after max failures, then let in after the lockout",
		run: func(t *testing.T, store *fakeStore, th *authThrottle, clock *fakeClock) {
			addr, _, result := startServer(t, serverOpts{store: store, throttle: th})
			c := dialRaw(t, addr, tls13)
			for i := range 3 {
				want(t, fmt.Sprint("failure ", i+1), c.plain("", "alice", wrongPassword), failNotAuthorized)
			}
			want(t, "PLAIN while locked", c.plain("", "alice", alicePassword), tempFailure)
			want(t, "SCRAM while locked", c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()), tempFailure)
			// Another account from the same address is not refused for
			// alice's failures (its wrong password is answered as one).
			want(t, "bob, wrong password, same address", c.plain("", "bob", wrongPassword), failNotAuthorized)
			clock.Advance(5*time.Minute + time.Second)
			if raw := c.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()); !isSuccess(raw) {
				t.Errorf("after the lockout: %s", raw)
			}
			c.conn.Close()
			if r := waitResult(t, result); !r.user.Equal(jid.MustParse("alice@example.org")) {
				t.Errorf("OnSuccess(%q)", r.user)
			}
		},
	}, {
		name: "account locked out from another IP, checked after client-first",
		run: func(t *testing.T, store *fakeStore, th *authThrottle, clock *fakeClock) {
			addr, _, _ := startServer(t, serverOpts{store: store, throttle: th, remoteIP: "192.0.2.1"})
			c := dialRaw(t, addr, tls13)
			for i := range 3 {
				want(t, fmt.Sprint("failure ", i+1), c.scram(mechSCRAMSHA1, scramConv(t, mechSCRAMSHA1, "alice", wrongPassword, "").NewConversation()), failNotAuthorized)
			}
			addr2, _, _ := startServer(t, serverOpts{store: store, throttle: th, remoteIP: "2001:db8::1"})
			c2 := dialRaw(t, addr2, tls13)
			want(t, "alice from elsewhere", c2.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "alice", alicePassword, "").NewConversation()), tempFailure)
			if raw := c2.scram(mechSCRAMSHA256, scramConv(t, mechSCRAMSHA256, "bob", "bob's password", "").NewConversation()); !isSuccess(raw) {
				t.Errorf("bob from elsewhere: %s", raw)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			th := newAuthThrottle(AuthLimits{MaxFailures: 3, AccountMaxFailures: 3, FailureWindow: time.Minute,
				Lockout: 5 * time.Minute, FailureDelay: time.Millisecond}, nil, clock.Now)
			store := newFakeStore(t, map[string]string{"alice": alicePassword, "bob": "bob's password"})
			tc.run(t, store, th, clock)
		})
	}
}

// TestServerEndPointBinding logs in through a Server with the
// tls-server-end-point binding the client derives from the certificate it
// was shown, which must equal the one the Server derived once at start. The
// cases run side by side, each with its own certificate, so a binding shared
// between Server values would fail one of them.
func TestServerEndPointBinding(t *testing.T) {
	tests := []struct {
		name   string
		noLeaf bool // the Server parses the certificate itself
		tls    *tls.Config
	}{
		{name: "Leaf set, TLS 1.3", tls: &tls.Config{InsecureSkipVerify: true}},
		{name: "Leaf parsed, TLS 1.2", noLeaf: true, tls: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tlsCfg := testTLSConfig(t)
			if tc.noLeaf {
				tlsCfg.Certificates[0].Leaf = nil
			}
			srv := &Server{
				Router:     router.New(testDomain, nil, nil),
				Store:      newFakeStore(t, map[string]string{"alice": alicePassword}),
				TLS:        tlsCfg,
				RequireTLS: true,
				Log:        slog.New(slog.DiscardHandler),
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := srv.Shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
				if err := <-served; !errors.Is(err, ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			})

			c := dialRaw(t, ln.Addr().String(), tc.tls)
			if got := c.feats.bindingTypes(); !slices.Contains(got, "tls-server-end-point") {
				t.Fatalf("channel bindings %q lack tls-server-end-point", got)
			}
			if raw := c.scram(mechSCRAMSHA256P, scramConv(t, mechSCRAMSHA256P, "alice", alicePassword, "").NewConversationWithChannelBinding(c.endPoint())); !isSuccess(raw) {
				t.Errorf("SCRAM-SHA-256-PLUS with tls-server-end-point: %s", raw)
			}
		})
	}
}
