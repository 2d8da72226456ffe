package s2s_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/s2s"
)

type fakeResolver map[string][]*net.SRV

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	srvs, ok := f["_"+service+"._"+proto+"."+name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return "", srvs, nil
}

// TestTargets: a route wins; SRV records by priority, direct TLS first at
// equal priority (XEP-0368); without records, the domain on 5269; a "."
// target means no service.
func TestTargets(t *testing.T) {
	res := fakeResolver{
		"_xmpps-server._tcp.example.net": {{Target: "tls.example.net.", Port: 5270, Priority: 10}},
		"_xmpp-server._tcp.example.net":  {{Target: "xmpp1.example.net.", Port: 5269, Priority: 5}, {Target: "xmpp2.example.net.", Port: 5269, Priority: 10}},
		"_xmpp-server._tcp.none.test":    {{Target: ".", Port: 0}},
	}
	cases := []struct {
		domain string
		want   []string
		err    bool
	}{
		{"routed.test", []string{"10.0.0.1:5269"}, false},
		{"example.net", []string{"xmpp1.example.net:5269", "tls:tls.example.net:5270", "xmpp2.example.net:5269"}, false},
		{"plain.test", []string{"plain.test:5269"}, false},
		{"none.test", nil, true},
	}
	for _, c := range cases {
		got, err := s2s.Targets(context.Background(), res, map[string]string{"routed.test": "10.0.0.1:5269"}, c.domain)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v (error %v)", c.domain, got, err, c.want, c.err)
		}
	}
}

// TestVerifyCert: DNS-IDs (with wildcards) and SRV-IDs in otherName
// (RFC 6125, RFC 4985) match the domain; a certificate for another name
// or from an untrusted CA does not.
func TestVerifyCert(t *testing.T) {
	ca := xmpptest.NewCA(t)
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(ca.File)
	roots.AppendCertsFromPEM(pemCA)
	load := func(file string) []*x509.Certificate {
		b, _ := os.ReadFile(file)
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c}
	}
	dns, _ := ca.Issue(t, "b.test", "*.b.test")
	srvID, _ := ca.IssueTemplate(t, &x509.Certificate{ExtraExtensions: []pkix.Extension{sanOtherName(t, "_xmpp-server.c.test")}})
	other := xmpptest.NewCA(t)
	untrusted, _ := other.Issue(t, "b.test")
	cases := []struct {
		file, domain string
		ok           bool
	}{
		{dns, "b.test", true},
		{dns, "conference.b.test", true},
		{dns, "c.test", false},
		{srvID, "c.test", true},
		{srvID, "b.test", false},
		{untrusted, "b.test", false},
	}
	for _, c := range cases {
		err := s2s.VerifyCert(load(c.file), roots, c.domain)
		if (err == nil) != c.ok {
			t.Errorf("%s for %s: %v, want ok %v", c.file, c.domain, err, c.ok)
		}
	}
}

// sanOtherName is a subjectAltName with one SRVName otherName (RFC 4985).
func sanOtherName(t *testing.T, name string) pkix.Extension {
	t.Helper()
	str, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(name)})
	if err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7})
	on, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, val...)})
	san, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: on})
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}
}

// TestDialbackKey: XEP-0185's key is the same for the same inputs (so
// that it verifies after a restart with the same secret) and different
// when any input differs.
func TestDialbackKey(t *testing.T) {
	secret := []byte("s3cr3tf0rd14lb4ck")
	k := s2s.DialbackKey(secret, "example.net", "example.com", "D60000229F")
	if len(k) != 64 || k != s2s.DialbackKey(secret, "example.net", "example.com", "D60000229F") {
		t.Fatalf("key %q", k)
	}
	for _, other := range []string{
		s2s.DialbackKey([]byte("other"), "example.net", "example.com", "D60000229F"),
		s2s.DialbackKey(secret, "example.org", "example.com", "D60000229F"),
		s2s.DialbackKey(secret, "example.net", "example.org", "D60000229F"),
		s2s.DialbackKey(secret, "example.net", "example.com", "D60000229G"),
	} {
		if other == k {
			t.Errorf("a different input gave the same key %s", k)
		}
	}
}
