package blocking

import (
	"testing"

	"xmppd.dev/xmppd/router"
)

// FuzzParseItems: parsing a block or unblock payload never panics, and
// what it returns are normalised JIDs without duplicates, at most MaxItems.
func FuzzParseItems(f *testing.F) {
	f.Add([]byte("<iq type='set' id='1'><block xmlns='urn:xmpp:blocking'><item jid='a@b'/><item jid='b'/></block></iq>"))
	f.Add([]byte("<iq type='set' id='1'><unblock xmlns='urn:xmpp:blocking'/></iq>"))
	f.Add([]byte("<iq type='set' id='1'><block xmlns='urn:xmpp:blocking'><item/></block></iq>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := router.Parse(raw)
		if err != nil {
			return
		}
		jids, err := parseItems(st)
		if err != nil {
			return
		}
		if len(jids) > MaxItems {
			t.Fatalf("%d items", len(jids))
		}
		seen := map[string]bool{}
		for _, j := range jids {
			if seen[j] {
				t.Fatalf("duplicate %q", j)
			}
			seen[j] = true
		}
	})
}
