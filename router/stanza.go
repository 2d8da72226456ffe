package router

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
)

// Kind is the kind of a stanza: message, presence or iq.
type Kind uint8

// The three stanza kinds of RFC 6120 §8.
const (
	KindMessage Kind = iota + 1
	KindPresence
	KindIQ
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPresence:
		return "presence"
	case KindIQ:
		return "iq"
	}
	return "unknown"
}

// KindOf maps an element name in the jabber:client namespace to a Kind; it
// returns 0 for anything else.
func KindOf(local string) Kind {
	switch local {
	case "message":
		return KindMessage
	case "presence":
		return KindPresence
	case "iq":
		return KindIQ
	}
	return 0
}

// Stanza is a stanza on its way through the router: its header parsed once,
// its bytes serialised once (with from stamped by the server) and shared by
// every recipient. Raw must not be modified after the stanza is routed.
type Stanza struct {
	Kind    Kind
	Type    string   // the type attribute, "" when absent
	ID      string   // the id attribute
	From    jid.JID  // stamped by the server; never what a client claimed
	To      jid.JID  // zero when the stanza had no to
	Payload xml.Name // the first child element; for an IQ, its payload
	Raw     []byte   // the whole stanza, jabber:client the default namespace
}

// Decoder returns a decoder over the stanza's bytes, positioned before its
// start element, with jabber:client as the default namespace.
func (s *Stanza) Decoder() *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(s.Raw))
	d.DefaultSpace = stanza.NSClient
	return d
}

// Header writes a start tag for a stanza of kind k with the given attributes
// (empty ones are left out) into dst.
func appendHeader(dst []byte, k Kind, typ, id string, from, to jid.JID) []byte {
	dst = append(dst, '<')
	dst = append(dst, k.String()...)
	if typ != "" {
		dst = xmlenc.AppendAttr(dst, "type", typ)
	}
	if id != "" {
		dst = xmlenc.AppendAttr(dst, "id", id)
	}
	if !from.Equal(jid.JID{}) {
		dst = xmlenc.AppendAttr(dst, "from", from.String())
	}
	if !to.Equal(jid.JID{}) {
		dst = xmlenc.AppendAttr(dst, "to", to.String())
	}
	return append(dst, '>')
}

// Build serialises a stanza of kind k with the given header and payload into
// a new Stanza.
func Build(k Kind, typ, id string, from, to jid.JID, payload xml.TokenReader) (*Stanza, error) {
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	enc.Buf = appendHeader(make([]byte, 0, 256), k, typ, id, from, to)
	// With the stack empty the payload is encoded in the scope of Default,
	// which is the stanza's own namespace.
	if err := enc.Copy(payload); err != nil {
		return nil, fmt.Errorf("router: encode %s payload: %w", k, err)
	}
	enc.Buf = append(enc.Buf, "</"...)
	enc.Buf = append(enc.Buf, k.String()...)
	enc.Buf = append(enc.Buf, '>')
	return &Stanza{Kind: k, Type: typ, ID: id, From: from, To: to, Raw: enc.Buf}, nil
}

// ErrorReply builds the error stanza that answers s with the condition e
// (RFC 6120 §8.3): to and from swapped, same id, type error. It returns nil
// for a stanza that must never be answered with an error (an error itself).
func ErrorReply(s *Stanza, e stanza.Error) *Stanza {
	if s.Type == "error" {
		return nil
	}
	from := s.To
	if e.Type == "" {
		e.Type = stanza.Cancel
	}
	r, err := Build(s.Kind, "error", s.ID, from, s.From, e.TokenReader())
	if err != nil {
		return nil // a stanza.Error always encodes
	}
	return r
}

// AppError is a stanza error with an application-specific condition
// element besides the defined one (RFC 6120 §8.3.4), such as XEP-0060's
// <precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>.
// An IQ handler returns it as it would a stanza.Error; errors.As finds the
// stanza.Error through Unwrap.
type AppError struct {
	Err stanza.Error
	App xml.StartElement // an empty element: its name and attributes
}

func (e AppError) Error() string { return e.Err.Error() }

// Unwrap returns the defined condition.
func (e AppError) Unwrap() error { return e.Err }

// AppErrorReply is ErrorReply with e's application-specific condition.
func AppErrorReply(s *Stanza, e AppError) *Stanza {
	if s.Type == "error" {
		return nil
	}
	if e.Err.Type == "" {
		e.Err.Type = stanza.Cancel
	}
	r, err := Build(s.Kind, "error", s.ID, s.To, s.From, e.Err.Wrap(xmlstream.Wrap(nil, e.App)))
	if err != nil {
		return nil
	}
	return r
}

// ErrorText is a stanza.Error with an English text.
func ErrorText(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	e := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		e.Text = map[string]string{"en": text}
	}
	return e
}

// Parse reads the header of a serialised stanza back into a Stanza (for
// the rare paths that hold only bytes, such as a queue being emptied).
func Parse(raw []byte) (*Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	st := &Stanza{Raw: raw}
	for {
		tok, err := d.Token()
		if err == io.EOF && st.Kind != 0 {
			return st, nil // no child element
		}
		if err != nil {
			return nil, fmt.Errorf("router: parse stanza: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if st.Kind == 0 {
			st.Kind = KindOf(start.Name.Local)
			if st.Kind == 0 {
				return nil, fmt.Errorf("router: parse stanza: <%s> is not a stanza", start.Name.Local)
			}
			for _, a := range start.Attr {
				if a.Name.Space != "" {
					continue
				}
				switch a.Name.Local {
				case "type":
					st.Type = a.Value
				case "id":
					st.ID = a.Value
				case "to":
					st.To, err = jid.Parse(a.Value)
				case "from":
					st.From, err = jid.Parse(a.Value)
				}
				if err != nil {
					return nil, fmt.Errorf("router: parse stanza: %s: %w", a.Name.Local, err)
				}
			}
			continue
		}
		st.Payload = start.Name
		return st, nil
	}
}

// WithTo returns a copy of the serialised stanza raw with a to attribute
// added after its element name; raw must not already have one.
func WithTo(raw []byte, to jid.JID) []byte {
	i := bytes.IndexAny(raw, " />")
	if i < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(to.String())+8)
	out = append(out, raw[:i]...)
	out = xmlenc.AppendAttr(out, "to", to.String())
	return append(out, raw[i:]...)
}

// Restamp returns a copy of st with new from and to (and a header of
// kind, type and id only), keeping its children: a server forwarding a
// stanza on behalf of a user uses it, e.g. subscription presence from the
// bare JID (RFC 6121 §3.1.2).
func Restamp(st *Stanza, from, to jid.JID) *Stanza {
	raw := appendHeader(make([]byte, 0, len(st.Raw)+32), st.Kind, st.Type, st.ID, from, to)
	// Our serialisation escapes '>' in attribute values, so the first '>'
	// ends the start tag.
	i := bytes.IndexByte(st.Raw, '>')
	switch {
	case i < 0:
		return &Stanza{Kind: st.Kind, Type: st.Type, ID: st.ID, From: from, To: to, Payload: st.Payload, Raw: append(raw[:len(raw)-1], "/>"...)}
	case st.Raw[i-1] == '/':
		raw = append(raw[:len(raw)-1], "/>"...)
	default:
		raw = append(raw, st.Raw[i+1:]...)
	}
	return &Stanza{Kind: st.Kind, Type: st.Type, ID: st.ID, From: from, To: to, Payload: st.Payload, Raw: raw}
}
