package c2s

import (
	"bytes"
	"encoding/xml"
	"net"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// benchStanza is a typical chat message: a body and a chat state.
const benchStanza = "<message to='bob@localhost/b' type='chat' id='abc123'><body>Hello, how are you today?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"

// BenchmarkReadStanza measures the read path per stanza: from the bytes a
// client sent to a router.Stanza with from stamped (what the read loop
// does before routing). fast is the read loop's own parser
// (stanzaEncoder.scan); slow is encoding/xml's tokens serialised again
// (stanzaEncoder.read), which the read loop falls back to for rare forms.
func BenchmarkReadStanza(b *testing.B) {
	const n = 1000
	input := bytes.Repeat([]byte(benchStanza), n)
	addr := newAddrCache(jid.MustParse("alice@localhost/a"))
	b.Run("fast", func(b *testing.B) {
		enc := newStanzaEncoder()
		b.SetBytes(int64(len(benchStanza)))
		b.ReportAllocs()
		for i := 0; i < b.N; {
			g := newGuardConn(readerConn{r: bytes.NewReader(input)}, 0)
			g.ws = nil
			for k := 0; k < n && i < b.N; k, i = k+1, i+1 {
				if _, _, err := enc.scan(g, addr, 64); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("slow", func(b *testing.B) {
		enc := newStanzaEncoder()
		b.SetBytes(int64(len(benchStanza)))
		b.ReportAllocs()
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
	})
}

// readerConn is a net.Conn that only reads, from r.
type readerConn struct {
	net.Conn
	r *bytes.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
