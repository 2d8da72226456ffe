package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Namespaces the client speaks.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsPing     = "urn:xmpp:ping"
)

// client is one benchmark connection. The hand-written negotiation below
// covers exactly STARTTLS, SCRAM, bind, presence and in-band registration;
// after login one reader goroutine per connection scans the incoming bytes
// for benchmark messages, and senders write to conn directly (a tls.Conn
// or net.Conn write is atomic per call).
type client struct {
	idx  int
	user string // local part
	jid  string // full JID after bind, escaped for an attribute value; immutable after login

	conn net.Conn    // TLS once STARTTLS is done; writes from any goroutine
	kex  tls.CurveID // key exchange of the TLS handshake; immutable after login
	sm   *smState    // stream management (XEP-0198) when -sm; set at login
	sp   *splitter   // owned by negotiation, then by the reader goroutine

	mu     sync.Mutex
	waiter *waiter // guarded by mu; set by a phase waiting for an answer

	dead atomic.Bool   // the reader has stopped
	done chan struct{} // closed when the reader stops
}

// waiter is a phase waiting for an element the reader sees.
type waiter struct {
	match func(el []byte) bool
	ch    chan []byte // capacity 1; receives a copy of the first match
}

func (c *client) send(s string) error {
	_, err := io.WriteString(c.conn, s)
	return err
}

// dial connects to the server and, with STARTTLS on, negotiates TLS; with
// -transport websocket it opens a WebSocket instead (TLS from wss://, no
// STARTTLS). It returns the stream features of the (secure) stream.
func dial(o *options, user string) (*client, []byte, error) {
	var raw net.Conn
	var kex tls.CurveID
	var err error
	if o.ws != nil {
		raw, kex, err = dialWS(o, o.ws)
	} else {
		raw, err = net.DialTimeout("tcp", o.addr, o.timeout)
	}
	if err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(o.timeout))
	c := &client{user: user, conn: raw, kex: kex, sp: newSplitter(raw, o.readBuf), done: make(chan struct{})}
	feats, err := c.open(o)
	if err == nil && o.starttls {
		feats, err = c.startTLS(o, feats)
	}
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return c, feats, nil
}

// open sends a stream header and returns the server's features.
func (c *client) open(o *options) ([]byte, error) {
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + escapeAttr(o.domain) + "' version='1.0'>"); err != nil {
		return nil, err
	}
	el, err := c.sp.next()
	if err != nil {
		return nil, fmt.Errorf("stream features: %w", err)
	}
	if string(localName(el)) != "features" {
		return nil, fmt.Errorf("expected stream features, got %s", describe(el))
	}
	return append([]byte(nil), el...), nil
}

// describe quotes an unexpected element for an error message, cut to 200
// bytes (enough to show a stream or stanza error's condition).
func describe(el []byte) string {
	s := string(el)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (c *client) startTLS(o *options, feats []byte) ([]byte, error) {
	if !bytes.Contains(feats, []byte("<starttls")) {
		return nil, errors.New("server offers no STARTTLS")
	}
	if err := c.send("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return nil, err
	}
	el, err := c.sp.next()
	if err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	if string(localName(el)) != "proceed" {
		return nil, fmt.Errorf("starttls refused: %s", describe(el))
	}
	tc := tls.Client(c.conn, &tls.Config{
		ServerName:         o.domain,
		InsecureSkipVerify: true, // self-signed certificates on loopback
		MinVersion:         tls.VersionTLS12,
		CurvePreferences:   o.tlsGroups,
	})
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	c.kex = tc.ConnectionState().CurveID
	c.conn = tc
	c.sp.restart(tc)
	return c.open(o)
}

// auth runs SCRAM. With primeOnly it stops once the server has told its
// salt and iteration count (the keys are then derived into the cache) and
// the caller closes the connection.
func (c *client) auth(o *options, feats []byte, cache *scramCache, primeOnly bool) error {
	mech := scramMechs[o.mech]
	if !bytes.Contains(feats, []byte(">"+o.mech+"<")) {
		return fmt.Errorf("server does not offer %s", o.mech)
	}
	sc := newSCRAMClient(mech, c.user, o.password, cache)
	if err := c.send("<auth xmlns='" + nsSASL + "' mechanism='" + o.mech + "'>" + base64.StdEncoding.EncodeToString([]byte(sc.first())) + "</auth>"); err != nil {
		return err
	}
	serverFirst, err := c.saslStep("challenge")
	if err != nil {
		return err
	}
	final, err := sc.final(string(serverFirst))
	if err != nil {
		return err
	}
	if primeOnly {
		return nil
	}
	if err := c.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</response>"); err != nil {
		return err
	}
	el, err := c.sp.next()
	if err != nil {
		return fmt.Errorf("sasl: %w", err)
	}
	if string(localName(el)) == "challenge" {
		// Old servers send v= in a challenge and <success/> after an empty
		// response (RFC 6120 §6.3.10 allows both).
		v, err := elemBase64(el)
		if err != nil {
			return err
		}
		if err := sc.verify(string(v)); err != nil {
			return err
		}
		if err := c.send("<response xmlns='" + nsSASL + "'/>"); err != nil {
			return err
		}
		if el, err = c.sp.next(); err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		if string(localName(el)) != "success" {
			return fmt.Errorf("sasl: %s", describe(el))
		}
		return nil
	}
	if string(localName(el)) != "success" {
		return fmt.Errorf("sasl: %s", describe(el))
	}
	v, err := elemBase64(el)
	if err != nil {
		return err
	}
	return sc.verify(string(v))
}

// saslStep reads the next SASL element, which must be want, and returns its
// decoded payload.
func (c *client) saslStep(want string) ([]byte, error) {
	el, err := c.sp.next()
	if err != nil {
		return nil, fmt.Errorf("sasl: %w", err)
	}
	if string(localName(el)) != want {
		return nil, fmt.Errorf("sasl: expected %s, got %s", want, describe(el))
	}
	return elemBase64(el)
}

// elemText returns the character data of a leaf element.
func elemText(el []byte) []byte {
	t := startTag(el)
	if len(t) >= 2 && t[len(t)-2] == '/' {
		return nil
	}
	rest := el[len(t):]
	if i := bytes.LastIndexByte(rest, '<'); i >= 0 {
		rest = rest[:i]
	}
	return bytes.TrimSpace(rest)
}

func elemBase64(el []byte) ([]byte, error) {
	t := elemText(el)
	if len(t) == 1 && t[0] == '=' {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(string(t))
	if err != nil {
		return nil, fmt.Errorf("sasl: base64: %w", err)
	}
	return b, nil
}

// bind restarts the stream after SASL success and binds a resource; with
// sm non-nil it then enables stream management.
func (c *client) bind(o *options, sm *smCounters) error {
	c.sp.restart(nil)
	feats, err := c.open(o)
	if err != nil {
		return err
	}
	if err := c.send("<iq type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>" + escapeAttr(o.resource) + "</resource></bind></iq>"); err != nil {
		return err
	}
	el, err := c.waitIQ("bind")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	j, ok := childText(el, "jid")
	if !ok || len(j) == 0 {
		return fmt.Errorf("bind: no jid in %s", describe(el))
	}
	c.jid = escapeAttr(unescape(j))
	// RFC 3921 sessions: only when the server says it is not optional.
	if i := bytes.Index(feats, []byte(nsSession)); i >= 0 && !bytes.Contains(feats[i:], []byte("optional")) {
		if err := c.send("<iq type='set' id='sess'><session xmlns='" + nsSession + "'/></iq>"); err != nil {
			return err
		}
		if _, err := c.waitIQ("sess"); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	if sm != nil {
		return c.enableSM(o, feats, sm)
	}
	return nil
}

// waitIQ reads, skipping anything else, until the IQ answer with id
// arrives; an error answer is an error.
func (c *client) waitIQ(id string) ([]byte, error) {
	for {
		el, err := c.sp.next()
		if err != nil {
			return nil, err
		}
		if string(name(el)) == "stream:error" {
			return nil, fmt.Errorf("stream error: %s", describe(el))
		}
		if string(name(el)) != "iq" {
			continue
		}
		if v, _ := attr(el, "id"); string(v) != id {
			continue
		}
		if t, _ := attr(el, "type"); string(t) != "result" {
			return nil, fmt.Errorf("iq error: %s", describe(el))
		}
		return el, nil
	}
}

// ready sends initial presence and waits for the answer to a ping sent
// right after it, so the server has processed the presence when it
// returns.
func (c *client) ready(o *options) error {
	if err := c.sendStanzas("<presence/><iq type='get' id='ready' to='"+escapeAttr(o.domain)+"'><ping xmlns='"+nsPing+"'/></iq>", 2); err != nil {
		return err
	}
	for {
		el, err := c.sp.next()
		if err != nil {
			return fmt.Errorf("ready: %w", err)
		}
		if c.sm != nil && c.smRead(el) {
			continue
		}
		if string(name(el)) == "stream:error" {
			return fmt.Errorf("stream error: %s", describe(el))
		}
		if string(name(el)) == "iq" {
			if v, _ := attr(el, "id"); string(v) == "ready" {
				return nil // a result, or an error from a server without ping: processed either way
			}
		}
	}
}

// register creates the account with in-band registration (XEP-0077) on an
// unauthenticated stream. It reports whether the account already existed.
func (c *client) register(o *options, feats []byte) (existed bool, err error) {
	if !bytes.Contains(feats, []byte("iq-register")) {
		return false, errors.New("server offers no in-band registration")
	}
	if err := c.send("<iq type='set' id='reg'><query xmlns='" + nsRegister + "'><username>" + escapeAttr(c.user) + "</username><password>" + escapeAttr(o.password) + "</password></query></iq>"); err != nil {
		return false, err
	}
	for {
		el, err := c.sp.next()
		if err != nil {
			return false, fmt.Errorf("register: %w", err)
		}
		if string(name(el)) == "stream:error" {
			return false, fmt.Errorf("register: stream error: %s", describe(el))
		}
		if string(name(el)) != "iq" {
			continue
		}
		if v, _ := attr(el, "id"); string(v) != "reg" {
			continue
		}
		switch t, _ := attr(el, "type"); {
		case string(t) == "result":
			return false, nil
		case bytes.Contains(el, []byte("<conflict")):
			return true, nil
		default:
			return false, fmt.Errorf("register: %s", describe(el))
		}
	}
}

// close ends the stream and the connection without waiting for the
// server's answer.
func (c *client) close() {
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.send("</stream:stream>")
	c.conn.Close()
}

// setWaiter installs a waiter (nil clears it) and returns its channel.
func (c *client) setWaiter(match func([]byte) bool) chan []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if match == nil {
		c.waiter = nil
		return nil
	}
	c.waiter = &waiter{match: match, ch: make(chan []byte, 1)}
	return c.waiter.ch
}

// offer hands el to a waiting phase if it matches.
func (c *client) offer(el []byte) {
	c.mu.Lock()
	w := c.waiter
	c.mu.Unlock()
	if w != nil && w.match(el) {
		select {
		case w.ch <- append([]byte(nil), el...):
		default:
		}
	}
}

// isPing reports whether el is a ping request from the server (XEP-0199),
// which must be answered or the server may drop the connection.
func isPing(el []byte) bool {
	if string(name(el)) != "iq" || !bytes.Contains(el, []byte(nsPing)) {
		return false
	}
	t, _ := attr(el, "type")
	return string(t) == "get"
}

func pingReply(el []byte) string {
	id, _ := attr(el, "id")
	from, _ := attr(el, "from")
	var b strings.Builder
	b.WriteString("<iq type='result' id='")
	b.Write(id)
	b.WriteString("'")
	if len(from) > 0 {
		b.WriteString(" to='")
		b.Write(from)
		b.WriteString("'")
	}
	b.WriteString("/>")
	return b.String()
}
