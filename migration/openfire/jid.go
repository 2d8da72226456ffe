package openfire

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
)

// rewriter moves JIDs of the Openfire domain (and of its subdomains, such
// as conference.<domain>) to xmppd's domain. With from == to it changes
// nothing.
type rewriter struct {
	from, to string // lower-cased
}

func (r rewriter) active() bool { return r.from != r.to }

// domain rewrites a bare domain.
func (r rewriter) domain(d string) string {
	ld := strings.ToLower(d)
	switch {
	case !r.active():
		return d
	case ld == r.from:
		return r.to
	case strings.HasSuffix(ld, "."+r.from):
		return d[:len(d)-len(r.from)] + r.to
	}
	return d
}

// jid rewrites the domain part of a JID (bare or full).
func (r rewriter) jid(j string) string {
	if !r.active() {
		return j
	}
	rest, res := j, ""
	if i := strings.IndexByte(j, '/'); i >= 0 {
		rest, res = j[:i], j[i:]
	}
	local := ""
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		local, rest = rest[:i+1], rest[i+1:]
	}
	return local + r.domain(rest) + res
}

// jidAttrs are the attributes rewritten in stored XML: a stanza's to and
// from, and jid, as in bookmarks (<conference jid='…'/>) and roster items.
var jidAttrs = map[string]bool{"to": true, "from": true, "jid": true}

// xml rewrites the JID attributes of every element of a stored XML
// fragment. Everything else is copied byte for byte; a fragment that does
// not parse is returned unchanged.
func (r rewriter) xml(b []byte) []byte {
	if !r.active() || len(b) == 0 {
		return b
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var out bytes.Buffer
	last := int64(0)
	for {
		start := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return b
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		changed := false
		for i, a := range se.Attr {
			if a.Name.Space == "" && jidAttrs[a.Name.Local] {
				if v := r.jid(a.Value); v != a.Value {
					se.Attr[i].Value = v
					changed = true
				}
			}
		}
		if !changed {
			continue
		}
		end := d.InputOffset()
		raw := b[start:end]
		// Whitespace between tokens before the tag stays where it was.
		lt := int64(bytes.IndexByte(raw, '<'))
		if lt < 0 {
			return b
		}
		out.Write(b[last : start+lt])
		out.WriteByte('<')
		out.WriteString(qname(se.Name))
		for _, a := range se.Attr {
			out.WriteByte(' ')
			out.WriteString(qname(a.Name))
			out.WriteString(`="`)
			xml.EscapeText(&out, []byte(a.Value))
			out.WriteByte('"')
		}
		if bytes.HasSuffix(raw, []byte("/>")) {
			out.WriteString("/>")
		} else {
			out.WriteByte('>')
		}
		last = end
	}
	out.Write(b[last:])
	return out.Bytes()
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// stanzaParts returns a stored stanza's root attribute values and its
// children (the bytes between the root's start and end tags).
func stanzaParts(b []byte) (attrs map[string]string, inner []byte, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	var from int64
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil, nil, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				attrs = map[string]string{}
				for _, a := range t.Attr {
					if a.Name.Space == "" {
						attrs[a.Name.Local] = a.Value
					}
				}
				from = d.InputOffset()
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				end := d.InputOffset()
				// The end tag is the last thing read: find its "</".
				if i := bytes.LastIndex(b[:end], []byte("</")); i >= int(from) {
					return attrs, b[from:i], true
				}
				return attrs, nil, true // <message/>
			}
		}
	}
}
