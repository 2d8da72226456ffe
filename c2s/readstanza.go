package c2s

import (
	"encoding/xml"
	"errors"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Errors of the read path that end the stream.
var (
	errInvalidFrom = errors.New("c2s: from is not the client's own JID")
	errTooDeep     = errors.New("c2s: stanza nested too deeply")
	errNotStanza   = errors.New("c2s: first-level element is not a stanza")
	errTextAtTop   = errors.New("c2s: text between stanzas")
)

// stanzaEncoder turns the tokens of one stanza into a router.Stanza. It is
// owned by the read loop and reused for every stanza.
type stanzaEncoder struct {
	enc   xmlenc.Encoder
	attrs []xml.Attr
	sc    stanzaScanner // the fast path's buffers (scanstanza.go)
}

func newStanzaEncoder() *stanzaEncoder {
	return &stanzaEncoder{enc: xmlenc.Encoder{Default: stanza.NSClient, Buf: make([]byte, 0, 1024)}}
}

// read consumes the stanza that start opens from r. from is the session's
// bound JID, stamped on the stanza (RFC 6120 §8.1.2.1). A stanza that is
// well-formed but invalid comes back as a stanzaError to answer; a stream
// violation as a plain error.
// addrCache remembers, for one session, its own JID as a string and the
// last to it parsed: a client mostly writes to the same few addresses, and
// PRECIS normalisation is a good part of the cost of reading a stanza.
// Other addresses come from the server's jidCache. Owned by the read loop.
type addrCache struct {
	from     jid.JID
	fromStr  string
	fromAttr []byte // ` from='…'`, escaped, for the fast path's start tag
	shared   *jidCache
	to       *parsedJID // the last to attribute, as written and parsed
}

func newAddrCache(from jid.JID, shared *jidCache) *addrCache {
	s := from.String()
	return &addrCache{from: from, fromStr: s, fromAttr: xmlenc.AppendAttr(nil, "from", s), shared: shared}
}

// parseTo parses a to attribute, from the cache when it is the last one.
func (c *addrCache) parseTo(raw string) (jid.JID, string, error) {
	if c.to != nil && raw == c.to.raw {
		return c.to.j, c.to.str, nil
	}
	return c.parse([]byte(raw))
}

// parseToBytes is parseTo for the fast path, which has the attribute as
// bytes: a hit costs no allocation.
func (c *addrCache) parseToBytes(raw []byte) (jid.JID, string, error) {
	if c.to != nil && string(raw) == c.to.raw {
		return c.to.j, c.to.str, nil
	}
	return c.parse(raw)
}

func (c *addrCache) parse(raw []byte) (jid.JID, string, error) {
	p, err := c.shared.get(raw)
	if err != nil {
		return jid.JID{}, "", err
	}
	c.to = p
	return p.j, p.str, nil
}

// toAttr is ` to='…'` of the last to parsed.
func (c *addrCache) toAttr() []byte { return c.to.attr }

func (e *stanzaEncoder) read(r xml.TokenReader, start xml.StartElement, addr *addrCache, maxDepth int) (*router.Stanza, error) {
	from := addr.from
	kind := router.KindOf(start.Name.Local)
	if start.Name.Space != stanza.NSClient || kind == 0 {
		return nil, errNotStanza
	}
	if !xmlenc.Writable(start) {
		return nil, errBadName
	}
	st := &router.Stanza{Kind: kind, From: from}
	var badTo bool
	var toStr string
	e.attrs = e.attrs[:0]
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			e.attrs = append(e.attrs, a)
			continue
		}
		switch a.Name.Local {
		case "to":
			j, str, err := addr.parseTo(a.Value)
			if err != nil {
				badTo = true
				continue
			}
			st.To, toStr = j, str
			continue
		case "from":
			// A client may name itself by full or bare JID; anything else
			// is a stream error (RFC 6120 §8.1.2.1).
			j, err := jid.Parse(a.Value)
			if err != nil || !(j.Equal(from) || j.Equal(from.Bare())) {
				return nil, errInvalidFrom
			}
			continue
		case "type":
			st.Type = a.Value
		case "id":
			st.ID = a.Value
		}
		e.attrs = append(e.attrs, a)
	}
	if !st.To.Equal(jid.JID{}) {
		e.attrs = append(e.attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: toStr})
	}
	e.attrs = append(e.attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: addr.fromStr})
	start.Attr = e.attrs

	e.enc.Reset()
	e.enc.EncodeToken(start)
	children := 0
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return nil, errTooDeep
			}
			if !xmlenc.Writable(t) {
				return nil, errBadName
			}
			if depth == 2 {
				children++
				if children == 1 {
					st.Payload = t.Name
				}
			}
		case xml.EndElement:
			depth--
		case xml.ProcInst, xml.Comment, xml.Directive:
			return nil, errRestrictedXML
		}
		if err := e.enc.EncodeToken(tok); err != nil {
			return nil, err
		}
	}
	st.Raw = slices.Clone(e.enc.Buf)

	if badTo {
		return nil, stanzaError{st, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "the to address is not a valid JID")}
	}
	return st, validate(st, children)
}

// validate checks what RFC 6120 §8 requires of a stanza's header once it
// has been read whole: an IQ's id, type and single payload, a presence's
// type. A failure is a stanzaError to answer.
func validate(st *router.Stanza, children int) error {
	switch st.Kind {
	case router.KindIQ:
		switch {
		case st.ID == "":
			return stanzaError{st, router.ErrorText(stanza.Modify, stanza.BadRequest, "an iq needs an id")}
		case st.Type != "get" && st.Type != "set" && st.Type != "result" && st.Type != "error":
			return stanzaError{st, router.ErrorText(stanza.Modify, stanza.BadRequest, "an iq's type must be get, set, result or error")}
		case (st.Type == "get" || st.Type == "set") && children != 1:
			return stanzaError{st, router.ErrorText(stanza.Modify, stanza.BadRequest, "an iq get or set carries exactly one child element")}
		}
	case router.KindPresence:
		switch st.Type {
		case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		default:
			return stanzaError{st, router.ErrorText(stanza.Modify, stanza.BadRequest, "unknown presence type")}
		}
	}
	return nil
}

// errBadName ends a stream whose stanza has a name that is XML but not
// namespace-well-formed ("a:0", "a:", ":a") or an attribute given twice:
// encoding/xml accepts both, and recipients could not parse them written
// again (xmlenc.Writable).
var errBadName = &xml.SyntaxError{Msg: "element or attribute name is not namespace-well-formed, or an attribute is given twice"}
