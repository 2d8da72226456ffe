package carbons

import (
	"bytes"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// children is what shouldCopy needs to know of a message's children.
type children struct {
	body, private, noCopy, mucUser, carbon bool
}

// scan reads the top-level children of a message.
func scan(m *router.Stanza) (c children, ok bool) {
	d := m.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return c, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			switch t.Name {
			case xml.Name{Space: stanza.NSClient, Local: "body"}:
				c.body = true
			case xml.Name{Space: NS, Local: "private"}:
				c.private = true
			case xml.Name{Space: NS, Local: "sent"}, xml.Name{Space: NS, Local: "received"}:
				c.carbon = true
			case xml.Name{Space: NSHints, Local: "no-copy"}:
				c.noCopy = true
			case xml.Name{Space: nsMUCUser, Local: "x"}:
				c.mucUser = true
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return c, true
			}
		}
	}
}

// shouldCopy says whether a message is eligible for carbons (XEP-0280 §6)
// and, when it is not, why (for the debug log).
func shouldCopy(m *router.Stanza) (ok bool, reason string) {
	if m.Kind != router.KindMessage {
		return false, "not a message"
	}
	switch m.Type {
	case "error":
		return false, "type error"
	case "groupchat":
		return false, "type groupchat"
	case "headline":
		return false, "type headline"
	case "", "normal", "chat":
	default:
		return false, "unknown type " + m.Type
	}
	c, ok := scan(m)
	switch {
	case !ok:
		return false, "malformed"
	case c.private:
		return false, "private"
	case c.noCopy:
		return false, "no-copy hint"
	case c.carbon:
		return false, "already a carbon copy"
	case m.Type == "chat":
		return true, ""
	case c.mucUser:
		return true, ""
	case c.body:
		return true, ""
	}
	return false, "type normal without a body"
}

// wrap builds a carbon copy: inner (with its namespace declared) in
// <dir xmlns=NS><forwarded xmlns=NSForward>, from the user's bare JID to
// the full JID of the session getting it.
func wrap(typ string, from, to jid.JID, dir string, inner []byte) []byte {
	b := make([]byte, 0, len(inner)+200)
	b = append(b, "<message"...)
	if typ != "" {
		b = xmlenc.AppendAttr(b, "type", typ)
	}
	b = xmlenc.AppendAttr(b, "from", from.String())
	b = xmlenc.AppendAttr(b, "to", to.String())
	b = append(b, '>', '<')
	b = append(b, dir...)
	b = xmlenc.AppendAttr(b, "xmlns", NS)
	b = append(b, "><forwarded"...)
	b = xmlenc.AppendAttr(b, "xmlns", NSForward)
	b = append(b, '>')
	b = append(b, inner...)
	b = append(b, "</forwarded></"...)
	b = append(b, dir...)
	return append(b, "></message>"...)
}

// nsBytes is what a message must contain for stripPrivate to look closer.
var nsBytes = []byte(NS)

// stripPrivate returns raw without its top-level <private/> children in
// NS, and whether there were any. raw is not modified.
func stripPrivate(raw []byte) ([]byte, bool) {
	if !bytes.Contains(raw, nsBytes) {
		return raw, false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	var cut [][2]int64
	depth := 0
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return raw, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Space == NS && t.Name.Local == "private" {
				if err := d.Skip(); err != nil {
					return raw, false
				}
				depth--
				cut = append(cut, [2]int64{start, d.InputOffset()})
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				if len(cut) == 0 {
					return raw, false
				}
				out := make([]byte, 0, len(raw))
				prev := int64(0)
				for _, c := range cut {
					out = append(out, raw[prev:c[0]]...)
					prev = c[1]
				}
				return append(out, raw[prev:]...), true
			}
		}
	}
}
