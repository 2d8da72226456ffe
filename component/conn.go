package component

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

const (
	nsStreams   = "http://etherx.jabber.org/streams"
	nsStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
)

var (
	errTooLarge = errors.New("component: stanza too large")
	errClosed   = errors.New("component: stream closed")
	closeTag    = []byte("</stream:stream>")
)

// streamErr is a stream error to end the stream with (RFC 6120 §4.9).
type streamErr struct{ cond, text string }

func (e streamErr) Error() string { return e.cond + ": " + e.text }

// streamError serialises a stream error and the end of the stream.
func streamError(cond, text string) []byte {
	b := []byte("<stream:error><" + cond + " xmlns='" + nsStreamErr + "'/>")
	if text != "" {
		b = append(b, "<text xmlns='"+nsStreamErr+"' xml:lang='en'>"...)
		b = xmlenc.AppendEscaped(b, []byte(text), false)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error></stream:stream>"...)
}

// conn is one component connection. Its read goroutine (serve) owns the
// negotiation and parsing; its writer goroutine alone writes to nc, from
// a queue that the router fills through deliver without ever blocking.
type conn struct {
	s   *Service
	nc  net.Conn
	log *slog.Logger
	id  string // the stream id, the handshake's salt
	// dom is set by the read goroutine at the handshake, under mu; other
	// goroutines read it under mu.
	dom *domain

	headerSent bool // read goroutine only

	wake       chan struct{} // one pending signal for the writer
	writerDone chan struct{}

	mu      sync.Mutex
	queue   [][]byte // waiting to be written
	queued  int      // bytes in queue
	closing bool
	final   []byte // written after the queue when closing; nil: none
}

func (s *Service) newConn(nc net.Conn) *conn {
	return &conn{
		s: s, nc: nc, id: streamID(),
		log:  s.log.With("remote", nc.RemoteAddr().String()),
		wake: make(chan struct{}, 1), writerDone: make(chan struct{}),
	}
}

// serve runs the connection until its stream ends.
func (c *conn) serve() {
	go c.writer()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("component connection panicked", "panic", r, "stack", string(debug.Stack()))
			c.close(streamError("internal-server-error", ""), true)
		}
		<-c.writerDone
		if c.dom != nil {
			c.dom.detach(c)
			c.log.Info("component disconnected", "domain", c.dom.name)
		}
	}()
	c.close(c.finalFor(c.read()), false)
}

// finalFor maps why reading stopped to what ends the stream.
func (c *conn) finalFor(err error) []byte {
	var se streamErr
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		if se.cond != "system-shutdown" {
			c.log.Warn("component stream error", "condition", se.cond, "text", se.text)
		}
		return c.withHeader(streamError(se.cond, se.text))
	case errors.Is(err, io.EOF):
		if !c.headerSent {
			return nil
		}
		return closeTag
	case errors.Is(err, errTooLarge):
		c.log.Warn("component stanza too large", "max", c.s.opts.MaxStanzaBytes)
		return c.withHeader(streamError("policy-violation", fmt.Sprintf("stanza exceeds %d bytes", c.s.opts.MaxStanzaBytes)))
	case errors.As(err, &syn):
		c.log.Debug("component sent malformed XML", "err", err)
		return c.withHeader(streamError("not-well-formed", syn.Msg))
	case errors.As(err, &ne) && ne.Timeout():
		return c.withHeader(streamError("connection-timeout", "no stream header and handshake in time"))
	}
	c.log.Debug("component connection ended", "err", err)
	return nil
}

// withHeader prefixes b with the server's stream header if it has not
// been sent: a stream error comes inside a stream (RFC 6120 §4.9.1.1).
func (c *conn) withHeader(b []byte) []byte {
	if c.headerSent {
		return b
	}
	c.headerSent = true
	return append(c.header(""), b...)
}

// header is the server's stream header, from the component's domain.
func (c *conn) header(from string) []byte {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns:stream='" + nsStreams + "' xmlns='" + NS + "'")
	b = xmlenc.AppendAttr(b, "id", c.id)
	if from != "" {
		b = xmlenc.AppendAttr(b, "from", from)
	}
	return append(b, '>')
}

// read negotiates the stream and routes the component's stanzas until
// the stream ends; it returns why.
func (c *conn) read() error {
	lr := &limitReader{r: bufio.NewReader(c.nc), max: c.s.opts.MaxStanzaBytes}
	d := xml.NewDecoder(lr)
	c.nc.SetReadDeadline(time.Now().Add(c.s.opts.HandshakeTimeout))
	dom, err := c.readHeader(d)
	if err != nil {
		return err
	}
	c.headerSent = true
	c.send(c.header(dom.name))
	if err := c.handshake(d, dom); err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Time{})
	for {
		lr.n = 0
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return streamErr{"bad-format", "text between stanzas"}
			}
		case xml.EndElement:
			return io.EOF // the component closed its stream
		case xml.StartElement:
			if err := c.stanza(d, t); err != nil {
				return err
			}
		default:
			return restricted
		}
	}
}

var restricted = streamErr{"restricted-xml", "comments, processing instructions and DTDs are not allowed"}

// readHeader reads the component's stream header and returns the domain
// it names.
func (c *conn) readHeader(d *xml.Decoder) (*domain, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, restricted
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, streamErr{"bad-format", "text before the stream header"}
			}
		case xml.StartElement:
			if t.Name.Space != nsStreams || t.Name.Local != "stream" {
				return nil, streamErr{"invalid-namespace", "want <stream:stream> in " + nsStreams}
			}
			var ns, to string
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					ns = a.Value
				case a.Name.Space == "" && a.Name.Local == "to":
					to = a.Value
				}
			}
			if ns != NS {
				return nil, streamErr{"invalid-namespace", "want the default namespace " + NS}
			}
			j, err := jid.Parse(to)
			if to == "" || err != nil {
				return nil, streamErr{"host-unknown", "the stream header needs to='the component's domain'"}
			}
			dom := c.s.byName[j.Domainpart()]
			if dom == nil || j.Localpart() != "" || j.Resourcepart() != "" {
				c.log.Warn("unknown component domain", "to", to)
				return nil, streamErr{"host-unknown", to + " is not a component of this server"}
			}
			return dom, nil
		default:
			return nil, restricted
		}
	}
}

// handshake reads and checks <handshake/> (XEP-0114 §3) and makes c the
// domain's connection.
func (c *conn) handshake(d *xml.Decoder, dom *domain) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return streamErr{"bad-format", "text before the handshake"}
			}
		case xml.EndElement:
			return io.EOF
		case xml.StartElement:
			if t.Name.Space != NS || t.Name.Local != "handshake" {
				return streamErr{"not-authorized", "want <handshake/> before anything else"}
			}
			var digest string
			if err := d.DecodeElement(&digest, &t); err != nil {
				return err
			}
			if !dom.verify(c.id, string(bytes.TrimSpace([]byte(digest)))) {
				c.log.Warn("component handshake failed", "domain", dom.name)
				return streamErr{"not-authorized", "the handshake does not match the secret"}
			}
			if !dom.attach(c) {
				c.log.Warn("component already connected", "domain", dom.name)
				return streamErr{"conflict", dom.name + " is connected already"}
			}
			c.mu.Lock()
			c.dom = dom
			c.mu.Unlock()
			c.send([]byte("<handshake/>"))
			c.log.Info("component connected", "domain", dom.name)
			return nil
		default:
			return restricted
		}
	}
}

// stanza reads the rest of the stanza start opens, checks its addresses
// and routes it. Components are trusted for their own domain, not local
// users': the stanza goes to Route, not through FromClient's outbound
// hooks (carbons, roster, directed presence) that act for an account.
func (c *conn) stanza(d *xml.Decoder, start xml.StartElement) error {
	var kind router.Kind
	if start.Name.Space == NS || start.Name.Space == stanza.NSClient {
		kind = router.KindOf(start.Name.Local)
	}
	if kind == 0 {
		return streamErr{"unsupported-stanza-type", "<" + start.Name.Local + "> is not a stanza"}
	}
	st := &router.Stanza{Kind: kind}
	var hasFrom, hasTo bool
	attrs := make([]xml.Attr, 0, len(start.Attr))
	for _, a := range start.Attr {
		if a.Name.Space == "" {
			switch a.Name.Local {
			case "from":
				j, err := jid.Parse(a.Value)
				if err != nil || j.Domainpart() != c.dom.name {
					return streamErr{"invalid-from", fmt.Sprintf("from %q is not in %s", a.Value, c.dom.name)}
				}
				st.From, hasFrom = j, true
				a.Value = j.String()
			case "to":
				j, err := jid.Parse(a.Value)
				if err != nil {
					return streamErr{"improper-addressing", fmt.Sprintf("to %q is not a JID", a.Value)}
				}
				st.To, hasTo = j, true
				a.Value = j.String()
			case "type":
				st.Type = a.Value
			case "id":
				st.ID = a.Value
			}
		}
		attrs = append(attrs, a)
	}
	if !hasFrom || !hasTo {
		return streamErr{"improper-addressing", "a stanza from a component needs a from and a to"}
	}
	start.Attr = attrs
	start.Name.Space = stanza.NSClient
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	enc.EncodeToken(start)
	for depth := 1; depth > 0; {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// Inherited or not, the component namespace becomes the
			// stanza namespace the router keeps stanzas in.
			if t.Name.Space == NS {
				t.Name.Space = stanza.NSClient
			}
			if depth == 1 && st.Payload.Local == "" {
				st.Payload = t.Name
			}
			depth++
			tok = t
		case xml.EndElement:
			depth--
		case xml.CharData:
		default:
			return restricted
		}
		if err := enc.EncodeToken(tok); err != nil {
			return streamErr{"not-well-formed", err.Error()}
		}
	}
	st.Raw = enc.Buf
	// JIDs as values: slog makes their strings only if Debug is on.
	c.log.Debug("stanza from component", "kind", kind, "from", st.From, "to", st.To)
	c.s.router.Route(c.s.ctx, st)
	return nil
}

// send queues b whatever the queue holds: the server's own stream
// elements, few and small.
func (c *conn) send(b []byte) {
	c.mu.Lock()
	if !c.closing {
		c.queue = append(c.queue, b)
		c.queued += len(b)
	}
	c.mu.Unlock()
	c.signal()
}

// deliver queues a stanza for the component without blocking. When the
// queue would exceed its bound, the stream ends with
// <resource-constraint/>, what waited is bounced, and it returns
// router.ErrQueueFull.
func (c *conn) deliver(b []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return errClosed
	}
	if c.queued+len(b) > c.s.opts.SendQueueBytes {
		c.mu.Unlock()
		c.log.Warn("component is not reading; disconnecting it", "queued_bytes", c.s.opts.SendQueueBytes)
		c.close(streamError("resource-constraint", "the component is not reading fast enough"), true)
		return router.ErrQueueFull
	}
	c.queue = append(c.queue, b)
	c.queued += len(b)
	c.mu.Unlock()
	c.signal()
	return nil
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close ends the stream with final (nil: none) after what is queued, or
// instead of it when drop is set: then the stanzas dropped are bounced.
// Only the first call counts.
func (c *conn) close(final []byte, drop bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.final = true, final
	var dropped [][]byte
	if drop {
		dropped, c.queue, c.queued = c.queue, nil, 0
	}
	dom := c.dom
	c.mu.Unlock()
	c.signal()
	if dom == nil {
		return
	}
	for _, raw := range dropped {
		if st, err := router.Parse(raw); err == nil && st.To.Domainpart() == dom.name {
			dom.HandleStanza(c.s.ctx, st) // closing: bounced
		}
	}
}

// writer writes what is queued, in batches, until the stream closes.
func (c *conn) writer() {
	defer close(c.writerDone)
	defer c.nc.Close()
	for range c.wake {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		closing, final := c.closing, c.final
		c.mu.Unlock()
		if closing && final != nil {
			batch = append(batch, final)
		}
		if len(batch) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
			bufs := net.Buffers(batch)
			if _, err := bufs.WriteTo(c.nc); err != nil {
				c.log.Debug("writing to a component failed", "err", err)
				c.close(nil, false)
				return
			}
		}
		if closing {
			return
		}
	}
}

// limitReader counts the bytes the decoder reads since n was last reset
// (before each stanza) and fails past max.
type limitReader struct {
	r      *bufio.Reader
	n, max int
}

func (l *limitReader) ReadByte() (byte, error) {
	if l.n >= l.max {
		return 0, errTooLarge
	}
	b, err := l.r.ReadByte()
	if err == nil {
		l.n++
	}
	return b, err
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n >= l.max {
		return 0, errTooLarge
	}
	p = p[:min(len(p), l.max-l.n)]
	n, err := l.r.Read(p)
	l.n += n
	return n, err
}
