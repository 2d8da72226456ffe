package s2s

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/xml"
)

// VerifyCert is verifyCert, for tests.
func VerifyCert(chain []*x509.Certificate, roots *x509.CertPool, domain string) error {
	return verifyCert(chain, roots, domain)
}

// Targets returns the addresses targets gives, direct TLS ones marked
// "tls:".
func Targets(ctx context.Context, res Resolver, routes map[string]string, domain string) ([]string, error) {
	ts, err := targets(ctx, res, routes, domain)
	var out []string
	for _, t := range ts {
		if t.directTLS {
			out = append(out, "tls:"+t.addr)
		} else {
			out = append(out, t.addr)
		}
	}
	return out, err
}

// DialbackKey is dialbackKey, for tests.
var DialbackKey = dialbackKey

// ReadStanzas reads stanzas from a stream body (no header) as an
// authenticated incoming stream from peer.example would, stopping at the
// first error, and returns what it made of them.
func ReadStanzas(data []byte, maxBytes int) ([][]byte, error) {
	r := &reader{lr: &limitReader{r: bufio.NewReader(bytes.NewReader(data)), max: maxBytes}}
	r.d = xml.NewDecoder(r.lr)
	// Inside a stream whose default namespace is jabber:server.
	r.d.DefaultSpace = NSServer
	var out [][]byte
	for {
		start, err := r.next()
		if err != nil {
			return out, err
		}
		st, err := r.stanza(start, func(d string) bool { return d == "peer.example" }, func(d string) bool { return d == "example.org" })
		if err != nil {
			return out, err
		}
		out = append(out, st.Raw)
	}
}
