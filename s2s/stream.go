package s2s

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/ratelimit"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces of server-to-server streams.
const (
	NSServer    = "jabber:server"
	NSDialback  = "jabber:server:dialback"
	nsStreams   = "http://etherx.jabber.org/streams"
	nsStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsDBFeature = "urn:xmpp:features:dialback"
)

var errTooLarge = errors.New("s2s: stanza too large")

// streamErr is a stream error (RFC 6120 §4.9): sent to end a stream, or
// received from the peer.
type streamErr struct{ cond, text string }

func (e streamErr) Error() string {
	if e.text == "" {
		return "stream error " + e.cond
	}
	return "stream error " + e.cond + ": " + e.text
}

var restricted = streamErr{"restricted-xml", "comments, processing instructions and DTDs are not allowed"}

// streamErrorXML serialises a stream error and the end of the stream.
func streamErrorXML(cond, text string) []byte {
	b := []byte("<stream:error><" + cond + " xmlns='" + nsStreamErr + "'/>")
	if text != "" {
		b = append(b, "<text xmlns='"+nsStreamErr+"' xml:lang='en'>"...)
		b = xmlenc.AppendEscaped(b, []byte(text), false)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error></stream:stream>"...)
}

// header serialises a stream header of a server-to-server stream.
func header(from, to, id string) []byte {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='" + NSServer + "' xmlns:stream='" + nsStreams +
		"' xmlns:db='" + NSDialback + "' version='1.0'")
	if from != "" {
		b = xmlenc.AppendAttr(b, "from", from)
	}
	if to != "" {
		b = xmlenc.AppendAttr(b, "to", to)
	}
	if id != "" {
		b = xmlenc.AppendAttr(b, "id", id)
	}
	return append(b, '>')
}

// reader reads one stream: a decoder over a reader that bounds the bytes
// of each top-level element and the read rate of the connection.
type reader struct {
	lr *limitReader
	d  *xml.Decoder
}

func newReader(nc net.Conn, max int) *reader {
	lr := &limitReader{r: bufio.NewReader(nc), max: max}
	return &reader{lr: lr, d: xml.NewDecoder(lr)}
}

// attrs are a start element's attributes without a namespace.
func attrs(t xml.StartElement) map[string]string {
	m := make(map[string]string, len(t.Attr))
	for _, a := range t.Attr {
		if a.Name.Space == "" {
			m[a.Name.Local] = a.Value
		}
	}
	return m
}

// header reads the peer's stream header and returns its attributes.
func (r *reader) header() (map[string]string, error) {
	for {
		tok, err := r.d.Token()
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
			a := attrs(t)
			if a["xmlns"] != NSServer && !hasDefaultNS(t, NSServer) {
				return nil, streamErr{"invalid-namespace", "want the default namespace " + NSServer}
			}
			return a, nil
		default:
			return nil, restricted
		}
	}
}

// hasDefaultNS reports whether t declares ns as its default namespace
// (encoding/xml keeps the declaration as an attribute xmlns).
func hasDefaultNS(t xml.StartElement, ns string) bool {
	for _, a := range t.Attr {
		if a.Name.Local == "xmlns" && (a.Name.Space == "" || a.Name.Space == "xmlns") && a.Value == ns {
			return true
		}
	}
	return false
}

// next returns the next top-level element's start, skipping white space
// (keepalives); the end of the peer's stream is io.EOF, a stream error
// from the peer a streamErr with the condition it names.
func (r *reader) next() (xml.StartElement, error) {
	for {
		r.lr.n = 0
		tok, err := r.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, streamErr{"bad-format", "text between stanzas"}
			}
		case xml.EndElement:
			return xml.StartElement{}, io.EOF
		case xml.StartElement:
			if t.Name.Space == nsStreams && t.Name.Local == "error" {
				e, err := r.element(t)
				if err != nil {
					return xml.StartElement{}, err
				}
				cond := "undefined-condition"
				var text string
				for _, k := range e.kids {
					if k.name.Local == "text" {
						text = k.text
					} else if k.name.Space == nsStreamErr {
						cond = k.name.Local
					}
				}
				return xml.StartElement{}, fmt.Errorf("s2s: the peer ended the stream: %w", peerError{streamErr{cond, text}})
			}
			return t, nil
		default:
			return xml.StartElement{}, restricted
		}
	}
}

// peerError is a stream error the peer sent (not one to send back).
type peerError struct{ streamErr }

// elem is a small element read whole: negotiation elements.
type elem struct {
	name  xml.Name
	attrs map[string]string
	text  string
	kids  []elem
}

func (e elem) child(space, local string) (elem, bool) {
	for _, k := range e.kids {
		if k.name.Space == space && k.name.Local == local {
			return k, true
		}
	}
	return elem{}, false
}

// element reads the rest of the element start opens into an elem.
func (r *reader) element(start xml.StartElement) (elem, error) { return r.elementAt(start, 1) }

// maxDepth bounds the nesting of what a peer sends (c2s bounds it too).
const maxDepth = 64

var tooDeep = streamErr{"policy-violation", fmt.Sprintf("elements nested deeper than %d", maxDepth)}

func (r *reader) elementAt(start xml.StartElement, depth int) (elem, error) {
	if depth > maxDepth {
		return elem{}, tooDeep
	}
	e := elem{name: start.Name, attrs: attrs(start)}
	var text strings.Builder
	for {
		tok, err := r.d.Token()
		if err != nil {
			return e, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			k, err := r.elementAt(t, depth+1)
			if err != nil {
				return e, err
			}
			e.kids = append(e.kids, k)
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			e.text = strings.TrimSpace(text.String())
			return e, nil
		default:
			return e, restricted
		}
	}
}

// stanza reads the rest of a stanza start opens, received on a stream of
// the peer's domain from, and returns it as the router keeps stanzas (in
// jabber:client). It checks the addresses: from must be in a domain the
// peer authenticated (authed), to in one this server serves.
func (r *reader) stanza(start xml.StartElement, authed func(domain string) bool, serves func(domain string) bool) (*router.Stanza, error) {
	var kind router.Kind
	if start.Name.Space == NSServer || start.Name.Space == stanza.NSClient {
		kind = router.KindOf(start.Name.Local)
	}
	if kind == 0 {
		return nil, streamErr{"unsupported-stanza-type", "<" + start.Name.Local + "> is not a stanza"}
	}
	if !xmlenc.Writable(start) {
		return nil, badName
	}
	st := &router.Stanza{Kind: kind}
	var hasFrom, hasTo bool
	out := make([]xml.Attr, 0, len(start.Attr))
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue // declarations are written again where needed
		}
		if a.Name.Space == "" {
			switch a.Name.Local {
			case "from":
				j, err := jid.Parse(a.Value)
				if err != nil || !authed(j.Domainpart()) {
					return nil, streamErr{"invalid-from", fmt.Sprintf("from %q is not in a domain this stream authenticated", a.Value)}
				}
				st.From, hasFrom = j, true
				a.Value = j.String()
			case "to":
				j, err := jid.Parse(a.Value)
				if err != nil {
					return nil, streamErr{"improper-addressing", fmt.Sprintf("to %q is not a JID", a.Value)}
				}
				if !serves(j.Domainpart()) {
					return nil, streamErr{"host-unknown", j.Domainpart() + " is not served here"}
				}
				st.To, hasTo = j, true
				a.Value = j.String()
			case "type":
				st.Type = a.Value
			case "id":
				st.ID = a.Value
			}
		}
		out = append(out, a)
	}
	if !hasFrom || !hasTo {
		return nil, streamErr{"improper-addressing", "a stanza between servers needs a from and a to"}
	}
	start.Attr = out
	start.Name.Space = stanza.NSClient
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	enc.EncodeToken(start)
	for depth := 1; depth > 0; {
		tok, err := r.d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// The server namespace, inherited or not, becomes the
			// stanza namespace the router keeps stanzas in.
			if t.Name.Space == NSServer {
				t.Name.Space = stanza.NSClient
			}
			if depth == 1 && st.Payload.Local == "" {
				st.Payload = t.Name
			}
			depth++
			if depth > maxDepth {
				return nil, tooDeep
			}
			if !xmlenc.Writable(t) {
				return nil, badName
			}
			tok = t
		case xml.EndElement:
			if t.Name.Space == NSServer {
				t.Name.Space = stanza.NSClient
			}
			tok = t
			depth--
		case xml.CharData:
		default:
			return nil, restricted
		}
		if err := enc.EncodeToken(tok); err != nil {
			return nil, streamErr{"not-well-formed", err.Error()}
		}
	}
	st.Raw = enc.Buf
	return st, nil
}

// badName ends a stream whose stanza has a name that is XML but not
// namespace-well-formed, or an attribute given twice (xmlenc.Writable):
// written again, they would break the streams of its recipients, and
// stored (offline, archive) their every login.
var badName = streamErr{"not-well-formed", "an element or attribute name is not namespace-well-formed, or an attribute is given twice"}

// limitReader counts the bytes the decoder reads since n was last reset
// (before each top-level element) and fails past max.
type limitReader struct {
	r      *bufio.Reader
	n, max int
}

// shapedConn slows reading a connection to its shaper's rate, below TLS
// (the bytes on the wire) as c2s's guard does above it.
type shapedConn struct {
	net.Conn
	shape *ratelimit.Shaper
}

func (c shapedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.shape.Take(n)
	return n, err
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
