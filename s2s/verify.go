package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// verifyCert checks a peer's certificate chain against roots and the
// peer's domain (RFC 6125 as RFC 6120 §13.7.2 applies it): a DNS-ID
// (dNSName, wildcards in the left-most label as Go matches them), an
// SRV-ID "_xmpp-server.<domain>" or "_xmpps-server.<domain>", or an
// XmppAddr of the domain. Any extended key usage is accepted: a server
// presents its server certificate as a client certificate on the streams
// it initiates, and many carry serverAuth only.
func verifyCert(chain []*x509.Certificate, roots *x509.CertPool, domain string) error {
	if len(chain) == 0 {
		return errors.New("s2s: the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("s2s: certificate of %s: %w", domain, err)
	}
	if leaf.VerifyHostname(domain) == nil {
		return nil
	}
	if otherNameMatches(leaf, domain) {
		return nil
	}
	return fmt.Errorf("s2s: certificate is not valid for %s (names %v)", domain, leaf.DNSNames)
}

var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7} // id-on-dnsSRV, RFC 4985
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // id-on-xmppAddr, RFC 6120 §13.7.1.4
)

// otherNameMatches looks for an SRV-ID or XmppAddr for domain among the
// otherName entries of the certificate's subjectAltName, which Go's x509
// does not read.
func otherNameMatches(c *x509.Certificate, domain string) bool {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
			return false
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 {
				continue // not an otherName
			}
			var on struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue `asn1:"tag:0,explicit"`
			}
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil {
				continue
			}
			var s string
			if _, err := asn1.Unmarshal(on.Value.Bytes, &s); err != nil {
				continue
			}
			s = strings.ToLower(s)
			switch {
			case on.ID.Equal(oidSRVName):
				if s == "_xmpp-server."+domain || s == "_xmpps-server."+domain {
					return true
				}
			case on.ID.Equal(oidXmppAddr):
				if s == domain {
					return true
				}
			}
		}
	}
	return false
}

// dialbackKey is XEP-0185's key: HMAC-SHA256 keyed with the SHA-256 of
// the server's secret (hex), over "Receiving Originating StreamID", in
// hex.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}
