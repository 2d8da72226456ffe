package websocket

import (
	"bytes"
	"encoding/xml"
)

// Namespaces of RFC 7395 framing and of what c2s writes.
const (
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
	xmlURL    = "http://www.w3.org/XML/1998/namespace"
)

var (
	streamHeaderStart = []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'")
	streamEnd         = []byte("</stream:stream>")
	closeFrame        = []byte("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
)

// elementEnd returns the length of the element that starts at b[0] ('<'),
// or -1 when b ends inside it. It is a depth scanner, not a parser: it
// follows tags, quoted attribute values, self-closing tags, end tags,
// comments and CDATA, and leaves well-formedness to the XML decoders that
// read the bytes (c2s's on the read side; on the write side the bytes are
// xmppd's own output).
func elementEnd(b []byte) int {
	depth := 0
	i := 0
	for i < len(b) {
		if b[i] != '<' {
			if depth == 0 {
				return -1 // text at the top: not an element
			}
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				return -1
			}
			i += j
			continue
		}
		rest := b[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			j := bytes.Index(rest, []byte("-->"))
			if j < 0 {
				return -1
			}
			i += j + 3
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			j := bytes.Index(rest, []byte("]]>"))
			if j < 0 {
				return -1
			}
			i += j + 3
			continue
		case bytes.HasPrefix(rest, []byte("<?")):
			j := bytes.Index(rest, []byte("?>"))
			if j < 0 {
				return -1
			}
			i += j + 2
			continue
		}
		end, selfClosing := tagEnd(rest)
		if end < 0 {
			return -1
		}
		switch {
		case len(rest) > 1 && rest[1] == '/':
			depth--
		case !selfClosing:
			depth++
		}
		i += end
		if depth <= 0 {
			return i
		}
	}
	return -1
}

// tagEnd returns the length of the tag at the start of b, through its
// '>', skipping quoted values, and whether it is self-closing; -1 when b
// ends inside it.
func tagEnd(b []byte) (int, bool) {
	var quote byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1, b[i-1] == '/'
		}
	}
	return -1, false
}

// onlySpace reports whether b is XML white space only.
func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// attr is one attribute of a start tag as written: its name and its
// value, still escaped.
type attr struct {
	name, value []byte
}

// startTag splits a start tag ("<name a='v' ...>" or ".../>") into its
// name and attributes, the values left escaped, appended to attrs (a
// caller's array keeps a stanza's few off the heap).
func startTag(tag []byte, attrs []attr) (name []byte, _ []attr) {
	i := 1
	for i < len(tag) && !isTagSpace(tag[i]) && tag[i] != '>' && tag[i] != '/' {
		i++
	}
	name = tag[1:i]
	for {
		for i < len(tag) && isTagSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || tag[i] == '>' || tag[i] == '/' {
			return name, attrs
		}
		eq := bytes.IndexByte(tag[i:], '=')
		if eq < 0 {
			return name, attrs
		}
		an := bytes.TrimSpace(tag[i : i+eq])
		i += eq + 1
		for i < len(tag) && isTagSpace(tag[i]) {
			i++
		}
		if i >= len(tag) {
			return name, attrs
		}
		q := tag[i]
		end := bytes.IndexByte(tag[i+1:], q)
		if end < 0 {
			return name, attrs
		}
		attrs = append(attrs, attr{name: an, value: tag[i+1 : i+1+end]})
		i += end + 2
	}
}

func isTagSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendOpen appends the RFC 7395 <open/> that stands for c2s's stream
// header tag ("<stream:stream ...>"), with the header's attributes but
// its namespace declarations.
func appendOpen(dst, header []byte) []byte {
	dst = append(dst, "<open xmlns='"+NSFraming+"'"...)
	_, attrs := startTag(header, nil)
	for _, a := range attrs {
		if bytes.Equal(a.name, []byte("xmlns")) || bytes.HasPrefix(a.name, []byte("xmlns:")) {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, a.name...)
		dst = append(dst, "='"...)
		dst = append(dst, a.value...)
		dst = append(dst, '\'')
	}
	return append(dst, "/>"...)
}

// appendQualified appends a top-level element c2s wrote, declaring the
// namespace that the stream header declared for it on a TCP stream (RFC
// 7395 §3.3.3: every framed element is namespace-qualified on its own):
// the stream prefix on <stream:features/> and <stream:error/>, jabber:client
// on an unprefixed element that has no xmlns.
func appendQualified(dst, el []byte) []byte {
	tagLen, _ := tagEnd(el)
	var buf [8]attr
	name, attrs := startTag(el[:tagLen], buf[:0])
	var decl string
	if prefix, _, ok := bytes.Cut(name, []byte(":")); ok {
		if bytes.Equal(prefix, []byte("stream")) && !hasAttr(attrs, "xmlns:stream") {
			decl = " xmlns:stream='" + nsStream + "'"
		}
	} else if !hasAttr(attrs, "xmlns") {
		decl = " xmlns='" + nsClient + "'"
	}
	if decl == "" {
		return append(dst, el...)
	}
	n := 1 + len(name)
	dst = append(dst, el[:n]...)
	dst = append(dst, decl...)
	return append(dst, el[n:]...)
}

func hasAttr(attrs []attr, name string) bool {
	for _, a := range attrs {
		if string(a.name) == name {
			return true
		}
	}
	return false
}

// framingError returns what Read reports for a message that breaks RFC
// 7395's framing; msg becomes the stream error's text.
func framingError(msg string) error {
	return &xml.SyntaxError{Msg: msg, Line: 1}
}

// framingElement is an <open/> or <close/> of RFC 7395 §3.3.
type framingElement struct {
	close bool
	attrs []xml.Attr
}

// parseFraming returns the framing element a message holds, or ok false
// when it holds something else. A malformed <open/> or <close/>, or one
// in another namespace, is an error.
func parseFraming(msg []byte) (f framingElement, ok bool, err error) {
	if !bytes.HasPrefix(msg, []byte("<open")) && !bytes.HasPrefix(msg, []byte("<close")) {
		return f, false, nil
	}
	name, _ := startTag(msg, nil)
	if string(name) != "open" && string(name) != "close" {
		return f, false, nil
	}
	d := xml.NewDecoder(bytes.NewReader(msg))
	tok, err := d.Token()
	if err != nil {
		return f, false, framingError("malformed <" + string(name) + "/>")
	}
	start, _ := tok.(xml.StartElement)
	if start.Name.Space != NSFraming {
		return f, false, framingError("<" + string(name) + "/> must be in the " + NSFraming + " namespace")
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return f, false, framingError("malformed <" + string(name) + "/>")
		}
		if _, end := tok.(xml.EndElement); end {
			break
		}
		if cd, text := tok.(xml.CharData); !text || !onlySpace(cd) {
			return f, false, framingError("<" + string(name) + "/> must be empty")
		}
	}
	return framingElement{close: start.Name.Local == "close", attrs: start.Attr}, true, nil
}

// appendHeader appends the stream header that stands for a client's
// <open/>, with its to, from, version and xml:lang.
func appendHeader(dst []byte, attrs []xml.Attr) []byte {
	dst = append(dst, streamHeaderStart...)
	for _, a := range attrs {
		var name string
		switch {
		case a.Name.Space == "" && (a.Name.Local == "to" || a.Name.Local == "from" || a.Name.Local == "version"):
			name = a.Name.Local
		case (a.Name.Space == xmlURL || a.Name.Space == "xml") && a.Name.Local == "lang":
			name = "xml:lang"
		default:
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, name...)
		dst = append(dst, "='"...)
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(a.Value))
		dst = append(dst, bytes.ReplaceAll(b.Bytes(), []byte("'"), []byte("&apos;"))...)
		dst = append(dst, '\'')
	}
	return append(dst, '>')
}
