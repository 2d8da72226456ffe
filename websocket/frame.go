package websocket

import (
	"bytes"
	"encoding/xml"

	"xmppd.dev/xmppd/internal/xmlsplit"
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

// appendOpen appends the RFC 7395 <open/> that stands for c2s's stream
// header tag ("<stream:stream ...>"), with the header's attributes but
// its namespace declarations.
func appendOpen(dst, header []byte) []byte {
	dst = append(dst, "<open xmlns='"+NSFraming+"'"...)
	var buf [8]xmlsplit.Attr
	_, attrs := xmlsplit.StartTag(header, buf[:0])
	for _, a := range attrs {
		if bytes.Equal(a.Name, []byte("xmlns")) || bytes.HasPrefix(a.Name, []byte("xmlns:")) {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, a.Name...)
		dst = append(dst, "='"...)
		dst = append(dst, a.Value...)
		dst = append(dst, '\'')
	}
	return append(dst, "/>"...)
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
	name, _ := xmlsplit.StartTag(msg, nil)
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
		if cd, text := tok.(xml.CharData); !text || !xmlsplit.OnlySpace(cd) {
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
