package httpupload

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// NS is the XEP-0363 namespace.
const NS = "urn:xmpp:http:upload:0"

// Store keeps slots and the records of uploaded files;
// *storage.HTTPUploads implements it.
type Store interface {
	CreateSlot(ctx context.Context, u storage.Upload) error
	Upload(ctx context.Context, id string) (storage.Upload, error)
	MarkUploaded(ctx context.Context, id, contentType string, at time.Time) error
	Used(ctx context.Context, owner string, now time.Time) (int64, error)
	Releases(ctx context.Context, owner string, now time.Time, maxAge time.Duration, limit int) ([]storage.Release, error)
	Expired(ctx context.Context, filesBefore, slotsBefore time.Time, limit int) ([]storage.Upload, error)
	Delete(ctx context.Context, ids ...string) error
}

// Router is where the service sends its answers; *router.Router is one.
type Router interface {
	Route(ctx context.Context, st *router.Stanza)
}

// Options configure the service ([httpupload] in the configuration).
type Options struct {
	// Domain is the service's domain, e.g. upload.example.org.
	Domain string
	// ServerDomain is the domain whose users are local.
	ServerDomain string
	// AllowRemote lets users of other domains ask for slots.
	AllowRemote bool
	// Dir holds the files; it is created (0750) if missing.
	Dir string
	// SecretFile holds the key that signs upload URLs; it is created
	// (0600, 32 random bytes) if missing.
	SecretFile string
	// PublicURL is the base of the URLs handed out, without a trailing
	// slash: the server's [http] public URL.
	PublicURL string
	// MaxFileSize bounds one file; Quota bounds what one user holds.
	MaxFileSize, Quota int64
	// SlotTimeout is how long a slot accepts its PUT.
	SlotTimeout time.Duration
	// MaxAge is how long a file is served and kept after its upload.
	MaxAge time.Duration
	// SweepInterval is how often old files and expired slots are deleted.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is the XEP-0363 upload service: its XMPP component and its HTTP
// handler.
type Service struct {
	domain    jid.JID          // immutable
	domainStr string           // immutable
	opts      Options          // immutable
	secret    []byte           // immutable
	router    Router           // immutable
	store     Store            // immutable
	log       *slog.Logger     // immutable
	now       func() time.Time // immutable
	seed      maphash.Seed     // immutable; picks an owner's quota lock

	quota [64]sync.Mutex // serialises the quota check and slot creation of one owner

	sweepCtx    context.Context    // ends the sweep
	sweepCancel context.CancelFunc // immutable
	sweepWG     sync.WaitGroup     // the sweep goroutine

	// requests counts the HTTP requests in progress; Add is called with
	// mu held and stopped false, so no Add follows Stop's Wait.
	requests sync.WaitGroup

	mu      sync.Mutex
	busy    map[string]bool // slot ids being uploaded or swept; guarded by mu
	started bool            // guarded by mu
	stopped bool            // Stop was called; guarded by mu
}

// tmpPattern names the temporary files of uploads in progress.
const tmpPattern = ".upload-*.tmp"

// New returns the service. It creates the upload directory and the secret
// when missing, and removes temporary files left by a previous run (no
// upload is in progress before the HTTP listeners serve).
func New(r Router, store Store, opts Options, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := jid.Parse(opts.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("httpupload: service domain %q is not a domain", opts.Domain)
	}
	switch {
	case opts.MaxFileSize < 1, opts.Quota < 1:
		return nil, errors.New("httpupload: MaxFileSize and Quota must be positive")
	case opts.SlotTimeout <= 0, opts.MaxAge <= 0, opts.SweepInterval <= 0:
		return nil, errors.New("httpupload: SlotTimeout, MaxAge and SweepInterval must be positive")
	case opts.PublicURL == "":
		return nil, errors.New("httpupload: no public URL")
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("httpupload: create upload directory: %w", err)
	}
	secret, created, err := loadSecret(opts.SecretFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created the upload signing key", "file", opts.SecretFile)
	}
	stale, _ := filepath.Glob(filepath.Join(opts.Dir, tmpPattern))
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			log.Warn("stale partial upload not removed", "file", f, "err", err)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		domain: d, domainStr: d.String(), opts: opts, secret: secret, router: r, store: store,
		log: log, now: now, seed: maphash.MakeSeed(),
		sweepCtx: ctx, sweepCancel: cancel, busy: map[string]bool{},
	}, nil
}

// Domain is the service's domain.
func (s *Service) Domain() jid.JID { return s.domain }

// Register makes the service the handler of its domain and lists it in
// the server's disco#items.
func (s *Service) Register(r *router.Registry) {
	r.Domain(s.domainStr, s)
	r.Item(router.Item{JID: s.domainStr, Name: "HTTP File Upload"})
}

// Start starts the sweep of old files and expired slots; it runs once at
// once, then every SweepInterval.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.sweepWG.Go(s.sweepLoop)
}

// Stop ends the sweep and waits for it and for the HTTP requests in
// progress (stop the HTTP servers first, so that no new one starts).
// Requests that arrive afterwards get 503. When ctx ends first, Stop
// returns its error; the requests still running clean up after
// themselves when their connections close.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.sweepCancel()
	s.sweepWG.Wait()
	idle := make(chan struct{})
	go func() { s.requests.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("httpupload: stop: %w", ctx.Err())
	}
}

// enter counts an HTTP request in; it returns false after Stop. Call
// s.requests.Done when the request is over.
func (s *Service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.requests.Add(1)
	return true
}

// claim marks slot id busy (an upload or the sweep is at it); it returns
// false when it already was.
func (s *Service) claim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[id] {
		return false
	}
	s.busy[id] = true
	return true
}

// release ends a claim.
func (s *Service) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, id)
}

// quotaLock returns the mutex that serialises owner's slot requests.
func (s *Service) quotaLock(owner string) *sync.Mutex {
	return &s.quota[maphash.String(s.seed, owner)%uint64(len(s.quota))]
}

// path is where the file of slot id lives.
func (s *Service) path(id string) string { return filepath.Join(s.opts.Dir, id) }

// storeTimeout bounds one store operation that must not be cut short by
// a client going away.
const storeTimeout = 10 * time.Second

// storeCtx is the context of a store operation that finishes what a
// request started: not cancelled with the request, but bounded.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}
