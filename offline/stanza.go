package offline

import (
	"bytes"
	"encoding/xml"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces this package reads or writes.
const (
	// NSDelay is XEP-0203 Delayed Delivery.
	NSDelay = "urn:xmpp:delay"
	// NSHints is XEP-0334 Message Processing Hints.
	NSHints = "urn:xmpp:hints"
	// Feature is the disco#info feature of XEP-0160 (from XEP-0030's
	// registry, not a namespace).
	Feature = "msgoffline"
)

const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsSID        = "urn:xmpp:sid:0"
	nsCarbons    = "urn:xmpp:carbons:2"
)

// stampLayout is XEP-0082's DateTime profile in UTC, to the millisecond.
const stampLayout = "2006-01-02T15:04:05.000Z"

// worthStoring reports whether a message that found no resource is kept
// for later: type chat or normal, no <no-store/> hint, and either a
// <store/> hint or some child that is more than metadata.
func worthStoring(st *router.Stanza) bool {
	if st.Kind != router.KindMessage {
		return false
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false // groupchat, headline, error
	}
	d := st.Decoder()
	store, content := false, false
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			// The end of the stanza (or bytes the router would not have
			// made): decide on what was seen.
			return store || content
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			switch {
			case t.Name.Space == NSHints && t.Name.Local == "no-store":
				return false
			case t.Name.Space == NSHints && t.Name.Local == "store":
				store = true
			case !metadata(t.Name):
				content = true
			}
			if err := d.Skip(); err != nil {
				return store || content
			}
			depth--
		case xml.EndElement:
			depth--
		}
	}
}

// metadata reports whether a child of a message says something about the
// message rather than being something to deliver: alone, such children
// are not worth storing (a chat state without a body, say).
func metadata(n xml.Name) bool {
	switch n.Space {
	case nsChatStates, NSHints, nsSID, NSDelay, nsCarbons:
		return true
	case stanza.NSClient:
		return n.Local == "thread"
	}
	return false
}

// withDelay returns a copy of the serialised message raw with a XEP-0203
// <delay/> from the server's domain, stamped stamp, as its last child.
func withDelay(raw []byte, domain jid.JID, stamp time.Time) []byte {
	const end = "</message>"
	out := make([]byte, 0, len(raw)+120)
	switch {
	case bytes.HasSuffix(raw, []byte(end)):
		out = append(out, raw[:len(raw)-len(end)]...)
	case bytes.HasSuffix(raw, []byte("/>")):
		out = append(out, raw[:len(raw)-2]...)
		out = append(out, '>')
	default:
		return raw // not a serialised message; deliver it as it is
	}
	out = append(out, "<delay"...)
	out = xmlenc.AppendAttr(out, "xmlns", NSDelay)
	out = xmlenc.AppendAttr(out, "from", domain.String())
	out = xmlenc.AppendAttr(out, "stamp", stamp.UTC().Format(stampLayout))
	out = append(out, "/>"...)
	return append(out, end...)
}
