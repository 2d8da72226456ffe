package c2s

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strconv"
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

// BenchmarkSessionMessage is the session's cost per message, in and out:
// alice's client sends a chat message to alice's own full JID, and reads
// it back, over an in-memory connection (the read loop, routing, Deliver,
// the writer). With sm, stream management is on and the client behaves as
// the benchmark clients (cmd/xmppbench -sm) do: <a h/> after every 5
// stanzas received and an <r/> with every 5th it sends; the server asks
// after 5 unacknowledged stanzas and answers every <r/>. The difference is
// what stream management costs per message.
func BenchmarkSessionMessage(b *testing.B) {
	for _, sm := range []bool{false, true} {
		name := "plain"
		if sm {
			name = "sm"
		}
		b.Run(name, func(b *testing.B) {
			srv := testServer()
			c, done := tcpSession(b, srv)
			defer func() {
				c.Close()
				<-done
			}()
			r := bufio.NewReaderSize(c, 64<<10)
			// The server's header, features and bind result.
			if err := readUntil(r, "</iq>"); err != nil {
				b.Fatal(err)
			}
			if sm {
				io.WriteString(c, "<enable xmlns='urn:xmpp:sm:3'/>")
				if err := readUntil(r, "/>"); err != nil {
					b.Fatal(err)
				}
			}
			msg := []byte("<message to='alice@localhost/r' type='chat' id='m'><body>a message of a typical length, some forty bytes</body></message>")
			withR := append(append([]byte{}, msg...), "<r xmlns='urn:xmpp:sm:3'/>"...)
			got := 0 // stanzas received
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				out := msg
				if sm && i%5 == 4 {
					out = withR
				}
				if _, err := c.Write(out); err != nil {
					b.Fatal(err)
				}
				if err := readUntil(r, "</message>"); err != nil {
					b.Fatal(err)
				}
				got++
				if sm && got%5 == 0 {
					io.WriteString(c, "<a xmlns='urn:xmpp:sm:3' h='"+strconv.Itoa(got)+"'/>")
				}
			}
		})
	}
}

// readUntil reads from r through the first occurrence of s; what the
// server sends besides (its <r/>, <a/>) is read and dropped on the way.
func readUntil(r *bufio.Reader, s string) error {
	last := s[len(s)-1]
	var buf []byte
	for {
		chunk, err := r.ReadSlice(last)
		buf = append(buf, chunk...)
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
		if bytes.HasSuffix(buf, []byte(s)) {
			return nil
		}
		if len(buf) > 1<<20 {
			return fmt.Errorf("no %q in %d bytes", s, len(buf))
		}
	}
}

// tcpSession is pipeSession over a loopback TCP connection: the kernel's
// buffers let client and server write while the other writes too.
func tcpSession(tb testing.TB, srv *Server) (client net.Conn, done <-chan struct{}) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	done = serveTestSession(tb, srv, s, newSockConn(s))
	io.WriteString(c, clientHeader)
	return c, done
}
