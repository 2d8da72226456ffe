package push

import (
	"testing"

	"xmppd.dev/xmppd/router"
)

// TestInspect: which messages wake a phone (Prosody's is_important), and
// what the summary says of them.
func TestInspect(t *testing.T) {
	for _, c := range []struct {
		name, msg    string
		important    bool
		sender, body string
	}{
		{"body", `<message type='chat' from='a@x/r'><body>hi &amp; bye</body></message>`, true, "a@x/r", "hi & bye"},
		{"no type", `<message from='a@x/r'><body>hi</body></message>`, true, "a@x/r", "hi"},
		{"empty body", `<message type='chat' from='a@x/r'><body></body></message>`, false, "", ""},
		{"chat state", `<message type='chat' from='a@x/r'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false, "", ""},
		{"receipt", `<message from='a@x/r'><received xmlns='urn:xmpp:receipts' id='1'/></message>`, false, "", ""},
		{"headline", `<message type='headline' from='a@x/r'><body>news</body></message>`, false, "", ""},
		{"group chat", `<message type='groupchat' from='room@muc/nick'><body>hello all</body></message>`, true, "room@muc/nick", "hello all"},
		{"group chat subject", `<message type='groupchat' from='room@muc/nick'><subject>topic</subject><body>changed</body></message>`, false, "", ""},
		{"OMEMO", `<message type='chat' from='a@x/r'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted><store xmlns='urn:xmpp:hints'/></message>`, true, "a@x/r", ""},
		{"OMEMO 2", `<message type='chat' from='a@x/r'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true, "a@x/r", ""},
		{"PGP", `<message type='chat' from='a@x/r'><x xmlns='jabber:x:encrypted'>...</x></message>`, true, "a@x/r", ""},
		{"call", `<message from='a@x/r'><propose xmlns='urn:xmpp:jingle-message:0' id='c'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>`, true, "a@x/r", ""},
		{"carbon received", `<message from='b@x' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='c@y/z' type='chat'><body>fwd</body></message></forwarded></received></message>`, true, "c@y/z", "fwd"},
		{"carbon sent", `<message from='b@x' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='b@x/other' type='chat'><body>mine</body></message></forwarded></sent></message>`, false, "", ""},
		{"first body", `<message type='chat' from='a@x/r'><body xml:lang='en'>one</body><body xml:lang='de'>eins</body></message>`, true, "a@x/r", "one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := router.Parse([]byte(c.msg))
			if err != nil {
				t.Fatal(err)
			}
			got := inspect(st)
			if got.important != c.important || (c.important && (got.sender != c.sender || got.body != c.body)) {
				t.Fatalf("inspect = %+v, want important %v, sender %q, body %q", got, c.important, c.sender, c.body)
			}
		})
	}
}
