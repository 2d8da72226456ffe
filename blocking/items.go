package blocking

import (
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// parseItems reads the JIDs of the <item/> children of a block or unblock
// payload, normalised (jid.Parse), without duplicates. A malformed item
// JID is jid-malformed (§3.3); more items than MaxItems is bad-request.
func parseItems(iq *router.Stanza) ([]string, error) {
	d := iq.Decoder()
	var out []string
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed payload")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 3 || t.Name != (xml.Name{Space: NS, Local: "item"}) {
				continue
			}
			var raw string
			found := false
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "jid" {
					raw, found = a.Value, true
				}
			}
			if !found {
				return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "an item has no jid")
			}
			j, err := jid.Parse(raw)
			if err != nil {
				return nil, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "")
			}
			s := j.String()
			if !contains(out, s) {
				if len(out) == MaxItems {
					return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "too many items")
				}
				out = append(out, s)
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return out, nil
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
