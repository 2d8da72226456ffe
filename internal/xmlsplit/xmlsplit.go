// Package xmlsplit splits the byte stream c2s writes into top-level
// elements, for transports whose unit is an element rather than a byte
// (WebSocket messages, BOSH bodies), and qualifies each element with the
// namespaces the stream header declared for it on a TCP stream.
//
// Its scanners follow tags, quoted values, comments and CDATA, and leave
// well-formedness to the XML decoders that read the bytes: on the write
// side they are xmppd's own output.
package xmlsplit

import "bytes"

// Namespaces the stream header declares.
const (
	NSStream = "http://etherx.jabber.org/streams"
	NSClient = "jabber:client"
)

// StreamEnd is the end of a stream.
var StreamEnd = []byte("</stream:stream>")

// ElementEnd returns the length of the element that starts at b[0] ('<'),
// or -1 when b ends inside it (or b starts with text).
func ElementEnd(b []byte) int {
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
		end, selfClosing := TagEnd(rest)
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

// TagEnd returns the length of the tag at the start of b, through its
// '>', skipping quoted values, and whether it is self-closing; -1 when b
// ends inside it.
func TagEnd(b []byte) (int, bool) {
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

// Attr is one attribute of a start tag as written: its name and its
// value, still escaped.
type Attr struct {
	Name, Value []byte
}

// StartTag splits a start tag ("<name a='v' ...>" or ".../>") into its
// name and attributes, the values left escaped, appended to attrs (a
// caller's array keeps a stanza's few off the heap).
func StartTag(tag []byte, attrs []Attr) (name []byte, _ []Attr) {
	i := 1
	for i < len(tag) && !IsSpace(tag[i]) && tag[i] != '>' && tag[i] != '/' {
		i++
	}
	name = tag[1:i]
	for {
		for i < len(tag) && IsSpace(tag[i]) {
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
		for i < len(tag) && IsSpace(tag[i]) {
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
		attrs = append(attrs, Attr{Name: an, Value: tag[i+1 : i+1+end]})
		i += end + 2
	}
}

// OnlySpace reports whether b is XML white space only.
func OnlySpace(b []byte) bool {
	for _, c := range b {
		if !IsSpace(c) {
			return false
		}
	}
	return true
}

// IsSpace reports whether c is XML white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// HasAttr reports whether attrs holds one named name.
func HasAttr(attrs []Attr, name string) bool {
	for _, a := range attrs {
		if string(a.Name) == name {
			return true
		}
	}
	return false
}

// AppendQualified appends a top-level element c2s wrote, declaring the
// namespace that the stream header declared for it on a TCP stream: the
// stream prefix on <stream:features/> and <stream:error/>, jabber:client
// on an unprefixed element that has no xmlns.
func AppendQualified(dst, el []byte) []byte {
	tagLen, _ := TagEnd(el)
	if tagLen < 0 {
		return append(dst, el...)
	}
	var buf [8]Attr
	name, attrs := StartTag(el[:tagLen], buf[:0])
	var decl string
	if prefix, _, ok := bytes.Cut(name, []byte(":")); ok {
		if bytes.Equal(prefix, []byte("stream")) && !HasAttr(attrs, "xmlns:stream") {
			decl = " xmlns:stream='" + NSStream + "'"
		}
	} else if !HasAttr(attrs, "xmlns") {
		decl = " xmlns='" + NSClient + "'"
	}
	if decl == "" {
		return append(dst, el...)
	}
	n := 1 + len(name)
	dst = append(dst, el[:n]...)
	dst = append(dst, decl...)
	return append(dst, el[n:]...)
}

// Kind is what Next found at the start of a buffer.
type Kind int

const (
	Incomplete Kind = iota // more bytes are needed
	Space                  // white space, or an XML declaration, to skip
	Header                 // a stream header's start tag
	End                    // </stream:stream>
	Element                // a complete top-level element
)

// Next reports what b starts with and its length (0 for Incomplete).
// Text outside any element is reported as Element up to the next '<', for
// the caller to pass on as it is.
func Next(b []byte) (Kind, int) {
	i := 0
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	if i > 0 {
		return Space, i
	}
	switch {
	case len(b) == 0:
		return Incomplete, 0
	case bytes.HasPrefix(b, []byte("<?")):
		j := bytes.Index(b, []byte("?>"))
		if j < 0 {
			return Incomplete, 0
		}
		return Space, j + 2
	case bytes.HasPrefix(b, []byte("<stream:stream")):
		n, _ := TagEnd(b)
		if n < 0 {
			return Incomplete, 0
		}
		return Header, n
	case bytes.HasPrefix(b, StreamEnd):
		return End, len(StreamEnd)
	case len(b) < len(StreamEnd) && bytes.HasPrefix(StreamEnd, b):
		return Incomplete, 0
	case b[0] != '<':
		j := bytes.IndexByte(b, '<')
		if j < 0 {
			return Element, len(b)
		}
		return Element, j
	}
	n := ElementEnd(b)
	if n < 0 {
		return Incomplete, 0
	}
	return Element, n
}
