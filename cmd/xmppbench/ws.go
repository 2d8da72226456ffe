package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"
)

// XMPP over WebSocket (RFC 7395). The client below speaks the TCP byte
// stream; wsConn sits under it as its net.Conn and translates that stream
// to RFC 7395's framing and back, so that every phase runs unchanged over
// either transport.

const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsClient  = "jabber:client"
	nsStream  = "http://etherx.jabber.org/streams"
)

// wsTransport holds what every WebSocket dial shares: one HTTP client (its
// connections are hijacked by the upgrade, never pooled) and the headers.
type wsTransport struct {
	url    string
	client *http.Client
	header http.Header
}

func newWSTransport(o *options) *wsTransport {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			ServerName:         o.domain,
			InsecureSkipVerify: true, // self-signed certificates on loopback
			MinVersion:         tls.VersionTLS12,
			CurvePreferences:   o.tlsGroups,
			NextProtos:         []string{"http/1.1"},
		},
		DialContext:         (&net.Dialer{Timeout: o.timeout}).DialContext,
		TLSHandshakeTimeout: o.timeout,
		MaxIdleConnsPerHost: -1,
		DisableCompression:  true,
	}
	h := http.Header{}
	if o.wsOrigin != "" {
		h.Set("Origin", o.wsOrigin)
	}
	return &wsTransport{url: o.wsURL, client: &http.Client{Transport: tr}, header: h}
}

// dialWS opens the WebSocket with the xmpp subprotocol and returns it as a
// stream-speaking net.Conn and the TLS key exchange (0 over ws://).
func dialWS(o *options, t *wsTransport) (net.Conn, tls.CurveID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	c, resp, err := ws.Dial(ctx, t.url, &ws.DialOptions{
		HTTPClient:      t.client,
		HTTPHeader:      t.header,
		Subprotocols:    []string{"xmpp"},
		CompressionMode: ws.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, 0, fmt.Errorf("websocket: %s: %w", resp.Status, err)
		}
		return nil, 0, fmt.Errorf("websocket: %w", err)
	}
	if c.Subprotocol() != "xmpp" {
		c.CloseNow()
		return nil, 0, fmt.Errorf("websocket: server chose subprotocol %q, want xmpp", c.Subprotocol())
	}
	c.SetReadLimit(maxElement)
	var kex tls.CurveID
	if resp != nil && resp.TLS != nil {
		kex = resp.TLS.CurveID
	}
	return newWSConn(c, t.url), kex, nil
}

// wsConn is a net.Conn over a WebSocket that carries an XMPP stream.
// Write splits the client's bytes into top-level things (the stream
// header, elements, the closing tag) and sends one text message each;
// Read returns the server's messages as a stream. Writes may come from
// any goroutine (each Write's messages stay together); reads from one.
type wsConn struct {
	ws   *ws.Conn
	addr wsAddr

	rdl, wdl atomic.Int64 // deadlines in Unix nanoseconds; 0 for none

	// Read side, owned by the reading goroutine.
	msg     []byte // the message being read
	pending []byte // translated bytes not yet returned
	rerr    error  // sticky read error

	// Write side.
	wmu   sync.Mutex
	wrest []byte // guarded by wmu: an incomplete element from the last Write
	frame []byte // guarded by wmu: scratch for one message
}

func newWSConn(c *ws.Conn, u string) *wsConn {
	return &wsConn{ws: c, addr: wsAddr(u), msg: make([]byte, 2048)}
}

type wsAddr string

func (wsAddr) Network() string  { return "websocket" }
func (a wsAddr) String() string { return string(a) }

func (c *wsConn) LocalAddr() net.Addr  { return c.addr }
func (c *wsConn) RemoteAddr() net.Addr { return c.addr }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	return nil
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNano(t))
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ctx returns a context ending at the deadline d (no allocation without one).
func deadlineCtx(d int64) (context.Context, context.CancelFunc) {
	if d == 0 {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), time.Unix(0, d))
}

// Close closes the connection without the WebSocket closing handshake
// (the client has sent <close/> already when it ends the stream politely),
// as closing a TCP socket does.
func (c *wsConn) Close() error { return c.ws.CloseNow() }

// Read returns the server's messages translated to the stream.
func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if err := c.readMessage(); err != nil {
			if ws.CloseStatus(err) != -1 || errors.Is(err, io.EOF) {
				err = io.EOF
			}
			c.rerr = err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// readMessage reads one message into c.msg and sets c.pending to its
// translation.
func (c *wsConn) readMessage() error {
	ctx, cancel := deadlineCtx(c.rdl.Load())
	defer cancel()
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return err
	}
	n := 0
	for {
		if n == len(c.msg) {
			c.msg = append(c.msg, make([]byte, len(c.msg))...)
		}
		m, err := r.Read(c.msg[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if typ != ws.MessageText {
		return errors.New("websocket: binary message from the server")
	}
	c.pending = fromServer(c.msg[:n], c.pending[:0])
	return nil
}

// fromServer translates one server message to stream bytes, appended to
// dst: <open/> becomes a stream header, <close/> the stream's end tag,
// anything else (one element) passes as it is.
func fromServer(m, dst []byte) []byte {
	m = bytes.TrimSpace(m)
	switch string(name(m)) {
	case "open":
		dst = append(dst, "<stream:stream xmlns='"+nsClient+"' xmlns:stream='"+nsStream+"'"...)
		forAttrs(startTag(m), func(k, raw []byte) {
			if string(k) != "xmlns" {
				dst = append(dst, ' ')
				dst = append(dst, raw...)
			}
		})
		return append(dst, '>')
	case "close":
		return append(dst, "</stream:stream>"...)
	}
	return append(dst, m...)
}

// forAttrs calls f with each attribute's name and its whole raw text
// (name='value') in the start tag tag.
func forAttrs(tag []byte, f func(name, raw []byte)) {
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	for i < len(tag) {
		for i < len(tag) && (isSpace(tag[i]) || tag[i] == '/' || tag[i] == '>') {
			i++
		}
		start := i
		for i < len(tag) && tag[i] != '=' && !isSpace(tag[i]) && tag[i] != '>' {
			i++
		}
		k := tag[start:i]
		for i < len(tag) && tag[i] != '\'' && tag[i] != '"' {
			i++
		}
		if i >= len(tag) {
			return
		}
		q := tag[i]
		e := bytes.IndexByte(tag[i+1:], q)
		if e < 0 {
			return
		}
		i += e + 2
		f(k, tag[start:i])
	}
}

// Write sends the top-level things in p, one message each. An element
// cut off at p's end waits for the next Write.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := p
	if len(c.wrest) > 0 {
		c.wrest = append(c.wrest, p...)
		b = c.wrest
	}
	ctx, cancel := deadlineCtx(c.wdl.Load())
	defer cancel()
	var werr error
	rest, err := splitClient(b, func(kind int, el []byte) bool {
		c.frame = toServer(kind, el, c.frame[:0])
		if c.frame == nil {
			return true
		}
		werr = c.ws.Write(ctx, ws.MessageText, c.frame)
		return werr == nil
	})
	if werr != nil {
		return 0, werr
	}
	if err != nil {
		return 0, err
	}
	if len(rest) > 0 {
		c.wrest = append(c.wrest[:0], rest...)
	} else {
		c.wrest = c.wrest[:0]
	}
	return len(p), nil
}

// Kinds of top-level things the client writes.
const (
	kindElement = iota
	kindHeader  // the <stream:stream …> start tag
	kindEnd     // </stream:stream>
)

// toServer appends the message for one top-level thing to dst; nil means
// nothing to send.
func toServer(kind int, el, dst []byte) []byte {
	switch kind {
	case kindHeader:
		dst = append(dst, "<open xmlns='"+nsFraming+"'"...)
		forAttrs(el, func(k, raw []byte) {
			switch string(k) {
			case "to", "from", "version", "xml:lang", "id":
				dst = append(dst, ' ')
				dst = append(dst, raw...)
			}
		})
		return append(dst, "/>"...)
	case kindEnd:
		return append(dst, "<close xmlns='"+nsFraming+"'/>"...)
	}
	n := name(el)
	if bytes.IndexByte(n, ':') >= 0 {
		return append(dst, el...)
	}
	if _, ok := attr(el, "xmlns"); ok {
		return append(dst, el...)
	}
	// RFC 7395 §3.3.3: every element carries its namespace.
	dst = append(dst, el[:1+len(n)]...)
	dst = append(dst, " xmlns='"+nsClient+"'"...)
	return append(dst, el[1+len(n):]...)
}

// splitClient calls f for each complete top-level thing in b (elements,
// the stream header, the stream's end tag; the XML declaration and
// whitespace are skipped) until f returns false, and returns the
// incomplete remainder. It tracks only tags, quotes and depth.
func splitClient(b []byte, f func(kind int, el []byte) bool) ([]byte, error) {
	i := 0
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			return nil, nil
		}
		if b[i] != '<' {
			return nil, fmt.Errorf("websocket: text outside an element: %q", describe(b[i:]))
		}
		start := i
		depth := 0
		for {
			end, ok := tagEnd(b, i)
			if !ok {
				return b[start:], nil
			}
			tag := b[i:end]
			i = end
			switch {
			case len(tag) > 1 && (tag[1] == '?' || tag[1] == '!'):
				if depth == 0 {
					goto next // the declaration: skipped
				}
			case len(tag) > 1 && tag[1] == '/':
				depth--
				if depth < 0 { // </stream:stream>
					if !f(kindEnd, tag) {
						return nil, nil
					}
					depth = 0
					goto next
				}
			case tag[len(tag)-2] == '/':
				// self-closing: no change
			default:
				if depth == 0 && string(name(tag)) == "stream:stream" {
					if !f(kindHeader, tag) {
						return nil, nil
					}
					goto next
				}
				depth++
			}
			if depth == 0 && start < i {
				if !f(kindElement, b[start:i]) {
					return nil, nil
				}
				goto next
			}
			for i < len(b) && b[i] != '<' {
				i++
			}
			if i == len(b) {
				if depth == 0 {
					return nil, nil
				}
				return b[start:], nil
			}
		}
	next:
	}
}

// tagEnd returns the end (one past '>') of the tag starting at b[i] ('<'),
// skipping quoted attribute values.
func tagEnd(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		j := bytes.IndexAny(b[i:], "\"'>")
		if j < 0 {
			return 0, false
		}
		i += j
		if b[i] == '>' {
			return i + 1, true
		}
		q := b[i]
		k := bytes.IndexByte(b[i+1:], q)
		if k < 0 {
			return 0, false
		}
		i += k + 2
	}
	return 0, false
}

// checkWSURL checks a -ws-url: ws or wss, on a loopback host.
func checkWSURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-ws-url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("-ws-url %s: want ws:// or wss://", s)
	}
	return u, checkLoopback("-ws-url "+s, u.Hostname())
}

// wss reports whether the transport is a WebSocket over TLS.
func (o *options) wss() bool { return o.ws != nil && len(o.wsURL) > 4 && o.wsURL[:4] == "wss:" }
