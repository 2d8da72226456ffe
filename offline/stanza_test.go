package offline

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

func TestWorthStoring(t *testing.T) {
	cases := []struct {
		name, raw string
		want      bool
	}{
		{"body", `<message type='chat'><body>hi</body></message>`, true},
		{"no type", `<message><body>hi</body></message>`, true},
		{"normal subject", `<message type='normal'><subject>s</subject></message>`, true},
		{"headline", `<message type='headline'><body>hi</body></message>`, false},
		{"groupchat", `<message type='groupchat'><body>hi</body></message>`, false},
		{"error", `<message type='error'><body>hi</body></message>`, false},
		{"empty", `<message type='chat'/>`, false},
		{"chat state", `<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{"metadata only", `<message type='chat'><thread>t</thread><origin-id xmlns='urn:xmpp:sid:0' id='1'/><no-copy xmlns='urn:xmpp:hints'/><private xmlns='urn:xmpp:carbons:2'/></message>`, false},
		{"store hint", `<message type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>`, true},
		{"no-store", `<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`, false},
		{"no-store after store", `<message type='chat'><store xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/></message>`, false},
		// A body nested in a payload is not the message's body, but the
		// payload itself is content.
		{"encrypted", `<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>`, true},
		{"invite", `<message><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>`, true},
		{"delay from the sender only", `<message type='chat'><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>`, false},
		{"no-store nested is not a hint", `<message type='chat'><body>x</body><x xmlns='urn:example'><no-store xmlns='urn:xmpp:hints'/></x></message>`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := router.Parse([]byte(c.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := worthStoring(st); got != c.want {
				t.Errorf("worthStoring(%s) = %v, want %v", c.raw, got, c.want)
			}
		})
	}
}

func TestWithDelay(t *testing.T) {
	stamp := time.Date(2024, 2, 29, 23, 59, 58, 123_456_789, time.FixedZone("CET", 3600))
	domain := jid.MustParse("example.org")
	const delay = `<delay xmlns='urn:xmpp:delay' from='example.org' stamp='2024-02-29T22:59:58.123Z'/>`
	cases := []struct{ name, in, want string }{
		{"with children", `<message to='a@example.org'><body>x</body></message>`,
			`<message to='a@example.org'><body>x</body>` + delay + `</message>`},
		{"empty element", `<message to='a@example.org'/>`,
			`<message to='a@example.org'>` + delay + `</message>`},
		{"sender's delay kept", `<message><delay xmlns='urn:xmpp:delay' from='x@y' stamp='2000-01-01T00:00:00Z'/></message>`,
			`<message><delay xmlns='urn:xmpp:delay' from='x@y' stamp='2000-01-01T00:00:00Z'/>` + delay + `</message>`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			if got := string(withDelay(in, domain, stamp)); got != c.want {
				t.Errorf("withDelay(%s) =\n%s\nwant\n%s", c.in, got, c.want)
			}
			if string(in) != c.in {
				t.Errorf("withDelay changed its input to %s", in)
			}
		})
	}
}
