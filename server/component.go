package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	"xmppd.dev/xmppd/component"
	"xmppd.dev/xmppd/router"
)

// componentSide is the [component] listener (XEP-0114) and its service.
type componentSide struct {
	svc *component.Service
	ln  net.Listener
}

// registerComponents sets up the external components of [component],
// their secrets read now, and registers their domains; nothing when no
// listener is configured.
func (s *Server) registerComponents(reg *router.Registry) error {
	cc := s.cfg.Component
	if cc.Listen == "" {
		return nil
	}
	opts := component.Options{
		MaxStanzaBytes:   s.cfg.C2S.MaxStanzaBytes,
		SendQueueBytes:   cc.SendQueueBytes,
		HandshakeTimeout: s.cfg.C2S.HandshakeTimeout.Duration,
		WriteTimeout:     s.cfg.C2S.WriteTimeout.Duration,
	}
	for _, c := range cc.Services {
		secret, err := c.LoadSecret()
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		opts.Components = append(opts.Components, component.Component{Domain: c.Domain, Secret: secret})
	}
	s.comp.svc = component.New(s.router, opts, s.log.With("component", "component"))
	s.comp.svc.Register(reg)
	return nil
}

// startComponents opens the [component] listener.
func (s *Server) startComponents() error {
	if s.comp.svc == nil {
		return nil
	}
	addr := s.cfg.Component.Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen for components on %s: %w", addr, err)
	}
	s.comp.ln = ln
	s.log.Info("listening", "what", "components (XEP-0114)", "addr", ln.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.comp.svc.Serve(ln); err != nil && !errors.Is(err, component.ErrServerClosed) {
			s.errOnce.Do(func() { s.err <- err })
		}
	}()
	return nil
}

// shutdownComponents ends the components' streams with system-shutdown.
func (s *Server) shutdownComponents(ctx context.Context) error {
	if s.comp.svc == nil {
		return nil
	}
	return s.comp.svc.Shutdown(ctx)
}

// ComponentAddr is the address of the [component] listener, nil without one.
func (s *Server) ComponentAddr() net.Addr {
	if s.comp.ln == nil {
		return nil
	}
	return s.comp.ln.Addr()
}
