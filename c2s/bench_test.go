package c2s

import (
	"bytes"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// BenchmarkReadStanza measures the read path per stanza: tokens from
// encoding/xml, from stamping, checks and serialisation into a
// router.Stanza (what the read loop does before routing).
func BenchmarkReadStanza(b *testing.B) {
	const one = "<message to='bob@localhost/b' type='chat' id='abc123'><body>Hello, how are you today?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
	const n = 1000
	input := bytes.Repeat([]byte(one), n)
	addr := newAddrCache(jid.MustParse("alice@localhost/a"))
	enc := newStanzaEncoder()
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		d := xml.NewDecoder(bytes.NewReader(input))
		d.DefaultSpace = stanza.NSClient
		for k := 0; k < n && i < b.N; k, i = k+1, i+1 {
			tok, err := d.Token()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := enc.read(d, tok.(xml.StartElement), addr, 64); err != nil {
				b.Fatal(err)
			}
		}
	}
}
