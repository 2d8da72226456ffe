package muc

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"time"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces of XEP-0045 and of the specifications it leans on.
const (
	NS        = "http://jabber.org/protocol/muc"
	NSUser    = "http://jabber.org/protocol/muc#user"
	NSAdmin   = "http://jabber.org/protocol/muc#admin"
	NSOwner   = "http://jabber.org/protocol/muc#owner"
	NSInfo    = "http://jabber.org/protocol/disco#info"
	NSItems   = "http://jabber.org/protocol/disco#items"
	NSPing    = "urn:xmpp:ping"
	NSDelay   = "urn:xmpp:delay"
	NSData    = "jabber:x:data"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	// NSSelfPing is the XEP-0410 feature: the service answers an
	// occupant's ping to its own occupant JID itself.
	NSSelfPing = "http://jabber.org/protocol/muc#self-ping-optimization"
)

// xw writes compact XML into b: attributes in single quotes, values and
// text escaped, a namespace only where the caller names one.
type xw struct{ b []byte }

// open writes a start tag; attrs are name, value pairs, and pairs with an
// empty value are left out.
func (w *xw) open(name string, attrs ...string) {
	w.tag(name, attrs)
	w.b = append(w.b, '>')
}

// empty writes an element without children.
func (w *xw) empty(name string, attrs ...string) {
	w.tag(name, attrs)
	w.b = append(w.b, "/>"...)
}

func (w *xw) tag(name string, attrs []string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			w.b = xmlenc.AppendAttr(w.b, attrs[i], attrs[i+1])
		}
	}
}

// close writes an end tag.
func (w *xw) close(name string) {
	w.b = append(w.b, "</"...)
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

// text writes escaped character data.
func (w *xw) text(s string) { w.b = xmlenc.AppendEscaped(w.b, []byte(s), false) }

// elem writes <name attrs…>text</name>.
func (w *xw) elem(name, text string, attrs ...string) {
	w.tag(name, attrs)
	w.b = append(w.b, '>')
	w.text(text)
	w.close(name)
}

// status writes a muc#user status code.
func (w *xw) status(code int) {
	w.b = append(w.b, "<status code='"...)
	w.b = strconv.AppendInt(w.b, int64(code), 10)
	w.b = append(w.b, "'/>"...)
}

// stanzaError writes an RFC 6120 §8.3 error element; by is the entity
// that found the error (XEP-0045 names the room).
func (w *xw) stanzaError(e stanza.Error, by string) {
	typ := string(e.Type)
	if typ == "" {
		typ = string(stanza.Cancel)
	}
	w.open("error", "type", typ, "by", by)
	w.empty(string(e.Condition), "xmlns", NSStanzas)
	if t := e.Text["en"]; t != "" {
		w.elem("text", t, "xmlns", NSStanzas, "xml:lang", "en")
	}
	w.close("error")
}

// header writes the start tag of a stanza of kind k without a to
// attribute: the room adds each recipient's (see room.queueLocked).
func (w *xw) header(k router.Kind, typ, id, from string) {
	w.open(k.String(), "type", typ, "id", id, "from", from)
}

// stamp formats t as an XEP-0082 DateTime in UTC, with milliseconds.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// inner returns the children of a serialised stanza: the bytes between
// its start tag and its end tag. xmppd's serialisation escapes '>' in
// attribute values, so the first '>' ends the start tag.
func inner(raw []byte) []byte {
	i := bytes.IndexByte(raw, '>')
	if i < 1 || raw[i-1] == '/' {
		return nil
	}
	j := bytes.LastIndex(raw, []byte("</"))
	if j <= i {
		return nil
	}
	return raw[i+1 : j]
}

// err is a shorthand for router.ErrorText.
func errText(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	return router.ErrorText(typ, cond, text)
}

// children walks the child elements of a stanza: fn gets each child's
// start element and a decoder positioned after it, and must consume the
// child (d.Skip, d.DecodeElement or reading to its end).
func children(st *router.Stanza, fn func(d *xml.Decoder, start xml.StartElement) error) error {
	d := st.Decoder()
	top := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !top {
				top = true
				continue
			}
			if err := fn(d, t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil // the stanza's own end
		}
	}
}

// copyElement encodes start and the rest of its element from d into enc.
func copyElement(enc *xmlenc.Encoder, d *xml.Decoder, start xml.StartElement) error {
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	for depth := 1; depth > 0; {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		if err := enc.EncodeToken(tok); err != nil {
			return err
		}
	}
	return nil
}

// textOf reads the character data of the element started by start.
func textOf(d *xml.Decoder, start xml.StartElement) (string, error) {
	var s string
	err := d.DecodeElement(&s, &start)
	return s, err
}

// stanzaErrorCondition returns the defined condition of an error
// stanza, "" when it has none.
func stanzaErrorCondition(st *router.Stanza) string {
	cond := ""
	children(st, func(d *xml.Decoder, start xml.StartElement) error {
		if start.Name.Local != "error" {
			return d.Skip()
		}
		for {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Space == NSStanzas && t.Name.Local != "text" && cond == "" {
					cond = t.Name.Local
				}
				if err := d.Skip(); err != nil {
					return err
				}
			case xml.EndElement:
				return nil
			}
		}
	})
	return cond
}
