package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"xmppd.dev/xmppd/bosh"
	"xmppd.dev/xmppd/c2s"
	"xmppd.dev/xmppd/certs"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/httpupload"
	"xmppd.dev/xmppd/webchat"
	"xmppd.dev/xmppd/websocket"
)

// HTTP server timeouts. There is no overall read or write timeout, since
// an upload or download of a large file may take long; the upload handler
// ends transfers that stall instead.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = 64 << 10
)

// httpSide is the [http] listeners and the services behind them.
type httpSide struct {
	// servers serve plain and tls, one each: an http.Server serving
	// both would configure HTTP/2 for TLS or not depending on which
	// Serve call ran first.
	servers []*http.Server
	plain   net.Listener        // [http] listen, or nil
	tls     net.Listener        // [http] tls_listen, or nil
	upload  *httpupload.Service // nil when disabled
	wg      sync.WaitGroup      // the Serve goroutines
}

// startHTTP binds the [http] listeners, sets up the XEP-0363 upload
// service behind them (registering its domain with the router) and
// starts serving. It runs before the c2s listeners open, while the
// router's registry may still change.
func (s *Server) startHTTP(cert tls.Certificate) (err error) {
	cfg := &s.cfg
	h := &s.http
	if cfg.HTTP.Listen == "" && cfg.HTTP.TLSListen == "" {
		if cfg.HTTPUpload.Enabled {
			s.log.Info("HTTP file upload is off: no [http] listener")
		}
		return nil
	}
	if cfg.HTTP.Listen != "" {
		if h.plain, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return fmt.Errorf("server: listen for HTTP on %s: %w", cfg.HTTP.Listen, err)
		}
	}
	if cfg.HTTP.TLSListen != "" {
		if h.tls, err = net.Listen("tcp", cfg.HTTP.TLSListen); err != nil {
			return fmt.Errorf("server: listen for HTTPS on %s: %w", cfg.HTTP.TLSListen, err)
		}
	}
	// The public URL, with the ports actually bound (port 0 in tests).
	bound := *cfg
	if h.plain != nil {
		bound.HTTP.Listen = h.plain.Addr().String()
	}
	if h.tls != nil {
		bound.HTTP.TLSListen = h.tls.Addr().String()
	}
	public := bound.PublicURL()

	mux := http.NewServeMux()
	var handler http.Handler = mux
	// XMPP over WebSocket (RFC 7395) on the c2s core, and where browser
	// clients find it (XEP-0156).
	mux.Handle(websocket.Path, websocket.New(s.c2s, websocket.Options{
		AllowedOrigins: cfg.HTTP.AllowedOrigins,
		PublicURL:      public,
		MaxStanzaBytes: cfg.C2S.MaxStanzaBytes,
		TrustedProxies: config.Prefixes(cfg.HTTP.TrustedProxies), // nil when empty: loopback
	}, s.log.With("component", "websocket")))
	// XMPP over BOSH (XEP-0206), on the same c2s core.
	var boshURL string
	if cfg.BOSH.Enabled {
		b := cfg.BOSH
		mux.Handle(bosh.Path, bosh.New(s.c2s, bosh.Options{
			AllowedOrigins: cfg.HTTP.AllowedOrigins,
			PublicURL:      public,
			MaxStanzaBytes: cfg.C2S.MaxStanzaBytes,
			TrustedProxies: config.Prefixes(cfg.HTTP.TrustedProxies),
			MaxWait:        b.MaxWait.Duration,
			MaxInactivity:  b.MaxInactivity.Duration,
			MaxHold:        cmp.Or(b.MaxHold, -1), // 0 is polling
			MaxPause:       b.MaxPause.Duration,
			Polling:        cmp.Or(b.Polling.Duration, -1), // 0 is no limit
		}, s.log.With("component", "bosh")))
		boshURL = public + bosh.Path
		s.log.Info("XMPP over BOSH", "url", boshURL)
	}
	hostMeta := websocket.HostMeta(public, boshURL)
	mux.Handle(websocket.HostMetaPath, hostMeta)
	mux.Handle(websocket.HostMetaJSONPath, hostMeta)
	s.log.Info("XMPP over WebSocket", "url", websocket.WebSocketURL(public))
	// The chat page: Converse.js against that WebSocket.
	if cfg.Web.Enabled {
		chat, err := webchat.New(webchat.Options{
			Domain:         cfg.Server.Domain,
			WebSocketURL:   websocket.WebSocketURL(public),
			ConverseJSPath: cfg.Web.ConverseJSPath,
		})
		if err != nil {
			return fmt.Errorf("server: [web]: %w", err)
		}
		mux.Handle(webchat.Path, chat)
		mux.Handle(webchat.Path+"/", chat)
		s.log.Info("web chat", "url", public+webchat.Path, "conversejs", cmp.Or(cfg.Web.ConverseJSPath, webchat.CDNDist))
	}
	if cfg.HTTPUpload.Enabled {
		u := cfg.HTTPUpload
		h.upload, err = httpupload.New(s.router, s.db.HTTPUploads(), httpupload.Options{
			Domain:        cfg.UploadDomain(),
			ServerDomain:  cfg.Server.Domain,
			AllowRemote:   u.AllowRemote,
			Dir:           cfg.UploadDir(),
			SecretFile:    filepath.Join(cfg.Server.DataDir, "httpupload.secret"),
			PublicURL:     public,
			MaxFileSize:   int64(u.MaxFileSize),
			Quota:         int64(u.QuotaBytes),
			SlotTimeout:   u.SlotTimeout.Duration,
			MaxAge:        u.MaxAge.Duration,
			SweepInterval: u.SweepInterval.Duration,
		}, s.log.With("component", "httpupload"))
		if err != nil {
			return err
		}
		h.upload.Register(s.router.Registry())
		h.upload.Start()
		handler = uploadFirst(h.upload, mux)
		s.log.Info("HTTP file upload", "domain", cfg.UploadDomain(), "url", public+httpupload.PathPrefix)
	}

	serve := func(what string, ln net.Listener, tlsConfig *tls.Config) {
		// A WebSocket on it becomes a c2s session: its reads and writes
		// cost what a TCP client's do.
		ln = c2s.SocketListener(ln)
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			TLSConfig:         tlsConfig,
			ErrorLog:          slog.NewLogLogger(s.log.With("component", what).Handler(), slog.LevelDebug),
		}
		h.servers = append(h.servers, srv)
		s.log.Info("listening", "what", what, "addr", ln.Addr().String())
		h.wg.Go(func() {
			var err error
			if tlsConfig != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errOnce.Do(func() { s.err <- err })
			}
		})
	}
	if h.plain != nil {
		serve("http", h.plain, nil)
	}
	if h.tls != nil {
		serve("https", h.tls, certs.ServerConfig(cert))
	}
	return nil
}

// uploadFirst sends every request whose path starts with the upload
// prefix to the upload service, which checks the raw path itself, and
// the rest to mux. (http.ServeMux would redirect unclean paths such as
// /upload/../x, where the service answers 404.)
func uploadFirst(up http.Handler, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, httpupload.PathPrefix) || strings.HasPrefix(r.URL.EscapedPath(), httpupload.PathPrefix) {
			up.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// shutdownHTTP stops the HTTP listeners, waits for the requests in
// progress (or ctx, after which their connections are closed), then stops
// the upload service's sweep.
func (s *Server) shutdownHTTP(ctx context.Context) error {
	h := &s.http
	// Both at once, so that neither accepts while the other drains.
	errs := make([]error, len(h.servers))
	var wg sync.WaitGroup
	for i, srv := range h.servers {
		wg.Go(func() {
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				srv.Close()
			}
		})
	}
	wg.Wait()
	var err error
	if jerr := errors.Join(errs...); jerr != nil {
		err = fmt.Errorf("server: HTTP shutdown: %w", jerr)
	}
	h.wg.Wait()
	if h.upload != nil {
		if uerr := h.upload.Stop(ctx); err == nil {
			err = uerr
		}
	}
	return err
}

// closeHTTP stops everything startHTTP started, at once (after a failed
// Start, or after shutdownHTTP).
func (s *Server) closeHTTP() {
	h := &s.http
	for _, srv := range h.servers {
		srv.Close()
	}
	// Listeners bound but not yet served (a failed Start).
	for _, ln := range []net.Listener{h.plain, h.tls} {
		if ln != nil {
			ln.Close()
		}
	}
	h.wg.Wait()
	if h.upload != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.upload.Stop(ctx)
	}
}

// HTTPAddr is the address of the plain HTTP listener, nil without one.
func (s *Server) HTTPAddr() net.Addr {
	if s.http.plain == nil {
		return nil
	}
	return s.http.plain.Addr()
}

// HTTPSAddr is the address of the HTTPS listener, nil without one.
func (s *Server) HTTPSAddr() net.Addr {
	if s.http.tls == nil {
		return nil
	}
	return s.http.tls.Addr()
}
