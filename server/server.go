// Package server assembles a whole xmppd from its configuration: storage,
// accounts, the router with every feature registered, TLS, and the c2s
// listeners. cmd/xmppd runs one; tests start as many as they like in one
// process, each on its own ports and data directory.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/blocking"
	"xmppd.dev/xmppd/c2s"
	"xmppd.dev/xmppd/caps"
	"xmppd.dev/xmppd/carbons"
	"xmppd.dev/xmppd/certs"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/contactinfo"
	"xmppd.dev/xmppd/disco"
	"xmppd.dev/xmppd/entitytime"
	"xmppd.dev/xmppd/extdisco"
	"xmppd.dev/xmppd/lastactivity"
	"xmppd.dev/xmppd/mam"
	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/offline"
	"xmppd.dev/xmppd/pep"
	"xmppd.dev/xmppd/ping"
	"xmppd.dev/xmppd/private"
	"xmppd.dev/xmppd/push"
	"xmppd.dev/xmppd/roster"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/sharedgroups"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/vcard"
	"xmppd.dev/xmppd/version"
)

// Name is the software name the server reports.
const Name = "xmppd"

// Server is one running xmppd.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	version string

	db     *storage.DB
	auth   *auth.Service
	router *router.Router
	c2s    *c2s.Server
	// offline is stopped after c2s, so that messages still queued to
	// closing sessions are stored and deliveries learn their fate.
	offline *offline.Service
	// mam, when enabled, writes what it holds in memory after c2s and
	// muc stop, before storage closes.
	mam *mam.Service
	// muc, when enabled, tells its occupants (332) before c2s ends their
	// streams.
	muc *muc.Service
	// caps learns the clients' entity capabilities (PEP's +notify).
	caps *caps.Service
	// pep, when enabled, is every account's PEP service; features built
	// on it (bookmarks, avatars) are wired to it here.
	pep *pep.Service
	// shared is the shared roster groups; its polling stops with the
	// server.
	shared *sharedgroups.Service
	// http is the [http] listeners and the upload service; shut down
	// after c2s, before storage closes.
	http httpSide
	// comp is the [component] listener and the external components.
	comp componentSide
	// s2s is federation; shut down after c2s, so that the unavailable
	// presence of users logged out by the shutdown reaches remote
	// contacts.
	s2s s2sSide

	mu        sync.Mutex
	listeners []net.Listener
	wg        sync.WaitGroup
	errOnce   sync.Once
	err       chan error // the first fatal serve error
}

// New returns a server for cfg, which must have passed validation. Nothing
// is opened until Start.
func New(cfg config.Config, log *slog.Logger, softwareVersion string) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, version: softwareVersion, err: make(chan error, 1)}
}

// Start opens storage, runs migrations, loads or makes the certificate,
// and starts listening. On error everything opened is closed again.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	cfg := &s.cfg
	domain, err := jid.Parse(cfg.Server.Domain)
	if err != nil {
		return fmt.Errorf("server: domain %q: %w", cfg.Server.Domain, err)
	}

	s.db, err = storage.Open(ctx, cfg.Storage.Driver, cfg.StorageDSN())
	if err != nil {
		return err
	}
	// Imports and exports refuse to run beside a server (see
	// storage.DB.LockInstance); it is released when the DB is closed.
	if err := s.db.LockInstance(ctx); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	applied, err := s.db.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range applied {
		s.log.Info("applied migration", "migration", m)
	}
	s.auth = auth.New(s.db.Accounts(), cfg.Auth.SCRAMIterations)
	if cfg.Auth.LegacySCRAMSHA1 == "auto" {
		n, err := s.auth.CountLegacy(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Warn("accounts with SCRAM-SHA-1 keys only: SCRAM-SHA-256 is not offered until they have logged in with PLAIN or changed their password (auth.legacy_scram_sha1)", "accounts", n)
		}
	}

	s.router = router.New(domain, s.auth, s.log.With("component", "router"))
	reg := s.router.Registry()
	discoSvc := disco.New(Name)
	discoSvc.Register(reg)
	for _, f := range c2s.StreamFeatures {
		reg.Feature(f)
	}
	ping.Register(reg)
	if cfg.Server.SoftwareVersion {
		version.Register(reg, Name, s.version)
	}
	// Issue 23's smaller pieces: XEP-0157, XEP-0215, XEP-0202, XEP-0012.
	// The field lists are the same, so the config converts.
	contactinfo.Register(reg, contactinfo.Addresses(cfg.Server.Contact))
	if err := s.registerExtDisco(reg, domain); err != nil {
		return err
	}
	entitytime.Register(reg, nil)
	lastactivity.New(s.db.LastActivity(), s.router, s.log.With("component", "lastactivity")).Register(reg)
	// Blocking before the roster: presence from a blocked JID is dropped
	// before the roster sees it.
	block := blocking.New(s.db.Blocklists(), s.router, s.log.With("component", "blocking"))
	if err := block.Start(ctx); err != nil {
		return fmt.Errorf("server: block lists: %w", err)
	}
	block.Register(reg)
	if cfg.MAM.Enabled {
		m := cfg.MAM
		s.mam = mam.New(s.router, s.db.Archive(), mam.Options{
			Default: m.Default, MaxAge: m.MaxAge.Duration, MaxPerArchive: m.MaxMessagesPerUser,
			SweepInterval: m.SweepInterval.Duration,
			FlushInterval: m.FlushInterval.Duration, FlushMessages: m.FlushMessages,
		}, s.log.With("component", "mam"))
		if err := s.mam.Start(ctx); err != nil {
			return err
		}
		// Before carbons: the received copies carry the stanza id.
		s.mam.Register(reg)
	}
	carbons.New(s.router, s.log.With("component", "carbons")).Register(reg)
	// Entity capabilities: PEP asks s.caps.Wants (its interest) and is
	// told through s.caps.OnKnown when a session's caps become known.
	s.caps = caps.New(s.router, caps.Options{
		QueryTimeout: cfg.Caps.QueryTimeout.Duration, CacheEntries: cfg.Caps.CacheEntries,
	}, s.log.With("component", "caps"))
	s.caps.Register(reg)
	rost := roster.New(s.db.Rosters(), s.router, cfg.Roster.MaxItems, s.log.With("component", "roster"))
	// Shared roster groups, laid over every roster; changes made while
	// the server runs are picked up by polling storage's version.
	s.shared = sharedgroups.New(s.db.SharedGroups(), domain.String(), s.log.With("component", "sharedgroups"))
	if _, err := s.shared.Load(ctx); err != nil {
		return err
	}
	rost.WithShared(func() roster.SharedView { return s.shared.Current() })
	s.shared.Start(cfg.Roster.SharedGroupsReload.Duration, func(ctx context.Context, old *sharedgroups.View) { rost.SharedChanged(ctx, old) })
	rost.Register(reg)
	if cfg.PEP.Enabled {
		s.pep = pep.New(s.db.PEP(), rost, s.router, pep.Options{
			MaxNodes: cfg.PEP.MaxNodesPerAccount, MaxItems: cfg.PEP.MaxItemsPerNode, MaxPayloadBytes: cfg.PEP.MaxPayloadBytes,
			Interest: s.caps,
		}, s.log.With("component", "pep"))
		s.pep.Register(reg)
		// Last published items go to a resource once its caps say
		// which nodes it wants (XEP-0163 §6.2).
		s.caps.OnKnown(s.pep.CapsKnown)
	}
	// vCards and private XML. With PEP, each keeps its PEP side in step:
	// the vCard photo and nickname with the avatar and nick nodes
	// (XEP-0398, XEP-0172), private bookmarks with XEP-0402's and
	// XEP-0048's nodes (#compat, #compat-pep).
	vcOpts := vcard.Options{MaxBytes: cfg.VCard.MaxBytes}
	privOpts := private.Options{MaxBytes: cfg.Private.MaxBytes, MaxItems: cfg.Private.MaxItems}
	if s.pep != nil { // not a nil *pep.Service in the interfaces
		vcOpts.PEP, privOpts.PEP = s.pep, s.pep
	}
	vc := vcard.New(s.db.VCards(), s.router, vcOpts, s.log.With("component", "vcard"))
	if err := vc.Start(ctx); err != nil {
		return err
	}
	priv := private.New(s.db.PrivateXML(), privOpts, s.log.With("component", "private"))
	if s.pep != nil {
		s.watchPEP(vc.SyncFromPEP, vcard.NSAvatarMetadata, vcard.NSNick)
		s.watchPEP(priv.SyncFromPEP, private.NSBookmarks2, private.NSBookmarks)
	}
	vc.Register(reg)
	priv.Register(reg)
	s.offline = offline.New(s.db.Offline(), s.router, domain, offline.Limits{
		MaxMessages:   cfg.Offline.MaxMessages,
		MaxBytes:      cfg.Offline.MaxBytes,
		MaxAge:        cfg.Offline.MaxAge.Duration,
		SweepInterval: cfg.Offline.SweepInterval.Duration,
		// Half the send queue at most, so that a batch never overflows it.
		BatchStanzas: min(100, max(1, cfg.C2S.SendQueueStanzas/2)),
		BatchBytes:   min(1<<20, max(1, cfg.C2S.SendQueueBytes/2)),
	}, s.log.With("component", "offline"))
	s.offline.Register(reg)
	s.offline.Start()
	if cfg.Push.Enabled {
		p := push.New(s.db.Push(), s.router, push.Options{
			IncludeBody: cfg.Push.IncludeBody, MaxRegistrations: cfg.Push.MaxRegistrations,
			AckTimeout: cfg.Push.AckTimeout.Duration,
		}, s.log.With("component", "push"))
		if err := p.Start(ctx); err != nil {
			return fmt.Errorf("server: push registrations: %w", err)
		}
		p.Register(reg)
	}
	if cfg.MUC.Enabled {
		m := cfg.MUC
		s.muc, err = muc.New(s.router, s.db.MUC(), muc.Options{
			Domain: cfg.MUCDomain(), MaxRoomsPerUser: m.MaxRoomsPerUser, MaxOccupants: m.MaxOccupants,
			HistoryLength: m.HistoryLength, MaxHistoryLength: m.MaxHistoryLength,
			MessagesPerSecond: m.MessagesPerSecond, MessageBurst: m.MessageBurst,
			Archive: s.roomArchive(),
		}, s.log.With("component", "muc"))
		if err == nil {
			err = s.muc.Load(ctx)
		}
		if err != nil {
			return err
		}
		s.muc.Register(reg)
	}
	if err := s.registerComponents(reg); err != nil {
		return err
	}

	cert, src, err := certs.Load(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.Server.DataDir, []string{domain.String()})
	if err != nil {
		return err
	}
	switch {
	case src.Generated:
		s.log.Warn("generated a self-signed certificate; clients will ask to trust it (set [tls] cert_file and key_file for a real one)", "cert", src.CertFile)
	case src.SelfSigned:
		s.log.Warn("using a self-signed certificate; clients will ask to trust it", "cert", src.CertFile)
	default:
		s.log.Info("loaded certificate", "cert", src.CertFile)
	}
	if err := s.registerS2S(reg, cert); err != nil {
		return err
	}

	c := cfg.C2S
	s.c2s = &c2s.Server{
		Router:     s.router,
		Store:      s.auth,
		TLS:        certs.ServerConfig(cert),
		RequireTLS: c.RequireSTARTTLS,
		Limits: c2s.Limits{
			MaxStanzaBytes:   c.MaxStanzaBytes,
			MaxDepth:         c.MaxDepth,
			SendQueueStanzas: c.SendQueueStanzas,
			SendQueueBytes:   c.SendQueueBytes,
			WriteTimeout:     c.WriteTimeout.Duration,
			HandshakeTimeout: c.HandshakeTimeout.Duration,
			PingInterval:     c.PingInterval.Duration,
			PingTimeout:      c.PingTimeout.Duration,
			ReadRate:         c.ReadRate,
			ParkAfter:        c.ParkAfter.Duration,

			MaxConnections:           c.MaxConnections,
			MaxConnectionsPerAddress: c.MaxConnectionsPerAddress,
			ConnectionRate:           float64(c.ConnectionRatePerAddress),
			ConnectionBurst:          c.ConnectionBurstPerAddress,
			MaxResources:             c.MaxResourcesPerAccount,
			MaxUnacked:               c.MaxUnackedStanzas,
			ResumeTimeout:            c.ResumeTimeout.Duration,
		},
		Auth: c2s.AuthLimits{
			MaxFailures:              cfg.Auth.MaxFailures,
			FailureWindow:            cfg.Auth.FailureWindow.Duration,
			Lockout:                  cfg.Auth.Lockout.Duration,
			FailureDelay:             cfg.Auth.FailureDelay.Duration,
			AccountMaxFailures:       cfg.Auth.AccountMaxFailures,
			AddressFailuresPerMinute: cfg.Auth.AddressFailuresPerMinute,
			RememberLogins:           cfg.Auth.RememberLogins.Duration,
			TrustedNetworks:          config.Prefixes(cfg.Auth.TrustedNetworks),
			Logins:                   s.db.LoginNetworks(),
		},
		Log:             s.log.With("component", "c2s"),
		ProxyNetworks:   proxyNetworks(c),
		Features:        roster.StreamFeatures,
		SCRAMIterations: max(cfg.Auth.SCRAMIterations, auth.MinIterations),
		LegacySCRAM:     s.legacySCRAM,
	}

	// Before c2s: it registers the upload domain with the router.
	if err := s.startHTTP(cert); err != nil {
		return err
	}
	// The server's own caps (XEP-0115 §6.3), from its disco#info now
	// that every feature is registered.
	if err := s.serverCaps(ctx, discoSvc); err != nil {
		return err
	}
	if err := s.startComponents(); err != nil {
		return err
	}
	if err := s.startS2S(); err != nil {
		return err
	}
	if err := s.listen(c.Listen, "c2s (STARTTLS)", s.c2s.Serve); err != nil {
		return err
	}
	if c.DirectTLSListen != "" {
		if err := s.listen(c.DirectTLSListen, "c2s (direct TLS, XEP-0368)", s.c2s.ServeTLS); err != nil {
			return err
		}
	}
	s.log.Info("serving", "domain", domain.String(), "storage", cfg.Storage.Driver, "data_dir", cfg.Server.DataDir)
	return nil
}

// serverCaps computes the server's caps from its disco#info, lists them
// in the stream features and has disco answer for their node.
func (s *Server) serverCaps(ctx context.Context, d *disco.Service) error {
	info, err := d.Info(ctx)
	if err != nil {
		return fmt.Errorf("server: disco#info for caps: %w", err)
	}
	ver, err := caps.ServerVer(info)
	if err != nil {
		return fmt.Errorf("server: caps: %w", err)
	}
	d.SetCapsNode(caps.ServerNode + "#" + ver)
	s.c2s.Caps = caps.StreamFeature(ver)
	return nil
}

// registerExtDisco registers XEP-0215 with the [extdisco] services, their
// secrets read now (secret_file).
func (s *Server) registerExtDisco(reg *router.Registry, domain jid.JID) error {
	e := s.cfg.ExtDisco
	opts := extdisco.Options{Lifetime: e.CredentialLifetime.Duration}
	for _, c := range e.Services {
		secret, err := c.LoadSecret()
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		opts.Services = append(opts.Services, extdisco.Service{
			Type: c.Type, Host: c.Host, Port: c.DefaultPort(), Transport: c.Transport,
			Name: c.Name, Restricted: c.Restricted, Secret: secret,
		})
	}
	extdisco.Register(reg, domain, opts)
	return nil
}

// roomArchive is the rooms' archive, or nil (not a nil *mam.Rooms: muc
// tests the interface against nil) when rooms keep none.
func (s *Server) roomArchive() muc.Archive {
	if s.mam == nil || !s.cfg.MAM.Rooms {
		return nil
	}
	return s.mam.Rooms()
}

// watchPEP has sync called after each change of the given PEP nodes of
// any account. A sync that fails is logged: the node's change stands, and
// the other side catches up at the next change.
func (s *Server) watchPEP(sync func(ctx context.Context, owner jid.JID, node string) error, nodes ...string) {
	for _, node := range nodes {
		s.pep.Watch(node, func(ctx context.Context, owner jid.JID, _ string, _ []byte) {
			if err := sync(ctx, owner, node); err != nil {
				s.log.Warn("keeping a PEP node's other side in step failed", "node", node, "jid", owner.String(), "err", err)
			}
		})
	}
}

// proxyNetworks returns the proxies allowed to send a PROXY protocol
// header, or nil when the protocol is off.
func proxyNetworks(c config.C2S) []netip.Prefix {
	if !c.ProxyProtocol {
		return nil
	}
	return config.Prefixes(c.ProxyNetworks)
}

func (s *Server) listen(addr, what string, serve func(net.Listener) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen for %s on %s: %w", what, addr, err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.log.Info("listening", "what", what, "addr", ln.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := serve(ln); err != nil && !errors.Is(err, c2s.ErrServerClosed) {
			s.errOnce.Do(func() { s.err <- err })
		}
	}()
	return nil
}

// Err delivers the first error that stopped a listener.
func (s *Server) Err() <-chan error { return s.err }

// Addrs returns the bound listener addresses, in the order: c2s STARTTLS,
// then direct TLS when enabled.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a []net.Addr
	for _, ln := range s.listeners {
		a = append(a, ln.Addr())
	}
	return a
}

// legacySCRAM tells c2s to withhold SCRAM-SHA-256 while accounts without
// its keys exist ([auth] legacy_scram_sha1 = "auto").
func (s *Server) legacySCRAM() bool {
	return s.cfg.Auth.LegacySCRAMSHA1 == "auto" && s.auth.LegacyAccounts() > 0
}

// Auth is the account service (for tools and tests that add users).
func (s *Server) Auth() *auth.Service { return s.auth }

// Router is the server's router.
func (s *Server) Router() *router.Router { return s.router }

// C2S is the client listener's server (for tests that look at sessions).
func (s *Server) C2S() *c2s.Server { return s.c2s }

// MAM is the message archive, nil when [mam] is off.
func (s *Server) MAM() *mam.Service { return s.mam }

// Caps is the entity capabilities service (what each session supports).
func (s *Server) Caps() *caps.Service { return s.caps }

// PEP is the accounts' PEP service, nil when [pep] is off.
func (s *Server) PEP() *pep.Service { return s.pep }

// DB is the server's storage.
func (s *Server) DB() *storage.DB { return s.db }

// Shutdown stops the listeners, ends every stream with system-shutdown,
// waits for the sessions to finish (or ctx), and closes storage.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	if s.muc != nil {
		s.muc.Shutdown(ctx)
	}
	if s.c2s != nil {
		err = s.c2s.Shutdown(ctx)
	}
	if serr := s.shutdownS2S(ctx); err == nil {
		err = serr
	}
	if cerr := s.shutdownComponents(ctx); err == nil {
		err = cerr
	}
	if herr := s.shutdownHTTP(ctx); err == nil {
		err = herr
	}
	s.wg.Wait()
	if s.offline != nil {
		if oerr := s.offline.Stop(ctx); err == nil {
			err = oerr
		}
	}
	if s.mam != nil {
		if merr := s.mam.Stop(ctx); err == nil {
			err = merr
		}
	}
	s.close()
	return err
}

func (s *Server) close() {
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	if s.comp.ln != nil {
		s.comp.ln.Close()
	}
	for _, ln := range []net.Listener{s.s2s.ln, s.s2s.tlsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	s.closeHTTP()
	if s.shared != nil {
		s.shared.Close()
	}
	if s.offline != nil {
		// Shutdown has stopped it already; after a failed Start no
		// session was ever served, so it stops at once.
		s.offline.Stop(context.Background())
	}
	if s.mam != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.mam.Stop(ctx)
		cancel()
	}
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
}
