package s2s

import (
	"context"
	"crypto/x509"
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
