package c2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/internal/xmlenc"
)

// Namespaces of the negotiation (RFC 6120 §4–§7) and of what the stream
// features list besides.
const (
	nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
)

// Errors that end a negotiation in a particular way.
var (
	// errStreamEnd: the client closed its stream; the answer is ours.
	errStreamEnd = errors.New("c2s: client closed the stream during negotiation")
	// errPeerStreamError: the client sent a stream error and is closing.
	errPeerStreamError = errors.New("c2s: client sent a stream error during negotiation")
)

// maxBindAttempts ends the stream after this many refused bind requests.
const maxBindAttempts = 5

// negotiation takes one connection from its first byte to a bound
// resource (RFC 6120 §4–§7): stream headers, STARTTLS, SASL and resource
// binding. It runs on the connection's goroutine and owns the transport
// until the session's read loop takes it over.
//
// It is xmppd's own rather than mellium's feature negotiation
// (xmpp.ReceiveSession): that one cost a login five 4 KiB buffered
// writers, a token encoder per feature and its layered token readers,
// about a sixth of the server's CPU per login. What a client sees is the
// same protocol; mellium still provides the JIDs, the stream and stanza
// error conditions and the SASL mechanism machinery (mellium.im/sasl).
type negotiation struct {
	srv    *Server
	raw    net.Conn   // the TCP connection: STARTTLS wraps it
	g      *guardConn // the current transport (over raw, or over TLS)
	d      *xml.Decoder
	domain jid.JID
	// domainStr is domain as a string, set by openStream.
	domainStr string

	secure     bool                // TLS is on
	tlsState   tls.ConnectionState // zero without TLS
	offerTLS   bool                // STARTTLS is offered while !secure
	sasl       saslConfig          // without OnSuccess, which beforeAuth sets
	headerSent bool                // the current stream has our header

	user jid.JID // authenticated bare JID; zero before SASL success
	full jid.JID // bound full JID; zero before binding
	// resumed is the session the client resumed (XEP-0198) instead of
	// binding; the caller attaches the connection to it.
	resumed *Session
	// bound is called with the full JID before the client learns it (the
	// router must know the session first).
	bound func(jid.JID) error

	buf []byte // reused for what is written
}

// run negotiates until a resource is bound (nil) or the stream must end.
func (n *negotiation) run(ctx context.Context) error {
	for {
		if err := n.openStream(); err != nil {
			return err
		}
		if n.user.Localpart() != "" {
			return n.bind(ctx)
		}
		// STARTTLS or SASL succeeded: the client opens a new stream.
		if err := n.beforeAuth(ctx); err != nil {
			return err
		}
		n.headerSent = false
	}
}

// openStream reads the client's stream header and answers with ours and
// the stream features (RFC 6120 §4.2–§4.3), in one write.
func (n *negotiation) openStream() error {
	if n.domainStr == "" {
		n.domainStr = n.domain.String()
	}
	n.d = xml.NewDecoder(n.g)
	start, err := n.readHeader()
	if err != nil {
		return err
	}
	var from string
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			// The exact spelling, nearly always, needs no PRECIS parse.
			if a.Value == n.domainStr {
				continue
			}
			if to, err := jid.Parse(a.Value); err != nil || !to.Equal(n.domain) {
				return withText(stream.HostUnknown, "this server does not serve that domain")
			}
		case a.Name.Space == "" && a.Name.Local == "from":
			// Echoed in our header's 'to' when it is a JID (RFC 6120
			// §4.7.2); it is not trusted for anything.
			if j, err := jid.Parse(a.Value); err == nil {
				from = j.String()
			}
		}
	}
	b := n.buf[:0]
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='"...)
	b = append(b, randomID()...)
	b = append(b, '\'')
	b = xmlenc.AppendAttr(b, "from", n.domainStr)
	if from != "" {
		b = xmlenc.AppendAttr(b, "to", from)
	}
	b = append(b, " version='1.0' xml:lang='en'>"...)
	b = n.appendFeatures(b)
	n.buf = b
	n.headerSent = true
	_, err = n.g.Write(b)
	return err
}

// readHeader reads up to the stream's start tag, past an XML declaration
// and white space, and checks it (RFC 6120 §4.7, §4.9.3). White space
// may come before the declaration: on a restart it is what the client
// sent after its last element of the old stream.
func (n *negotiation) readHeader() (xml.StartElement, error) {
	decl := false
	for {
		tok, err := n.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if decl || t.Target != "xml" {
				return xml.StartElement{}, errRestrictedXML
			}
			decl = true
		case xml.CharData:
			if !onlySpace(t) {
				return xml.StartElement{}, withText(stream.NotWellFormed, "text before the stream header")
			}
		case xml.StartElement:
			if t.Name.Space != stream.NS || t.Name.Local != "stream" {
				return xml.StartElement{}, withText(stream.InvalidNamespace, "expected a stream header")
			}
			var version, xmlns string
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "version":
					version = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					xmlns = a.Value
				}
			}
			if xmlns != stanza.NSClient {
				return xml.StartElement{}, withText(stream.InvalidNamespace, "expected a jabber:client stream")
			}
			if !version1(version) {
				return xml.StartElement{}, withText(stream.UnsupportedVersion, "version 1.0 is required")
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, withText(stream.NotWellFormed, "end tag before the stream header")
		default:
			return xml.StartElement{}, errRestrictedXML
		}
	}
}

// version1 reports whether a stream's version attribute has major version
// 1 (RFC 6120 §4.7.5: a higher minor version is answered with 1.0).
func version1(v string) bool {
	major, minor, ok := bytes.Cut([]byte(v), []byte{'.'})
	if !ok || len(minor) == 0 {
		return false
	}
	if _, err := strconv.ParseUint(string(minor), 10, 32); err != nil {
		return false
	}
	m, err := strconv.ParseUint(string(major), 10, 32)
	return err == nil && m == 1
}

func onlySpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// appendFeatures appends <stream:features/> for the negotiation's state:
// STARTTLS first, then SASL, then what a bound session has.
func (n *negotiation) appendFeatures(b []byte) []byte {
	b = append(b, "<stream:features>"...)
	switch {
	case n.user.Localpart() != "":
		for _, f := range n.srv.Features {
			b = append(b, '<')
			b = append(b, f.Local...)
			b = xmlenc.AppendAttr(b, "xmlns", f.Space)
			b = append(b, "/>"...)
		}
		b = append(b, n.srv.Caps...)
		b = append(b, "<bind xmlns='"+nsBind+"'/><session xmlns='"+nsSession+"'><optional/></session><sm xmlns='"+nsSM+"'/><csi xmlns='"+nsCSI+"'/><limits xmlns='"+nsLimits+"'><max-bytes>"...)
		b = strconv.AppendInt(b, int64(n.srv.Limits.MaxStanzaBytes), 10)
		b = append(b, "</max-bytes></limits>"...)
	default:
		if !n.secure && n.offerTLS {
			b = append(b, "<starttls xmlns='"+nsTLS+"'>"...)
			if n.srv.RequireTLS {
				b = append(b, "<required/>"...)
			}
			b = append(b, "</starttls>"...)
		}
		if n.saslOffered() {
			o := n.offer()
			b = append(b, "<mechanisms xmlns='"+nsSASL+"'>"...)
			for _, m := range o.mechs {
				b = append(b, "<mechanism>"...)
				b = append(b, m...)
				b = append(b, "</mechanism>"...)
			}
			b = append(b, "</mechanisms>"...)
			if len(o.bindings) > 0 {
				b = append(b, "<sasl-channel-binding xmlns='"+nsSASLCB+"'>"...)
				for _, t := range o.bindings {
					b = append(b, "<channel-binding type='"...)
					b = append(b, t...)
					b = append(b, "'/>"...)
				}
				b = append(b, "</sasl-channel-binding>"...)
			}
		}
	}
	return append(b, "</stream:features>"...)
}

// saslOffered reports whether SASL may be negotiated now: over TLS, or
// without it when the server allows that (tests only).
func (n *negotiation) saslOffered() bool {
	return n.secure || n.sasl.AllowInsecure
}

// offer is what SASL offers on the current stream.
func (n *negotiation) offer() saslOffer {
	o := n.mechanisms()
	if n.sasl.LegacySCRAM != nil && n.sasl.LegacySCRAM() {
		// Clients pick the strongest mechanism offered, and an account
		// with SCRAM-SHA-1 keys only fails SCRAM-SHA-256: while such
		// accounts exist, everyone is offered SCRAM-SHA-1 (with its
		// channel binding) and PLAIN.
		o.mechs = slices.DeleteFunc(o.mechs, func(m string) bool {
			return m == mechSCRAMSHA256 || m == mechSCRAMSHA256P
		})
	}
	return o
}

// mechanisms is what the stream's security allows SASL to offer.
func (n *negotiation) mechanisms() saslOffer {
	if !n.secure {
		return newSASLOffer(nil, n.sasl.EndPoint.IsSupported())
	}
	if n.tlsState.Version == 0 {
		// Secure without TLS here: TLS ended at a trusted proxy in front
		// of a WebSocket (ConnInfo). No channel binding, PLAIN allowed.
		o := newSASLOffer(nil, false)
		o.mechs = append(o.mechs, mechPlain)
		return o
	}
	return newSASLOffer(&n.tlsState, n.sasl.EndPoint.IsSupported())
}

// next returns the next child of the stream, skipping the white space
// clients send between elements.
func (n *negotiation) next() (xml.StartElement, error) {
	for {
		tok, err := n.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == stream.NS && t.Name.Local == "error" {
				return xml.StartElement{}, errPeerStreamError
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errStreamEnd
		case xml.CharData:
			if !onlySpace(t) {
				return xml.StartElement{}, errTextAtTop
			}
		default:
			return xml.StartElement{}, errRestrictedXML
		}
	}
}

// tooEarly is the stream error for a stanza, or anything else not offered,
// before a resource is bound (RFC 6120 §4.9.3.12, §6.4.1).
func tooEarly() error {
	return withText(stream.NotAuthorized, "authenticate and bind a resource first")
}

// beforeAuth handles the stream's elements until SASL succeeds or STARTTLS
// replaces the transport (nil: either way the client restarts the stream).
func (n *negotiation) beforeAuth(ctx context.Context) error {
	for {
		start, err := n.next()
		if err != nil {
			return err
		}
		switch {
		case start.Name.Space == nsTLS && start.Name.Local == "starttls" && !n.secure && n.offerTLS:
			return n.startTLS(ctx)
		case start.Name.Space == nsSASL && !n.saslOffered():
			// TLS first (RFC 6120 §6.5.3); the stream goes on, and the
			// client may still send <starttls/>.
			if err := n.d.Skip(); err != nil {
				return err
			}
			if _, err := n.g.Write([]byte("<failure xmlns='" + nsSASL + "'><encryption-required/></failure>")); err != nil {
				return err
			}
		case start.Name.Space == nsSASL:
			cfg := n.sasl
			cfg.OnSuccess = func(u jid.JID) { n.user = u }
			run := &saslRun{
				cfg:   cfg,
				offer: n.offer(),
				g:     n.g,
				d:     n.d,
			}
			if n.secure {
				run.tlsConn = n.tlsState
			}
			return run.negotiate(ctx, start)
		default:
			return tooEarly()
		}
	}
}

// startTLS answers <starttls/> with <proceed/> and runs the TLS handshake
// (RFC 6120 §5.4.3); the client then opens a new stream over TLS.
func (n *negotiation) startTLS(ctx context.Context) error {
	if err := n.d.Skip(); err != nil {
		return err
	}
	if _, err := n.g.Write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	tc := tls.Server(n.raw, n.srv.TLS)
	// Not HandshakeContext: see Server.handle.
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("c2s: TLS handshake: %w", err)
	}
	n.g = newGuardConn(tc, int64(n.srv.Limits.MaxStanzaBytes))
	n.secure = true
	n.tlsState = tc.ConnectionState()
	return ctx.Err()
}

// bind handles the authenticated stream until a resource is bound (RFC
// 6120 §7). A refused request is answered with an error and the client
// may try again, a few times.
func (n *negotiation) bind(ctx context.Context) error {
	for refused := 0; ; {
		start, err := n.next()
		if err != nil {
			return err
		}
		if start.Name.Space == nsSM && start.Name.Local == "resume" {
			e, err := parseSMElement(n.d, start)
			if err != nil {
				return err
			}
			answer, sess := n.srv.resume(n.user, e)
			if _, err := n.g.Write(answer); err != nil {
				if sess != nil {
					// The client will not learn it resumed: the session
					// waits for another try.
					sess.redetach()
				}
				return err
			}
			if sess != nil {
				n.resumed = sess
				return nil
			}
			continue // the client may bind a new session instead
		}
		if start.Name.Space == nsSM && start.Name.Local == "enable" {
			// XEP-0198 §3: stream management comes after binding.
			if err := n.d.Skip(); err != nil {
				return err
			}
			if _, err := n.g.Write(smFailed("unexpected-request", 0, false)); err != nil {
				return err
			}
			continue
		}
		if start.Name.Space != stanza.NSClient || start.Name.Local != "iq" {
			return tooEarly()
		}
		req, err := n.readBindIQ(start)
		if err != nil {
			return err
		}
		text, typ, cond := "", "modify", "bad-request"
		switch {
		case !req.bind:
			return tooEarly()
		case req.id == "":
			text = "an iq needs an id"
		case req.typ != "set":
			text = "resource binding is an iq of type set"
		default:
			full := n.resource(req.resource)
			if err := n.bound(full); err != nil {
				var r *bindRefusal
				if !errors.As(err, &r) {
					return err
				}
				text, typ, cond = r.text, r.typ, r.cond
				break
			}
			n.full = full
			b := append(n.buf[:0], "<iq type='result'"...)
			b = xmlenc.AppendAttr(b, "id", req.id)
			b = append(b, "><bind xmlns='"+nsBind+"'><jid>"...)
			b = xmlenc.AppendEscaped(b, []byte(full.String()), false)
			b = append(b, "</jid></bind></iq>"...)
			n.buf = b
			_, err := n.g.Write(b)
			return err
		}
		refused++
		if refused >= maxBindAttempts {
			return withText(stream.PolicyViolation, "too many failed resource binding attempts")
		}
		// The answer carries the request's id, and none when it had none
		// (RFC 6120 §8.3.1), like every error the router returns.
		b := append(n.buf[:0], "<iq type='error'"...)
		if req.id != "" {
			b = xmlenc.AppendAttr(b, "id", req.id)
		}
		b = append(b, "><error type='"+typ+"'><"+cond+" xmlns='"+stanza.NSError+"'/><text xmlns='"+stanza.NSError+"'>"...)
		b = append(b, text...)
		b = append(b, "</text></error></iq>"...)
		n.buf = b
		if _, err := n.g.Write(b); err != nil {
			return err
		}
	}
}

// bindRefusal is an error of negotiation.bound that refuses this bind
// request only: the client gets an error and may try again.
type bindRefusal struct {
	typ, cond, text string // the stanza error (RFC 6120 §8.3)
}

func (r *bindRefusal) Error() string { return "c2s: bind refused: " + r.cond + ": " + r.text }

// resource returns the full JID to bind: the client's resource when it is
// a valid resourcepart, otherwise one the server makes up (RFC 6120
// §7.7.2.1 lets the server override it).
func (n *negotiation) resource(res string) jid.JID {
	if res != "" {
		if j, err := n.user.WithResource(res); err == nil {
			return j
		}
	}
	j, _ := n.user.WithResource("xmppd-" + randomID())
	return j
}

// bindIQ is what a bind request says.
type bindIQ struct {
	id, typ  string
	bind     bool   // the payload is <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>
	resource string // its <resource/> text, trimmed
}

// readBindIQ reads an IQ whose start tag was read, up to its end tag.
func (n *negotiation) readBindIQ(start xml.StartElement) (bindIQ, error) {
	var req bindIQ
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			req.id = a.Value
		case "type":
			req.typ = a.Value
		}
	}
	var text []byte
	inResource := false
	for depth := 1; depth > 0; {
		tok, err := n.d.Token()
		if err != nil {
			return req, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Space == nsBind && t.Name.Local == "bind":
				req.bind = true
			case depth == 2:
				req.bind = false
				// Only one payload is allowed; a second one makes the
				// request something other than a bind.
				return req, n.skipTo(depth)
			case depth == 3 && req.bind && t.Name.Space == nsBind && t.Name.Local == "resource":
				inResource = true
			}
		case xml.EndElement:
			depth--
			inResource = false
		case xml.CharData:
			if inResource {
				text = append(text, t...)
				if len(text) > 3*1023 {
					return req, withText(stream.PolicyViolation, "resource too long")
				}
			}
		}
	}
	req.resource = string(bytes.TrimSpace(text))
	return req, nil
}

// skipTo reads to the end of the element at depth 1, from depth.
func (n *negotiation) skipTo(depth int) error {
	for ; depth > 0; depth-- {
		if err := n.d.Skip(); err != nil {
			return err
		}
	}
	return nil
}
