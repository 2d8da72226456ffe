package xmpptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
)

// FreePort returns a loopback address with a port free a moment ago, for
// servers that must know each other's addresses before they start (or
// come back on the same one after a restart).
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// WithDomain serves domain instead of localhost.
func WithDomain(domain string) Option {
	return func(c *config.Config) { c.Server.Domain = domain }
}

// WithS2S turns federation on, listening for peers on addr (a FreePort),
// with STARTTLS; "" for none (outgoing streams only).
func WithS2S(addr string) Option {
	return func(c *config.Config) {
		c.S2S.Enabled = true
		c.S2S.Listen = addr
		c.S2S.ConnectTimeout = config.Duration{Duration: 3 * time.Second}
	}
}

// WithS2SRoute sends stanzas for a peer's domain to addr, bypassing DNS.
func WithS2SRoute(domain, addr string) Option {
	return func(c *config.Config) {
		c.S2S.Routes = append(c.S2S.Routes, config.S2SRoute{Domain: domain, Address: addr})
	}
}

// WithCert serves the certificate in certFile and keyFile.
func WithCert(certFile, keyFile string) Option {
	return func(c *config.Config) { c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile }
}

// CA is a certificate authority made for one test: servers trust it
// through [s2s] ca_file = CA.File.
type CA struct {
	File string     // the CA certificate, PEM
	T    testing.TB // the test it was made for
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// NewCA makes a CA in a temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "xmppd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{T: t, cert: cert, key: key, dir: t.TempDir()}
	ca.File = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// Issue makes a certificate for the names (DNS-IDs) and returns its
// certificate and key files.
func (ca *CA) Issue(t testing.TB, names ...string) (certFile, keyFile string) {
	t.Helper()
	return ca.IssueTemplate(t, &x509.Certificate{DNSNames: names})
}

// IssueTemplate is Issue with the names (and extensions, such as
// otherName SRV-IDs) of tmpl.
func (ca *CA) IssueTemplate(t testing.TB, tmpl *x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl.SerialNumber = serial
	if len(tmpl.DNSNames) > 0 {
		tmpl.Subject = pkix.Name{CommonName: tmpl.DNSNames[0]}
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(ca.dir, "cert")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kb)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
