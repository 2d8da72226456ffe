package c2s

import (
	"errors"
	"io"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// The read loop reads a stanza in one pass over the guard's buffer when it
// has the shape nearly every client sends: names without prefixes or
// non-ASCII letters, namespaces declared with xmlns, attribute values and
// text of valid characters with the predefined entities and character
// references only. The stanza's header is parsed, to and from are stamped
// on a rewritten start tag, and everything inside it is copied as the
// client wrote it: it is well-formed XML (checked here, strictly) in the
// same namespaces, so recipients read what encoding/xml would have given
// them. This is several times cheaper than tokenising with encoding/xml and
// encoding the tokens again (BenchmarkReadStanza).
//
// Anything else (a prefix, CDATA, an unusual attribute, a stream-level
// element, an error of any kind, a read that fails) is not judged here: the
// bytes read so far are put back in front of the guard's buffer and the
// element is read by encoding/xml and stanzaEncoder.read as before, so
// every error and every rare form keeps exactly one implementation.

// errSlowPath says the element is left to encoding/xml.
var errSlowPath = errors.New("c2s: element needs the full XML decoder")

// scanAttr is one attribute of the stanza's own start tag, as offsets into
// the raw bytes.
type scanAttr struct {
	name, value span
}

// span is a range of the raw bytes.
type span struct{ start, end int }

// stanzaScanner holds the buffers of one scan; it lives in the pooled
// stanzaEncoder so that an idle session keeps none.
type stanzaScanner struct {
	g    *guardConn
	raw  []byte // bytes taken from g for this element (and possibly past it)
	base int    // raw[base:] is the last buffer taken from g, still in g.rbuf
	i    int    // next byte of raw to parse

	open  []span     // names of the open elements
	attrs []scanAttr // attributes of the stanza's start tag
	names []span     // attribute names of the element being read, for duplicates
}

// more appends the guard's next buffer to raw. It reports false when none
// can be had: the read failed (the error stays in the guard for the slow
// path to meet) or returned nothing.
func (sc *stanzaScanner) more() bool {
	g := sc.g
	if g.rpos == g.rend {
		// Everything taken so far is in raw only: a read reuses rbuf.
		sc.base = len(sc.raw)
		if g.rerr != nil {
			return false
		}
		n, err := g.Read(g.buf()[:])
		g.rpos, g.rend, g.rerr = 0, n, err
		if n == 0 {
			if err == nil {
				g.rerr = io.ErrNoProgress
			}
			return false
		}
	}
	sc.base = len(sc.raw)
	sc.raw = append(sc.raw, g.rbuf[g.rpos:g.rend]...)
	g.rpos = g.rend
	return true
}

// byteAt returns raw[i], reading more when needed; ok is false when the
// input ended (or failed) first.
func (sc *stanzaScanner) byteAt(i int) (c byte, ok bool) {
	for i >= len(sc.raw) {
		if !sc.more() {
			return 0, false
		}
	}
	return sc.raw[i], true
}

// giveBack returns to the guard the bytes of raw from end on, which belong
// to what follows the element. They are all in the last buffer taken.
func (sc *stanzaScanner) giveBack(end int) {
	sc.g.rpos = sc.g.rend - (len(sc.raw) - end)
}

// putBack hands what was taken from the guard to the slow path: the last
// buffer is given back (it is still in g.rbuf), the earlier ones become
// the guard's prefix, after the stream header that newSessionDecoder
// adds.
func (sc *stanzaScanner) putBack() []byte {
	if len(sc.raw) > sc.base {
		sc.giveBack(sc.base)
	}
	return sc.raw[:sc.base]
}

// nameByte reports whether c may appear in a name the fast path accepts:
// ASCII letters, digits, '_', '-' and '.'. A name with a prefix or a
// non-ASCII letter is left to encoding/xml.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

func nameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// name reads a name starting at sc.i. It allows one "xml:" prefix when
// xmlPrefix is set (xml:lang on an attribute).
func (sc *stanzaScanner) name(xmlPrefix bool) (span, bool) {
	start := sc.i
	c, ok := sc.byteAt(sc.i)
	if !ok || !nameStart(c) {
		return span{}, false
	}
	colon := false
	for {
		sc.i++
		c, ok = sc.byteAt(sc.i)
		if !ok {
			return span{}, false
		}
		if nameByte(c) {
			continue
		}
		if c == ':' && xmlPrefix && !colon && string(sc.raw[start:sc.i]) == "xml" {
			colon = true
			if c, ok = sc.byteAt(sc.i + 1); !ok || !nameStart(c) {
				return span{}, false
			}
			continue
		}
		return span{start, sc.i}, true
	}
}

// space skips white space and reports whether there was any.
func (sc *stanzaScanner) space() (found, ok bool) {
	for {
		c, ok := sc.byteAt(sc.i)
		if !ok {
			return found, false
		}
		if !isSpace(c) {
			return found, true
		}
		found = true
		sc.i++
	}
}

// char checks the character starting at raw[sc.i], a byte of at least
// 0x80, and steps over it: valid UTF-8 and a character XML allows.
func (sc *stanzaScanner) char() bool {
	for !utf8.FullRune(sc.raw[sc.i:]) {
		if !sc.more() {
			return false
		}
	}
	r, w := utf8.DecodeRune(sc.raw[sc.i:])
	if r == utf8.RuneError && w == 1 || r == 0xFFFE || r == 0xFFFF {
		return false
	}
	sc.i += w
	return true
}

// ref checks an entity or character reference starting at the '&' at
// raw[sc.i] and steps over it: one of the five predefined entities or a
// reference to a character XML allows.
func (sc *stanzaScanner) ref() bool {
	start := sc.i + 1
	end := start
	for {
		c, ok := sc.byteAt(end)
		if !ok || end-start > 10 {
			return false
		}
		if c == ';' {
			break
		}
		end++
	}
	sc.i = end + 1
	ent := sc.raw[start:end]
	switch string(ent) {
	case "lt", "gt", "amp", "apos", "quot":
		return true
	}
	if len(ent) < 2 || ent[0] != '#' {
		return false
	}
	digits, base := ent[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 || len(digits) > 6 {
		return false
	}
	var r rune
	for _, d := range digits {
		switch {
		case '0' <= d && d <= '9':
			r = r*base + rune(d-'0')
		case base == 16 && 'a' <= d && d <= 'f':
			r = r*base + rune(d-'a'+10)
		case base == 16 && 'A' <= d && d <= 'F':
			r = r*base + rune(d-'A'+10)
		default:
			return false
		}
	}
	return isXMLChar(r)
}

// isXMLChar reports whether r is a Char of XML 1.0 §2.2.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// attrValue reads a quoted attribute value starting at its quote. White
// space other than a plain space is left to the slow path: XML normalises
// it to spaces while encoding/xml keeps it, and the two must not differ.
func (sc *stanzaScanner) attrValue() (v span, amp, ok bool) {
	q, ok := sc.byteAt(sc.i)
	if !ok || q != '\'' && q != '"' {
		return span{}, false, false
	}
	sc.i++
	start := sc.i
	for {
		c, ok := sc.byteAt(sc.i)
		switch {
		case !ok || c == '<' || c < 0x20:
			return span{}, false, false
		case c == q:
			sc.i++
			return span{start, sc.i - 1}, amp, true
		case c == '&':
			if !sc.ref() {
				return span{}, false, false
			}
			amp = true
		case c >= utf8.RuneSelf:
			if !sc.char() {
				return span{}, false, false
			}
		default:
			sc.i++
		}
	}
}

// text reads character data up to the next '<'.
func (sc *stanzaScanner) text() bool {
	for {
		if sc.i >= len(sc.raw) && !sc.more() {
			return false
		}
		c := sc.raw[sc.i]
		switch {
		case c == '<':
			return true
		case c == '&':
			if !sc.ref() {
				return false
			}
		case c >= utf8.RuneSelf:
			if !sc.char() {
				return false
			}
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			return false
		case c == '>' && sc.i >= 2 && sc.raw[sc.i-1] == ']' && sc.raw[sc.i-2] == ']':
			return false // "]]>" may not appear in text
		default:
			sc.i++
		}
	}
}

// startTag reads a start tag from its '<' up to and including its '>'.
// It reports the element's name, its xmlns value if it has one, and
// whether it closed itself. The stanza's own attributes are kept (top).
func (sc *stanzaScanner) startTag(top bool) (name, xmlns span, empty, ok bool) {
	sc.i++ // '<'
	if name, ok = sc.name(false); !ok {
		return
	}
	sc.names = sc.names[:0]
	for {
		sp, ok := sc.space()
		if !ok {
			return span{}, span{}, false, false
		}
		c := sc.raw[sc.i]
		switch c {
		case '>':
			sc.i++
			return name, xmlns, false, true
		case '/':
			if c, ok := sc.byteAt(sc.i + 1); !ok || c != '>' {
				return span{}, span{}, false, false
			}
			sc.i += 2
			return name, xmlns, true, true
		}
		if !sp {
			// An attribute must follow white space (encoding/xml would
			// take <a x='1'y='2'>, which copied verbatim is not XML).
			return span{}, span{}, false, false
		}
		an, ok := sc.name(true)
		if !ok {
			return span{}, span{}, false, false
		}
		if len(sc.names) == maxScanAttrs {
			return span{}, span{}, false, false // linear in the slow path
		}
		for _, prev := range sc.names {
			if string(sc.raw[prev.start:prev.end]) == string(sc.raw[an.start:an.end]) {
				return span{}, span{}, false, false
			}
		}
		sc.names = append(sc.names, an)
		if _, ok := sc.space(); !ok || sc.raw[sc.i] != '=' {
			return span{}, span{}, false, false
		}
		sc.i++
		if _, ok := sc.space(); !ok {
			return span{}, span{}, false, false
		}
		v, amp, ok := sc.attrValue()
		if !ok {
			return span{}, span{}, false, false
		}
		if string(sc.raw[an.start:an.end]) == "xmlns" {
			if amp || v.start == v.end {
				// An undeclared default namespace or an escaped one:
				// rare, and read the long way.
				return span{}, span{}, false, false
			}
			xmlns = v
		}
		if top {
			if amp {
				return span{}, span{}, false, false // decoded by the slow path
			}
			sc.attrs = append(sc.attrs, scanAttr{an, v})
		}
	}
}

// maxScanAttrs bounds the attributes of one element on the fast path,
// which looks for duplicates in quadratic time.
const maxScanAttrs = 16

// endTag reads an end tag from its '<' and checks it closes name.
func (sc *stanzaScanner) endTag(name span) bool {
	sc.i += 2 // "</"
	n, ok := sc.name(false)
	if !ok || string(sc.raw[n.start:n.end]) != string(sc.raw[name.start:name.end]) {
		return false
	}
	if _, ok := sc.space(); !ok || sc.raw[sc.i] != '>' {
		return false
	}
	sc.i++
	return true
}

// scan reads the next element of the stream into a stanza. It returns
// io.EOF at the stream's end tag, a stanzaError for a stanza to answer
// with an error, errInvalidFrom, or errSlowPath with the bytes it took
// from g, which the caller must hand to the slow path.
func (e *stanzaEncoder) scan(g *guardConn, addr *addrCache, maxDepth int) (st *router.Stanza, consumed []byte, err error) {
	sc := &e.sc
	sc.g, sc.raw, sc.base, sc.i = g, sc.raw[:0], 0, 0
	sc.open, sc.attrs = sc.open[:0], sc.attrs[:0]
	defer func() { sc.g = nil }()
	if len(g.prefix) > 0 {
		return nil, nil, errSlowPath // bytes put back earlier come first
	}

	// White space between stanzas is dropped; it is what clients send as
	// a keepalive.
	for {
		c, ok := sc.byteAt(sc.i)
		if !ok {
			return nil, sc.putBack(), errSlowPath
		}
		if c == '<' {
			break
		}
		if !isSpace(c) {
			return nil, sc.putBack(), errSlowPath // text: an error, judged there
		}
		sc.i++
		if sc.i == len(sc.raw) {
			// A keepalive read whole: the next stanza's byte count
			// starts afresh, as it does after a stanza.
			sc.raw, sc.base, sc.i = sc.raw[:0], 0, 0
			g.Reset()
		}
	}
	// Only bytes from here on belong to the element.
	if c, ok := sc.byteAt(sc.i + 1); !ok || !nameStart(c) {
		if ok && c == '/' && sc.streamEnd() {
			return nil, nil, errStreamEndTag
		}
		return nil, sc.putBack(), errSlowPath
	}
	begin := sc.i
	topName, topNS, empty, ok := sc.startTag(true)
	if !ok {
		return nil, sc.putBack(), errSlowPath
	}
	kind := router.KindOf(string(sc.raw[topName.start:topName.end]))
	if kind == 0 || topNS.end > topNS.start && string(sc.raw[topNS.start:topNS.end]) != stanza.NSClient {
		if e := sc.smNonza(topName, topNS, empty); e != nil {
			sc.giveBack(sc.i)
			return nil, nil, e
		}
		return nil, sc.putBack(), errSlowPath
	}
	innerStart, innerEnd := sc.i, sc.i
	children := 0
	var payload payloadName
	if !empty {
		sc.open = append(sc.open, topName)
		for len(sc.open) > 0 {
			if !sc.text() {
				return nil, sc.putBack(), errSlowPath
			}
			c, ok := sc.byteAt(sc.i + 1)
			if !ok {
				return nil, sc.putBack(), errSlowPath
			}
			if c == '/' {
				at := sc.i
				if !sc.endTag(sc.open[len(sc.open)-1]) {
					return nil, sc.putBack(), errSlowPath
				}
				sc.open = sc.open[:len(sc.open)-1]
				innerEnd = at
				continue
			}
			if !nameStart(c) || len(sc.open)+1 > maxDepth {
				return nil, sc.putBack(), errSlowPath
			}
			name, ns, empty, ok := sc.startTag(false)
			if !ok {
				return nil, sc.putBack(), errSlowPath
			}
			if len(sc.open) == 1 {
				children++
				if children == 1 {
					payload = payloadName{name: name, ns: ns}
				}
			}
			if !empty {
				sc.open = append(sc.open, name)
			}
		}
	}
	end := sc.i
	sc.giveBack(end)

	st, err = e.build(kind, begin, innerStart, innerEnd, empty, payload, addr)
	if err != nil {
		return nil, nil, err
	}
	return st, nil, validate(st, children)
}

// smR is the client's <r/>, as the fast path hands it over (never
// changed).
var smR = &smElement{local: "r", space: nsSM}

// smNonza recognises the stream management elements a client sends with
// nearly every few stanzas, <r/> and <a h='…'/>, empty and in their usual
// shape, so that acknowledgements cost no XML decoder; it returns nil for
// anything else (the slow path judges it, errors included).
func (sc *stanzaScanner) smNonza(name, ns span, empty bool) *smElement {
	if !empty || string(sc.raw[ns.start:ns.end]) != nsSM {
		return nil
	}
	switch string(sc.raw[name.start:name.end]) {
	case "r":
		return smR
	case "a":
		for _, a := range sc.attrs {
			if string(sc.raw[a.name.start:a.name.end]) != "h" {
				continue
			}
			v := sc.raw[a.value.start:a.value.end]
			if len(v) == 0 || len(v) > 10 {
				return nil
			}
			var h uint64
			for _, c := range v {
				if c < '0' || c > '9' {
					return nil
				}
				h = h*10 + uint64(c-'0')
			}
			if h > 1<<32-1 {
				return nil
			}
			return &smElement{local: "a", space: nsSM, h: uint32(h), hasH: true}
		}
	}
	return nil
}

// payloadName is the first child's name and namespace as spans.
type payloadName struct{ name, ns span }

// streamEnd reads "</stream:stream>" at sc.i, the client closing its
// stream; anything else there is left to the slow path.
func (sc *stanzaScanner) streamEnd() bool {
	const tag = "</stream:stream"
	for k := 0; k < len(tag); k++ {
		if c, ok := sc.byteAt(sc.i + k); !ok || c != tag[k] {
			return false
		}
	}
	save := sc.i
	sc.i += len(tag)
	if _, ok := sc.space(); !ok || sc.raw[sc.i] != '>' {
		sc.i = save
		return false
	}
	sc.i++
	sc.giveBack(sc.i)
	return true
}

// build makes the stanza from what scan found: the start tag rewritten
// with the session's from and the parsed to, then the content verbatim.
func (e *stanzaEncoder) build(kind router.Kind, begin, innerStart, innerEnd int, empty bool, payload payloadName, addr *addrCache) (*router.Stanza, error) {
	raw := e.sc.raw
	st := &router.Stanza{Kind: kind, From: addr.from}
	var badTo, hasTo bool
	hdr := append(e.enc.Buf[:0], '<')
	hdr = append(hdr, kind.String()...)
	for _, a := range e.sc.attrs {
		name, value := raw[a.name.start:a.name.end], raw[a.value.start:a.value.end]
		switch string(name) {
		case "xmlns":
			continue
		case "to":
			j, _, err := addr.parseToBytes(value)
			if err != nil {
				badTo = true
				continue
			}
			st.To, hasTo = j, true
			continue
		case "from":
			j, err := jid.Parse(string(value))
			if err != nil || !(j.Equal(addr.from) || j.Equal(addr.from.Bare())) {
				return nil, errInvalidFrom
			}
			continue
		case "type":
			st.Type = internType(value)
		case "id":
			st.ID = string(value)
		}
		hdr = append(hdr, ' ')
		hdr = append(hdr, name...)
		hdr = append(hdr, "='"...)
		hdr = xmlenc.AppendEscaped(hdr, value, true)
		hdr = append(hdr, '\'')
	}
	if hasTo {
		hdr = append(hdr, addr.toAttr()...)
	}
	hdr = append(hdr, addr.fromAttr...)
	e.enc.Buf = hdr
	if payload.name.end > 0 {
		st.Payload.Local = internName(raw[payload.name.start:payload.name.end])
		st.Payload.Space = stanza.NSClient
		if payload.ns.end > payload.ns.start {
			st.Payload.Space = string(raw[payload.ns.start:payload.ns.end])
		}
	}

	inner := raw[innerStart:innerEnd]
	out := make([]byte, 0, len(hdr)+1+len(inner)+2+len(kind.String())+1)
	out = append(out, hdr...)
	if empty {
		out = append(out, "/>"...)
	} else {
		out = append(out, '>')
		out = append(out, inner...)
		out = append(out, "</"...)
		out = append(out, kind.String()...)
		out = append(out, '>')
	}
	st.Raw = out
	if badTo {
		return nil, stanzaError{st, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "the to address is not a valid JID")}
	}
	return st, nil
}

// internType returns the type attribute as a string, without allocating
// for the values RFC 6120 and 6121 define.
func internType(v []byte) string {
	switch string(v) {
	case "chat":
		return "chat"
	case "groupchat":
		return "groupchat"
	case "normal":
		return "normal"
	case "headline":
		return "headline"
	case "error":
		return "error"
	case "get":
		return "get"
	case "set":
		return "set"
	case "result":
		return "result"
	case "unavailable":
		return "unavailable"
	case "subscribe":
		return "subscribe"
	case "subscribed":
		return "subscribed"
	case "unsubscribe":
		return "unsubscribe"
	case "unsubscribed":
		return "unsubscribed"
	case "probe":
		return "probe"
	}
	return string(v)
}

// internName returns a payload's element name as a string, without
// allocating for the most frequent ones.
func internName(v []byte) string {
	for _, n := range commonPayloads {
		if string(v) == n {
			return n
		}
	}
	return string(v)
}

// commonPayloads are the first children clients send most: a message's
// body or chat state, a presence's show, status, priority or caps.
var commonPayloads = [...]string{"body", "active", "composing", "paused", "inactive", "gone", "show", "status", "priority", "c", "x", "query", "ping"}
