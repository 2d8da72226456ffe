// Package xmlenc serialises encoding/xml tokens into the compact form xmppd
// keeps stanzas in: a namespace is declared only where it differs from the
// parent's, so a stanza read from a jabber:client stream comes out as
// <message to='…'><body>hi</body></message> and can be written to any
// jabber:client stream as is.
//
// encoding/xml's own Encoder declares xmlns on every element and cannot be
// reused across documents without allocating; stanzas are serialised once per
// stanza on the hot path, so this small writer is kept by hand.
package xmlenc

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NSXML is the namespace bound to the xml: prefix (xml:lang).
const NSXML = "http://www.w3.org/XML/1998/namespace"

// ErrUnbalanced is returned when an end element does not match its start.
var ErrUnbalanced = errors.New("xmlenc: unbalanced end element")

// Encoder appends tokens to Buf. The zero value is ready to use with the
// default namespace of the enclosing stream set in Default. An Encoder is not
// safe for concurrent use; it is meant to be reused (Reset) for every stanza.
type Encoder struct {
	Buf     []byte
	Default string   // namespace in scope outside the first element, e.g. jabber:client
	spaces  []string // namespace in scope at each open element
}

// Reset empties the buffer and the element stack, keeping capacity.
func (e *Encoder) Reset() {
	e.Buf = e.Buf[:0]
	e.spaces = e.spaces[:0]
}

// Depth is the number of elements open.
func (e *Encoder) Depth() int { return len(e.spaces) }

func (e *Encoder) scope() string {
	if n := len(e.spaces); n > 0 {
		return e.spaces[n-1]
	}
	return e.Default
}

// EncodeToken appends one token. Comments, processing instructions and
// directives are dropped: they never belong inside a stanza.
func (e *Encoder) EncodeToken(t xml.Token) error {
	switch t := t.(type) {
	case xml.StartElement:
		e.start(t)
	case xml.EndElement:
		if len(e.spaces) == 0 {
			return ErrUnbalanced
		}
		e.spaces = e.spaces[:len(e.spaces)-1]
		e.Buf = append(e.Buf, "</"...)
		e.Buf = append(e.Buf, t.Name.Local...)
		e.Buf = append(e.Buf, '>')
	case xml.CharData:
		e.Buf = AppendEscaped(e.Buf, t, false)
	}
	return nil
}

// Flush is a no-op; it lets an Encoder serve as an xmlstream.TokenWriteFlusher.
func (e *Encoder) Flush() error { return nil }

func (e *Encoder) start(t xml.StartElement) {
	// An empty namespace inherits the parent's, as in tokens built by hand
	// (mellium's payload types); tokens from a decoder are always resolved.
	space := t.Name.Space
	if space == "" {
		space = e.scope()
	}
	e.Buf = append(e.Buf, '<')
	e.Buf = append(e.Buf, t.Name.Local...)
	if space != e.scope() {
		e.Buf = append(e.Buf, " xmlns='"...)
		e.Buf = AppendEscaped(e.Buf, []byte(space), true)
		e.Buf = append(e.Buf, '\'')
	}
	prefixes := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			continue // written above from Name.Space
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && len(a.Name.Local) > 6 && a.Name.Local[:6] == "xmlns:"):
			continue // prefix declarations: we choose our own prefixes
		case a.Name.Space == "":
			e.Buf = append(e.Buf, ' ')
			e.Buf = append(e.Buf, a.Name.Local...)
		case a.Name.Space == NSXML || a.Name.Space == "xml":
			e.Buf = append(e.Buf, " xml:"...)
			e.Buf = append(e.Buf, a.Name.Local...)
		default:
			p := "a" + strconv.Itoa(prefixes)
			prefixes++
			e.Buf = append(e.Buf, " xmlns:"...)
			e.Buf = append(e.Buf, p...)
			e.Buf = append(e.Buf, "='"...)
			e.Buf = AppendEscaped(e.Buf, []byte(a.Name.Space), true)
			e.Buf = append(e.Buf, "' "...)
			e.Buf = append(e.Buf, p...)
			e.Buf = append(e.Buf, ':')
			e.Buf = append(e.Buf, a.Name.Local...)
		}
		e.Buf = append(e.Buf, "='"...)
		e.Buf = AppendEscaped(e.Buf, []byte(a.Value), true)
		e.Buf = append(e.Buf, '\'')
	}
	e.Buf = append(e.Buf, '>')
	e.spaces = append(e.spaces, space)
}

// Copy encodes every token from r until io.EOF.
func (e *Encoder) Copy(r xml.TokenReader) error {
	if r == nil {
		return nil
	}
	for {
		t, err := r.Token()
		if t != nil {
			if err := e.EncodeToken(t); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// AppendEscaped appends s with the XML special characters escaped. Invalid
// UTF-8 and characters XML forbids are replaced with U+FFFD so that the output
// is always well-formed.
func AppendEscaped(dst, s []byte, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		width := 1
		switch {
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '&':
			esc = "&amp;"
		case c == '\'' && attr:
			esc = "&apos;"
		case c == '"' && attr:
			esc = "&quot;"
		case c == '\r':
			esc = "&#xD;"
		case (c == '\n' || c == '\t') && attr:
			if c == '\n' {
				esc = "&#xA;"
			} else {
				esc = "&#x9;"
			}
		case c < 0x20 && c != '\n' && c != '\t':
			esc = "\uFFFD"
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRune(s[i:])
			width = w
			if (r == utf8.RuneError && w == 1) || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
			}
		}
		if esc == "" {
			i += width
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i += width
		last = i
	}
	return append(dst, s[last:]...)
}

// AppendAttr appends ` name='value'` with value escaped.
func AppendAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, "='"...)
	dst = AppendEscaped(dst, []byte(value), true)
	return append(dst, '\'')
}

// AppendDeclaringNS appends raw, a serialised element (a stanza kept in
// the compact form), to dst with xmlns=ns declared on its start tag when
// the tag declares no default namespace: the element can then be nested
// in one of another namespace, as XEP-0297 forwards a stanza. raw's
// attribute values are escaped (as AppendAttr writes them), so the first
// '>' ends the start tag.
func AppendDeclaringNS(dst, raw []byte, ns string) []byte {
	end := -1
	for i, b := range raw {
		if b == '>' {
			end = i
			break
		}
	}
	name := 1
	for name < len(raw) && raw[name] != ' ' && raw[name] != '/' && raw[name] != '>' {
		name++
	}
	if end < 0 || hasDefaultNS(raw[name:end]) {
		return append(dst, raw...)
	}
	dst = append(dst, raw[:name]...)
	dst = AppendAttr(dst, "xmlns", ns)
	return append(dst, raw[name:]...)
}

// hasDefaultNS reports whether the attributes of a start tag declare a
// default namespace.
func hasDefaultNS(attrs []byte) bool {
	for i := 0; i+len(" xmlns=") <= len(attrs); i++ {
		if string(attrs[i:i+len(" xmlns=")]) == " xmlns=" {
			return true
		}
	}
	return false
}

// Writable reports whether t, as encoding/xml read it, can be written
// again and read by others: its local names and those of its attributes
// (namespace declarations aside, which are not written again) are
// namespace-well-formed (no colon, a name start character: encoding/xml
// accepts "a:0", "a:" or ":a" whole or splits them into a local part that
// is not a name), and no attribute is given twice (which encoding/xml does
// not check, and XML forbids).
func Writable(t xml.StartElement) bool {
	if !ncName(t.Name.Local) {
		return false
	}
	for i, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		if !ncName(a.Name.Local) {
			return false
		}
		for _, b := range t.Attr[:i] {
			if b.Name == a.Name {
				return false
			}
		}
	}
	return true
}

func ncName(s string) bool {
	if s == "" || strings.IndexByte(s, ':') >= 0 {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || unicode.IsLetter(r)
}
