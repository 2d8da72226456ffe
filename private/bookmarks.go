package private

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmlenc"
)

// Bookmark namespaces and node options.
const (
	NSBookmarks      = "storage:bookmarks"    // XEP-0048, in private XML and as a PEP node
	NSBookmarks2     = "urn:xmpp:bookmarks:1" // XEP-0402
	FeatureCompat    = NSBookmarks2 + "#compat"
	FeatureCompatPEP = NSBookmarks2 + "#compat-pep"

	// LegacyItem is the id of the XEP-0048 PEP node's one item.
	LegacyItem = "current"
)

// Bookmarks2Options are the publish-options of XEP-0402 items (§3.3).
func Bookmarks2Options() map[string]string {
	return map[string]string{
		"pubsub#persist_items":            "true",
		"pubsub#max_items":                "max",
		"pubsub#send_last_published_item": "never",
		"pubsub#access_model":             "whitelist",
	}
}

// LegacyOptions are the publish-options of the XEP-0048 PEP node (§3.2).
func LegacyOptions() map[string]string {
	return map[string]string{
		"pubsub#persist_items": "true",
		"pubsub#access_model":  "whitelist",
	}
}

// Bookmark is one bookmarked room, in the terms both formats share.
type Bookmark struct {
	JID      string // the room's JID: XEP-0402's item id, XEP-0048's jid attribute
	Name     string
	Autojoin bool
	Nick     string
	Password string
	// Extensions are further elements, serialised, each declaring its
	// namespace: XEP-0402's <extensions/> children, XEP-0048's other
	// children of <conference/> (Gajim's <minimize/>, say). Kept as they
	// are both ways.
	Extensions []byte
}

// Equal reports whether two bookmarks say the same.
func (b Bookmark) Equal(o Bookmark) bool {
	return b.JID == o.JID && b.Name == o.Name && b.Autojoin == o.Autojoin && b.Nick == o.Nick &&
		b.Password == o.Password && bytes.Equal(b.Extensions, o.Extensions)
}

// parseBool reads an xs:boolean: "true" or "1" (XEP-0048 and XEP-0402 say
// boolean; clients write both forms).
func parseBool(s string) bool {
	s = strings.TrimSpace(s)
	return s == "true" || s == "1"
}

// normaliseRoom returns the room JID in its normal form, or "" when it is
// no JID.
func normaliseRoom(s string) string {
	j, err := jid.Parse(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return j.String()
}

// element is a serialiser for one subtree read from a decoder.
func copyElement(d *xml.Decoder, start xml.StartElement) ([]byte, error) {
	enc := xmlenc.Encoder{Default: ""}
	if err := enc.EncodeToken(start); err != nil {
		return nil, err
	}
	for enc.Depth() > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if err := enc.EncodeToken(tok); err != nil {
			return nil, err
		}
	}
	return enc.Buf, nil
}

// text reads the character data of the element just started, to its end.
func text(d *xml.Decoder, start xml.StartElement) (string, error) {
	var s string
	err := d.DecodeElement(&s, &start)
	return strings.TrimSpace(s), err
}

// ParseStorage reads a XEP-0048 <storage xmlns='storage:bookmarks'/>
// element: its conferences (those without a valid jid are dropped; of two
// with one jid, the first is kept) and its other children (<url/>),
// serialised.
func ParseStorage(storage []byte) (bms []Bookmark, other []byte, err error) {
	d := xml.NewDecoder(bytes.NewReader(storage))
	root, err := firstStart(d)
	if err != nil {
		return nil, nil, fmt.Errorf("private: bookmarks storage: %w", err)
	}
	if root.Name.Space != NSBookmarks || root.Name.Local != "storage" {
		return nil, nil, fmt.Errorf("private: bookmarks storage: root is {%s}%s", root.Name.Space, root.Name.Local)
	}
	seen := map[string]bool{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return bms, other, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("private: bookmarks storage: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != NSBookmarks || start.Name.Local != "conference" {
			el, err := copyElement(d, start)
			if err != nil {
				return nil, nil, fmt.Errorf("private: bookmarks storage: %w", err)
			}
			other = append(other, el...)
			continue
		}
		b, err := parseConference(d, start, NSBookmarks)
		if err != nil {
			return nil, nil, fmt.Errorf("private: bookmarks storage: %w", err)
		}
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "jid" {
				b.JID = normaliseRoom(a.Value)
			}
		}
		if b.JID == "" || seen[b.JID] {
			continue
		}
		seen[b.JID] = true
		bms = append(bms, b)
	}
}

func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s, nil
		}
	}
}

// parseConference reads a <conference/> element of namespace ns (either
// format) after its start tag: name, autojoin, nick, password and the
// rest as extensions (XEP-0402: <extensions/>'s children; XEP-0048: every
// other child).
func parseConference(d *xml.Decoder, start xml.StartElement, ns string) (Bookmark, error) {
	var b Bookmark
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "name":
			b.Name = a.Value
		case "autojoin":
			b.Autojoin = parseBool(a.Value)
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return b, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return b, nil
		case xml.StartElement:
			switch {
			case t.Name.Space == ns && t.Name.Local == "nick":
				if b.Nick, err = text(d, t); err != nil {
					return b, err
				}
			case t.Name.Space == ns && t.Name.Local == "password":
				if b.Password, err = text(d, t); err != nil {
					return b, err
				}
			case ns == NSBookmarks2 && t.Name.Space == ns && t.Name.Local == "extensions":
				for {
					tok, err := d.Token()
					if err != nil {
						return b, err
					}
					if _, end := tok.(xml.EndElement); end {
						break
					}
					if s, ok := tok.(xml.StartElement); ok {
						el, err := copyElement(d, s)
						if err != nil {
							return b, err
						}
						b.Extensions = append(b.Extensions, el...)
					}
				}
			case ns == NSBookmarks2:
				if err := d.Skip(); err != nil { // not in the schema
					return b, err
				}
			default:
				el, err := copyElement(d, t)
				if err != nil {
					return b, err
				}
				b.Extensions = append(b.Extensions, el...)
			}
		}
	}
}

// ParseConference reads a XEP-0402 item: its id (the room's JID) and its
// <conference xmlns='urn:xmpp:bookmarks:1'/> payload.
func ParseConference(id string, payload []byte) (Bookmark, error) {
	d := xml.NewDecoder(bytes.NewReader(payload))
	start, err := firstStart(d)
	if err != nil {
		return Bookmark{}, fmt.Errorf("private: bookmark %s: %w", id, err)
	}
	if start.Name.Space != NSBookmarks2 || start.Name.Local != "conference" {
		return Bookmark{}, fmt.Errorf("private: bookmark %s: payload is {%s}%s", id, start.Name.Space, start.Name.Local)
	}
	b, err := parseConference(d, start, NSBookmarks2)
	if err != nil {
		return Bookmark{}, fmt.Errorf("private: bookmark %s: %w", id, err)
	}
	if b.JID = normaliseRoom(id); b.JID == "" {
		return Bookmark{}, fmt.Errorf("private: bookmark %q: the id is no JID", id)
	}
	return b, nil
}

func appendConferenceBody(dst []byte, b Bookmark) []byte {
	if b.Name != "" {
		dst = xmlenc.AppendAttr(dst, "name", b.Name)
	}
	if b.Autojoin {
		dst = xmlenc.AppendAttr(dst, "autojoin", "true")
	}
	dst = append(dst, '>')
	if b.Nick != "" {
		dst = append(dst, "<nick>"...)
		dst = xmlenc.AppendEscaped(dst, []byte(b.Nick), false)
		dst = append(dst, "</nick>"...)
	}
	if b.Password != "" {
		dst = append(dst, "<password>"...)
		dst = xmlenc.AppendEscaped(dst, []byte(b.Password), false)
		dst = append(dst, "</password>"...)
	}
	return dst
}

// ConferenceXML is the XEP-0402 payload of b (its id is b.JID).
func ConferenceXML(b Bookmark) []byte {
	out := appendConferenceBody([]byte("<conference xmlns='"+NSBookmarks2+"'"), b)
	if len(b.Extensions) > 0 {
		out = append(out, "<extensions>"...)
		out = append(out, b.Extensions...)
		out = append(out, "</extensions>"...)
	}
	return append(out, "</conference>"...)
}

// StorageXML is the XEP-0048 <storage/> of bms, with other (its <url/>
// elements, serialised) after the conferences.
func StorageXML(bms []Bookmark, other []byte) []byte {
	out := []byte("<storage xmlns='" + NSBookmarks + "'>")
	for _, b := range bms {
		out = xmlenc.AppendAttr(append(out, "<conference"...), "jid", b.JID)
		out = appendConferenceBody(out, b)
		out = append(out, b.Extensions...)
		out = append(out, "</conference>"...)
	}
	out = append(out, other...)
	return append(out, "</storage>"...)
}

// StorageToItems converts a XEP-0048 <storage/> into XEP-0402 items: one
// per room, id the room's JID. Its <url/> elements have no place there.
func StorageToItems(storage []byte) (ids []string, payloads [][]byte, err error) {
	bms, _, err := ParseStorage(storage)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range bms {
		ids = append(ids, b.JID)
		payloads = append(payloads, ConferenceXML(b))
	}
	return ids, payloads, nil
}

// ParseItems reads XEP-0402 items; items that do not parse are left out
// (another client's mistake must not cost the others their bookmarks), as
// are repeated ids.
func ParseItems(ids []string, payloads [][]byte) []Bookmark {
	var bms []Bookmark
	seen := map[string]bool{}
	for i, id := range ids {
		if i >= len(payloads) {
			break
		}
		b, err := ParseConference(id, payloads[i])
		if err != nil || seen[b.JID] {
			continue
		}
		seen[b.JID] = true
		bms = append(bms, b)
	}
	return bms
}

// ItemsToStorage collates XEP-0402 items into a XEP-0048 <storage/>
// (XEP-0402 §5.3.1), keeping the elements of old (the stored <storage/>,
// may be nil) that are not conferences, such as <url/>.
func ItemsToStorage(ids []string, payloads [][]byte, old []byte) []byte {
	var other []byte
	if len(old) > 0 {
		if _, o, err := ParseStorage(old); err == nil {
			other = o
		}
	}
	return StorageXML(ParseItems(ids, payloads), other)
}

// Diff returns what turns the bookmarks cur into next with the fewest
// notifications (XEP-0402 §5.3.2): the bookmarks to publish (new or
// changed) and the room JIDs to retract.
func Diff(cur, next []Bookmark) (publish []Bookmark, retract []string) {
	have := make(map[string]Bookmark, len(cur))
	for _, b := range cur {
		have[b.JID] = b
	}
	keep := make(map[string]bool, len(next))
	for _, b := range next {
		keep[b.JID] = true
		if old, ok := have[b.JID]; !ok || !old.Equal(b) {
			publish = append(publish, b)
		}
	}
	for _, b := range cur {
		if !keep[b.JID] {
			retract = append(retract, b.JID)
		}
	}
	return publish, retract
}

// sameStorage reports whether two <storage/> elements say the same: the
// same bookmarks in the same order and the same other elements.
func sameStorage(a, b []byte) bool {
	ab, ao, err1 := ParseStorage(a)
	bb, bo, err2 := ParseStorage(b)
	if err1 != nil || err2 != nil || len(ab) != len(bb) || !bytes.Equal(ao, bo) {
		return false
	}
	for i := range ab {
		if !ab[i].Equal(bb[i]) {
			return false
		}
	}
	return true
}
