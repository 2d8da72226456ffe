package c2s

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"fmt"
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
	addr := newAddrCache(jid.MustParse("alice@localhost/a"), &jidCache{})
	b.Run("fast", func(b *testing.B) {
		enc := newStanzaEncoder()
		b.SetBytes(int64(len(benchStanza)))
		b.ReportAllocs()
		for i := 0; i < b.N; {
			g := newGuardConn(&chunkConn{r: input, sizes: []int{readBufSize}}, 0)
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

// BenchmarkReadStanzaManyPeers is the fast read path for a client that
// writes to a different peer each time (1,000 of them, in turn), as the
// load generator's clients do: the session's own last-address cache
// misses. shared is the server's jidCache, warm after the first round;
// parse is a miss in both caches on every stanza (the server's emptied
// each time, which adds its map's allocation to what a miss cost before
// the shared cache).
func BenchmarkReadStanzaManyPeers(b *testing.B) {
	const n = 1000
	var input []byte
	for k := range n {
		input = fmt.Appendf(input, "<message to='peer%d@localhost/b' type='chat' id='abc123'><body>Hello, how are you today?</body></message>", k)
	}
	for _, c := range []struct {
		name  string
		fresh bool
	}{{"shared", false}, {"parse", true}} {
		b.Run(c.name, func(b *testing.B) {
			enc := newStanzaEncoder()
			shared := &jidCache{}
			addr := newAddrCache(jid.MustParse("alice@localhost/a"), shared)
			b.ReportAllocs()
			for i := 0; i < b.N; {
				g := newGuardConn(&chunkConn{r: input, sizes: []int{readBufSize}}, 0)
				for k := 0; k < n && i < b.N; k, i = k+1, i+1 {
					if c.fresh {
						for s := range shared.shards {
							shared.shards[s].m = nil
						}
					}
					if _, _, err := enc.scan(g, addr, 64); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// tlsState returns the server's state of a TLS connection over net.Pipe,
// handshake done, as the SASL offer sees it after STARTTLS.
func tlsState(tb testing.TB, serverCfg, clientCfg *tls.Config) tls.ConnectionState {
	tb.Helper()
	sc, cc := net.Pipe()
	tb.Cleanup(func() { sc.Close(); cc.Close() })
	srv := tls.Server(sc, serverCfg)
	errc := make(chan error, 1)
	go func() { errc <- tls.Client(cc, clientCfg).Handshake() }()
	if err := srv.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return srv.ConnectionState()
}

// BenchmarkSASLOffer measures deciding what SASL offers on a stream after
// TLS, which a login does twice (the feature list and the SASL exchange).
func BenchmarkSASLOffer(b *testing.B) {
	for _, tc := range []struct {
		name string
		max  uint16
	}{{"TLS1.3", 0}, {"TLS1.2", tls.VersionTLS12}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testTLSConfig(b)
			cs := tlsState(b, cfg, &tls.Config{InsecureSkipVerify: true, MaxVersion: tc.max})
			endPoint := endPointBinding(cfg.Certificates[0].Leaf).IsSupported()
			b.ReportAllocs()
			for b.Loop() {
				if o := newSASLOffer(&cs, endPoint); len(o.mechs) != 5 {
					b.Fatalf("offer %q", o.mechs)
				}
			}
		})
	}
}
