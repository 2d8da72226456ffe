package mam

import (
	"bytes"
	"encoding/xml"
	"html"

	"mellium.im/xmpp/stanza"
)

// Namespaces the archive reads or writes.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	NSSID      = "urn:xmpp:sid:0" // XEP-0359
	NSRSM      = "http://jabber.org/protocol/rsm"
	NSForward  = "urn:xmpp:forward:0"
	NSDelay    = "urn:xmpp:delay"
	NSHints    = "urn:xmpp:hints" // XEP-0334
	NSData     = "jabber:x:data"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
)

var nsClientBytes = []byte(stanza.NSClient)

// span is a range of a stanza's bytes.
type span struct{ start, end int }

// children is what the archive needs to know of a message's top-level
// children.
type children struct {
	body             bool // a <body/> in jabber:client
	store            bool // XEP-0334 hints
	noStore          bool
	noPermanentStore bool
	// sids are the <stanza-id/> children (XEP-0359), with their by.
	sids []stanzaID
}

type stanzaID struct {
	by string
	at span
}

// scanMessage reads the top-level children of a message. Messages are
// the router's serialised form (well-formed, entities escaped), so a byte
// walk finds the children several times faster than encoding/xml; a
// prefixed child name, a comment or CDATA sends it to scanSlow, which
// resolves namespaces properly, so a prefixed <stanza-id/> cannot slip
// past the check for forged ids.
func scanMessage(raw []byte) (c children, ok bool) {
	i, self := tagEnd(raw, 0)
	if i < 0 {
		return c, false
	}
	if self {
		return c, true
	}
	depth := 1
	childStart := -1
	var name, ns []byte
	var tag []byte
	for i < len(raw) {
		j := bytes.IndexByte(raw[i:], '<')
		if j < 0 {
			return c, false
		}
		i += j
		if i+1 >= len(raw) {
			return c, false
		}
		switch raw[i+1] {
		case '/':
			e := bytes.IndexByte(raw[i:], '>')
			if e < 0 {
				return c, false
			}
			i += e + 1
			depth--
			if depth == 0 {
				return c, true
			}
			if depth == 1 {
				c.note(name, ns, tag, span{childStart, i})
			}
			continue
		case '!', '?':
			return scanSlow(raw)
		}
		end, self := tagEnd(raw, i)
		if end < 0 {
			return c, false
		}
		if depth == 1 {
			tag = raw[i:end]
			name = tagName(tag)
			if bytes.IndexByte(name, ':') >= 0 {
				return scanSlow(raw)
			}
			ns = attr(tag, "xmlns")
			switch {
			case ns == nil:
				ns = nsClientBytes
			case bytes.IndexByte(ns, '&') >= 0:
				// A character reference spells the namespace as well
				// (urn:xmpp:&#x73;id:0): compare what it means.
				ns = []byte(unescape(ns))
			}
			childStart = i
			if self {
				c.note(name, ns, tag, span{i, end})
			}
		}
		if !self {
			depth++
		}
		i = end
	}
	return c, false
}

// note records one top-level child.
func (c *children) note(name, ns, tag []byte, at span) {
	switch string(ns) {
	case stanza.NSClient:
		if string(name) == "body" {
			c.body = true
		}
	case NSHints:
		switch string(name) {
		case "store":
			c.store = true
		case "no-store":
			c.noStore = true
		case "no-permanent-store":
			c.noPermanentStore = true
		}
	case NSSID:
		if string(name) == "stanza-id" {
			c.sids = append(c.sids, stanzaID{by: unescape(attr(tag, "by")), at: at})
		}
	}
}

// tagEnd returns the index just past the start tag beginning at raw[i]
// and whether it closes itself; -1 when it does not end. Quoted attribute
// values may hold '>'.
func tagEnd(raw []byte, i int) (int, bool) {
	var quote byte
	for k := i + 1; k < len(raw); k++ {
		b := raw[k]
		switch {
		case quote != 0:
			if b == quote {
				quote = 0
			}
		case b == '"' || b == '\'':
			quote = b
		case b == '>':
			return k + 1, raw[k-1] == '/'
		}
	}
	return -1, false
}

// tagName is the element name of a start tag.
func tagName(tag []byte) []byte {
	n := 1
	for n < len(tag) && !isSpace(tag[n]) && tag[n] != '/' && tag[n] != '>' {
		n++
	}
	return tag[1:n]
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// attr returns the raw value of the attribute name in a start tag, nil
// when it has none.
func attr(tag []byte, name string) []byte {
	k := len(tagName(tag)) + 1
	for k < len(tag) {
		for k < len(tag) && isSpace(tag[k]) {
			k++
		}
		a := k
		for k < len(tag) && tag[k] != '=' && !isSpace(tag[k]) && tag[k] != '>' && tag[k] != '/' {
			k++
		}
		n := tag[a:k]
		for k < len(tag) && (isSpace(tag[k]) || tag[k] == '=') {
			k++
		}
		if k >= len(tag) || (tag[k] != '"' && tag[k] != '\'') {
			return nil
		}
		q := tag[k]
		e := bytes.IndexByte(tag[k+1:], q)
		if e < 0 {
			return nil
		}
		v := tag[k+1 : k+1+e]
		if string(n) == name {
			return v
		}
		k += e + 2
	}
	return nil
}

func unescape(v []byte) string {
	if bytes.IndexByte(v, '&') < 0 {
		return string(v)
	}
	return html.UnescapeString(string(v)) // XML's entities are a subset of HTML's
}

// scanSlow is scanMessage with encoding/xml, for the rare message the
// byte walk leaves to it.
func scanSlow(raw []byte) (c children, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	depth := 0
	var childStart int64
	var child xml.StartElement
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return c, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				childStart, child = before, t.Copy()
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				c.noteName(child, span{int(childStart), int(d.InputOffset())})
			}
			if depth == 0 {
				return c, true
			}
		}
	}
}

func (c *children) noteName(e xml.StartElement, at span) {
	if e.Name.Space == NSSID && e.Name.Local == "stanza-id" {
		by := ""
		for _, a := range e.Attr {
			if a.Name.Space == "" && a.Name.Local == "by" {
				by = a.Value
			}
		}
		c.sids = append(c.sids, stanzaID{by: by, at: at})
		return
	}
	c.note([]byte(e.Name.Local), []byte(e.Name.Space), nil, at)
}

// without returns raw with the spans cut out (they are in order and do
// not overlap); raw itself is not changed.
func without(raw []byte, cut []span) []byte {
	out := make([]byte, 0, len(raw))
	last := 0
	for _, s := range cut {
		out = append(out, raw[last:s.start]...)
		last = s.end
	}
	return append(out, raw[last:]...)
}
