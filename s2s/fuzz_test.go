package s2s_test

import (
	"testing"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/s2s"
)

// FuzzInbound: whatever a peer sends, reading it never panics, and every
// stanza it accepts is one the router can parse again, from the peer's
// domain to ours.
func FuzzInbound(f *testing.F) {
	for _, seed := range []string{
		"<message from='a@peer.example/r' to='b@example.org' type='chat'><body>hi</body></message>",
		"<presence from='a@peer.example' to='b@example.org' type='subscribe'/>",
		"<iq from='peer.example' to='example.org' type='get' id='1'><query xmlns='jabber:iq:version'/></iq>",
		"<message from='a@evil.example' to='b@example.org'/>",
		"<message from='a@peer.example' to='b@elsewhere'/>",
		"<message xmlns='jabber:client' from='a@peer.example' to='b@example.org'><x xmlns='urn:x'><body>n</body></x></message>",
		"<db:result xmlns:db='jabber:server:dialback'/>",
		"<!-- c --><message/>",
		"</stream:stream>",
		"<message from='a@peer.example' to='b@example.org'><a:b xmlns:a='urn:a'/></message>",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _ := s2s.ReadStanzas(data, 1<<16)
		for _, raw := range out {
			st, err := router.Parse(raw)
			if err != nil {
				t.Fatalf("accepted %q, which does not parse again: %v", raw, err)
			}
			if st.From.Domainpart() != "peer.example" || st.To.Domainpart() != "example.org" {
				t.Fatalf("accepted %q from %s to %s", raw, st.From, st.To)
			}
		}
	})
}
