package pep

import (
	"testing"

	"xmppd.dev/xmppd/router"
)

// FuzzParse: whatever a client puts inside <pubsub/> (or #owner), parse
// returns a request or an error, and a publish's payload that parse
// accepts is, element by element, one that canonical serialises again.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"<publish node='n'><item id='1'><x xmlns='u'/></item></publish>",
		"<publish node='n'><item><x xmlns='u'>t</x></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options>",
		"<items node='n' max_items='3'/>",
		"<items node='n'><item id='a'/><item id='b'/></items>",
		"<retract node='n' notify='true'><item id='a'/></retract>",
		"<configure node='n'><x xmlns='jabber:x:data' type='submit'/></configure>",
		"<publish node='n'><item id='1'><a xmlns='u'/><b xmlns='u'/></item></publish>",
		"<publish node=''><item/></publish>",
		"<items max_items='-1' node='n'/>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		for _, ns := range []string{NS, NSOwner} {
			raw := "<iq type='set' id='f'><pubsub xmlns='" + ns + "'>" + inner + "</pubsub></iq>"
			st, err := router.Parse([]byte(raw))
			if err != nil {
				return
			}
			req, err := parse(st, ns)
			if err != nil {
				continue
			}
			for _, it := range req.items {
				for _, p := range it.payloads {
					if _, err := canonical(p); err != nil {
						t.Fatalf("parse accepted a payload canonical refuses: %q: %v", p, err)
					}
				}
			}
		}
	})
}
