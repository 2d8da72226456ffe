package push

import (
	"testing"

	"xmppd.dev/xmppd/router"
)

// FuzzInspect: any message a client can send is inspected without a
// panic.
func FuzzInspect(f *testing.F) {
	for _, s := range []string{
		`<message type='chat' from='a@x/r'><body>hi</body></message>`,
		`<message from='b@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='c@y/z'><body>fwd</body></message></forwarded></received></message>`,
		`<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received></message>`,
		`<message type='groupchat'><subject/><body>x</body></message>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := router.Parse([]byte(s))
		if err != nil || st.Kind != router.KindMessage {
			return
		}
		inspect(st)
	})
}

// FuzzParseRequest: any enable or disable payload is parsed or refused
// with a stanza error, without a panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`<iq type='set' id='1' from='a@x/r'><enable xmlns='urn:xmpp:push:0' jid='push.x' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s</value></field></x></enable></iq>`,
		`<iq type='set' id='1' from='a@x/r'><disable xmlns='urn:xmpp:push:0' jid='push.x'/></iq>`,
		`<iq type='set' id='1' from='a@x/r'><enable xmlns='urn:xmpp:push:0' jid='@@'/></iq>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := router.Parse([]byte(s))
		if err != nil || st.Kind != router.KindIQ {
			return
		}
		parseRequest(st)
	})
}
