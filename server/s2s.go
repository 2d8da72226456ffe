package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/s2s"
)

// dialbackSecretFile keeps the dialback secret (XEP-0185) in the data
// directory, so that keys handed out before a restart still verify.
const dialbackSecretFile = "s2s-dialback.secret"

// s2sSide is federation: the service and its listeners.
type s2sSide struct {
	svc       *s2s.Service
	ln, tlsLn net.Listener
}

// registerS2S makes federation the router's remote route.
func (s *Server) registerS2S(reg *router.Registry, cert tls.Certificate) error {
	c := s.cfg.S2S
	if !c.Enabled {
		return nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("server: s2s.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("server: s2s.ca_file %s: no PEM certificates in it", c.CAFile)
		}
	}
	secret, err := loadSecret(filepath.Join(s.cfg.Server.DataDir, dialbackSecretFile))
	if err != nil {
		return err
	}
	routes := map[string]string{}
	for _, r := range c.Routes {
		routes[r.Domain] = r.Address
	}
	s.s2s.svc = s2s.New(s.router, s2s.Options{
		TLS:             &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Roots:           roots,
		RequireTLS:      c.RequireTLS,
		Dialback:        c.Dialback,
		InsecureDomains: c.InsecureDomains,
		Allow:           c.Allow,
		Deny:            c.Deny,
		Routes:          routes,
		Secret:          secret,
		ConnectTimeout:  c.ConnectTimeout.Duration,
		IdleTimeout:     c.IdleTimeout.Duration,
		RetryDelay:      c.RetryDelay.Duration,
		WriteTimeout:    s.cfg.C2S.WriteTimeout.Duration,
		QueueStanzas:    c.QueueStanzas,
		MaxStanzaBytes:  c.MaxStanzaBytes,
		ReadRate:        c.ReadRate,
	}, s.log.With("component", "s2s"))
	s.s2s.svc.Register(reg)
	return nil
}

// loadSecret reads the dialback secret, making it on first start.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("server: dialback secret: %w", err)
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("server: dialback secret: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("server: dialback secret: %w", err)
	}
	return b, nil
}

// startS2S opens the [s2s] listeners.
func (s *Server) startS2S() error {
	c := s.cfg.S2S
	if s.s2s.svc == nil {
		return nil
	}
	for _, l := range []struct {
		addr, what string
		ln         *net.Listener
		serve      func(net.Listener) error
	}{
		{c.Listen, "s2s (STARTTLS)", &s.s2s.ln, s.s2s.svc.Serve},
		{c.DirectTLSListen, "s2s (direct TLS, XEP-0368)", &s.s2s.tlsLn, s.s2s.svc.ServeTLS},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("server: listen for %s on %s: %w", l.what, l.addr, err)
		}
		*l.ln = ln
		s.log.Info("listening", "what", l.what, "addr", ln.Addr().String())
		serve := l.serve
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := serve(ln); err != nil && !errors.Is(err, s2s.ErrServerClosed) {
				s.errOnce.Do(func() { s.err <- err })
			}
		}()
	}
	return nil
}

func (s *Server) shutdownS2S(ctx context.Context) error {
	if s.s2s.svc == nil {
		return nil
	}
	return s.s2s.svc.Shutdown(ctx)
}

// S2SAddr is the address of the [s2s] listener, nil without one.
func (s *Server) S2SAddr() net.Addr {
	if s.s2s.ln == nil {
		return nil
	}
	return s.s2s.ln.Addr()
}

// S2SDirectTLSAddr is the address of the [s2s] direct TLS listener.
func (s *Server) S2SDirectTLSAddr() net.Addr {
	if s.s2s.tlsLn == nil {
		return nil
	}
	return s.s2s.tlsLn.Addr()
}

// S2S is federation (for tests that look at peers).
func (s *Server) S2S() *s2s.Service { return s.s2s.svc }
