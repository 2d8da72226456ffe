package bosh

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"time"

	"xmppd.dev/xmppd/internal/xmlsplit"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	NSHTTPBind = "http://jabber.org/protocol/httpbind"
	NSXBOSH    = "urn:xmpp:xbosh"
	nsXML      = "http://www.w3.org/XML/1998/namespace"
)

// body is a request's <body/>: the attributes xmppd acts on and the raw
// bytes of its children, each made to stand alone in a stream whose
// default namespace is jabber:client (see parseBody).
type body struct {
	sid      string
	rid      int64 // 0: missing or invalid
	to       string
	lang     string
	ver      string
	typ      string // "terminate" or ""
	restart  bool   // xmpp:restart='true'
	ack      int64  // 0: none
	wait     time.Duration
	waitSet  bool
	hold     int
	holdSet  bool
	pause    time.Duration
	xmppVer  string
	children [][]byte
}

var errNotBody = errors.New("bosh: not a <body/> in " + NSHTTPBind)

// parseBody checks that b is one well-formed <body/> of the httpbind
// namespace and returns it. Children are sliced out as sent, with the
// declarations of the prefixes they use from <body/> copied onto them;
// an unprefixed child without xmlns is left so, to take the stream's
// jabber:client (XEP-0206 §7 has clients qualify stanzas, but a missing
// xmlns means jabber:client as in a TCP stream).
func parseBody(b []byte) (*body, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			start = t
		case xml.CharData:
			if !xmlsplit.OnlySpace(t) {
				return nil, errNotBody
			}
			continue
		case xml.ProcInst, xml.Comment:
			continue
		default:
			return nil, errNotBody
		}
		break
	}
	if start.Name.Space != NSHTTPBind || start.Name.Local != "body" {
		return nil, errNotBody
	}
	bd := &body{}
	// Prefix declarations on <body/> (xmlns:xmpp, xmlns:stream): what
	// a child needs of them is copied onto it.
	var decls []xml.Attr
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "xmlns":
			decls = append(decls, a)
		case a.Name.Space == "" && a.Name.Local == "xmlns":
		case a.Name.Space == nsXML && a.Name.Local == "lang":
			bd.lang = a.Value
		case isXBOSH(a.Name.Space) && a.Name.Local == "restart":
			bd.restart = a.Value == "true" || a.Value == "1"
		case isXBOSH(a.Name.Space) && a.Name.Local == "version":
			bd.xmppVer = a.Value
		case a.Name.Space != "":
		default:
			switch a.Name.Local {
			case "sid":
				bd.sid = a.Value
			case "rid":
				// XEP-0124 §14: a positive integer below 2^53.
				if n, err := strconv.ParseInt(a.Value, 10, 64); err == nil && n > 0 && n < 1<<53 {
					bd.rid = n
				}
			case "to":
				bd.to = a.Value
			case "ver":
				bd.ver = a.Value
			case "type":
				bd.typ = a.Value
			case "ack":
				bd.ack, _ = strconv.ParseInt(a.Value, 10, 64)
			case "wait":
				n, err := strconv.Atoi(a.Value)
				if err != nil || n < 0 {
					return nil, errors.New("bosh: wait is not a number of seconds")
				}
				bd.wait, bd.waitSet = time.Duration(min(n, 1<<20))*time.Second, true
			case "hold":
				n, err := strconv.Atoi(a.Value)
				if err != nil || n < 0 {
					return nil, errors.New("bosh: hold is not a number")
				}
				bd.hold, bd.holdSet = n, true
			case "pause":
				n, err := strconv.Atoi(a.Value)
				if err != nil || n < 0 {
					return nil, errors.New("bosh: pause is not a number of seconds")
				}
				bd.pause = time.Duration(min(n, 1<<20)) * time.Second
			}
		}
	}
	depth := 0
	var from int64
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				from = off
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				// </body>: nothing may follow but white space.
				for {
					tok, err := d.Token()
					if err != nil {
						if errors.Is(err, io.EOF) {
							return bd, nil
						}
						return nil, err
					}
					if cd, ok := tok.(xml.CharData); !ok || !xmlsplit.OnlySpace(cd) {
						if _, ok := tok.(xml.Comment); !ok {
							return nil, errNotBody
						}
					}
				}
			}
			depth--
			if depth == 0 {
				bd.children = append(bd.children, withDecls(b[from:d.InputOffset()], decls))
			}
		case xml.CharData:
			if depth == 0 && !xmlsplit.OnlySpace(t) {
				return nil, errors.New("bosh: text in <body/>")
			}
		}
	}
}

// isXBOSH reports whether an attribute's namespace is XEP-0206's, also
// when a client used the xmpp prefix without declaring it.
func isXBOSH(space string) bool { return space == NSXBOSH || space == "xmpp" }

// withDecls returns el with those of decls whose prefix it uses and
// does not declare itself added to its start tag.
func withDecls(el []byte, decls []xml.Attr) []byte {
	if len(decls) == 0 {
		return el
	}
	n, _ := xmlsplit.TagEnd(el)
	if n < 0 {
		return el
	}
	name, attrs := xmlsplit.StartTag(el[:n], nil)
	var add []byte
	for _, a := range decls {
		p := a.Name.Local
		if xmlsplit.HasAttr(attrs, "xmlns:"+p) || !usesPrefix(el, p) {
			continue
		}
		add = append(add, " xmlns:"+p+"='"...)
		add = appendEscaped(add, a.Value)
		add = append(add, '\'')
	}
	if len(add) == 0 {
		return el
	}
	k := 1 + len(name)
	out := make([]byte, 0, len(el)+len(add))
	out = append(out, el[:k]...)
	out = append(out, add...)
	return append(out, el[k:]...)
}

// usesPrefix reports whether el may use prefix p: in an element name
// ("<p:") or an attribute name (white space, then "p:"). Text that looks
// so only costs a declaration.
func usesPrefix(el []byte, p string) bool {
	for _, lead := range []string{"<", " ", "\t", "\n", "\r"} {
		if bytes.Contains(el, []byte(lead+p+":")) {
			return true
		}
	}
	return false
}

// appendEscaped appends s escaped for an attribute value in single quotes.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// streamHeader is the header that opens (or, after SASL, restarts) the
// c2s stream of a session: what a TCP client would send.
func streamHeader(to, lang string) []byte {
	h := []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + xmlsplit.NSStream + "' version='1.0'")
	if to != "" {
		h = append(h, " to='"...)
		h = appendEscaped(h, to)
		h = append(h, '\'')
	}
	if lang != "" {
		h = append(h, " xml:lang='"...)
		h = appendEscaped(h, lang)
		h = append(h, '\'')
	}
	return append(h, '>')
}

// terminal is a terminal body with condition cond (XEP-0124 §17.2).
func terminal(cond string) []byte {
	return []byte("<body xmlns='" + NSHTTPBind + "' type='terminate' condition='" + cond + "'/>")
}
