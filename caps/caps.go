// Package caps implements XEP-0115 entity capabilities on the server's
// side: it learns what each local client supports from the caps in its
// presence, for PEP's "+notify" interest (XEP-0163 §4), and it computes
// the server's own caps for its stream features (§6.3).
//
// A client's available broadcast presence carries <c hash node ver/>.
// When the (hash, ver) is in the cache, the session's features are known
// at once; otherwise the server sends disco#info with node='node#ver' to
// the client's full JID (router.Request), recomputes the ver from the
// answer (§5.1, checked as §5.4 says) and, only when it matches, caches
// the feature set by (hash, ver) for every session that announces it
// later. An answer whose hash does not match is neither cached nor used:
// that session has no known features and so no interest. One query per
// ver is in flight at a time; other sessions announcing the same ver wait
// for its answer, and when the asked client fails them (no answer, an
// error, a forged answer) the next of them is asked.
//
// Caps without a hash (the legacy format) or with a hash function this
// server does not verify cannot be checked, so they are never cached: the
// client is asked and its answer counts for that session only (XEP-0115
// §5.4: "do not validate or globally cache"), as ejabberd and Prosody
// also serve legacy clients. A presence without caps leaves the session's
// caps as they were.
//
// Everything is in memory. The cache is bounded (least recently used
// entries go), each session may start only a few queries per minute, and
// at most maxQueries are in flight, so a client announcing random vers
// costs a bounded amount of memory and traffic. A session's state is
// forgotten when it goes unavailable or unbinds.
package caps

import (
	"bytes"
	"container/list"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// NS is the namespace of XEP-0115.
const NS = "http://jabber.org/protocol/caps"

// ServerNode is the node of the server's own caps: the software's URI.
const ServerNode = "https://xmppd.dev"

// notifySuffix marks a feature as interest in a PEP node (XEP-0163 §4).
const notifySuffix = "+notify"

// Query budget of a session: it may start queryBurst queries at once and
// one more every queryRefill. A client changes its caps a few times per
// login at most (a plugin enabled); a cached ver costs no query.
const (
	queryBurst  = 4
	queryRefill = 15 * time.Second
)

// maxQueries bounds the queries in flight at once (the router bounds all
// of the server's requests at 10,000; other features need some).
const maxQueries = 1000

// maxAttempts bounds how many sessions one ver's query is tried on after
// the asked ones failed, so that sessions repeating a ver nobody answers
// for cannot keep the server asking.
const maxAttempts = 4

// Limits on what a presence's caps may hold before they are ignored: a
// sha-512 ver is 88 characters.
const (
	maxVer  = 128
	maxNode = 1024
)

// Options are the service's settings.
type Options struct {
	// QueryTimeout is how long the server waits for a client's disco#info
	// answer (default 30s).
	QueryTimeout time.Duration
	// CacheEntries bounds the verified feature sets kept (default 4096).
	CacheEntries int
}

// Service is the entity capabilities feature.
type Service struct {
	router *router.Router
	log    *slog.Logger
	opts   Options
	now    func() time.Time

	// mu guards everything below. Wants takes it for reading; presence,
	// answers and the session hooks for writing.
	mu       sync.RWMutex
	onKnown  []func(ctx context.Context, full jid.JID)
	sessions map[sessionKey]*session
	cache    lru
	inflight map[capsKey]*query // shared queries, by the ver they verify
	queries  int                // queries in flight, shared or not
}

// sessionKey finds a session by its full JID without building a string:
// every session is at the served domain, and short parts are converted on
// the stack for the lookup.
type sessionKey struct{ local, resource string }

func keyOf(full jid.JID) sessionKey {
	return sessionKey{full.Localpart(), full.Resourcepart()}
}

// capsKey is what a presence's caps name. For caps that cannot be
// verified (hash empty or unsupported) it is only ever compared with the
// same session's next caps.
type capsKey struct{ hash, node, ver string }

// cacheKey is the part of the caps the cache is keyed by: the node is
// not, since a ver is a hash of everything the client supports.
func (k capsKey) cacheKey() capsKey { return capsKey{hash: k.hash, ver: k.ver} }

// verifiable reports whether k's ver can be checked (and so cached).
func (k capsKey) verifiable() bool { return Verifiable(k.hash) }

// entry is a known feature set, shared by every session with that ver.
// It is never changed once made.
type entry struct {
	features []string            // sorted
	notify   map[string]struct{} // PEP nodes of the +notify features
}

func newEntry(features []string) *entry {
	e := &entry{features: slices.Clone(features), notify: map[string]struct{}{}}
	slices.Sort(e.features)
	e.features = slices.Compact(e.features)
	for _, f := range e.features {
		if n, ok := strings.CutSuffix(f, notifySuffix); ok && n != "" {
			e.notify[n] = struct{}{}
		}
	}
	return e
}

// session is the caps state of one bound session that sent caps. All
// fields but sess and full are guarded by Service.mu.
type session struct {
	sess router.Session // immutable
	full jid.JID        // immutable

	caps      capsKey // of its last presence with caps
	known     *entry  // caps' features, nil until known
	waiting   bool    // a query in flight will tell it caps' features
	available bool    // its initial presence went out (OnAvailable ran)
	pending   bool    // known before it was available: OnKnown waits for OnAvailable

	tokens   float64   // query budget
	refilled time.Time // when tokens was last topped up
}

// spend takes one query from the session's budget, if there is one.
func (w *session) spend(now time.Time) bool {
	w.tokens = min(queryBurst, w.tokens+now.Sub(w.refilled).Seconds()/queryRefill.Seconds())
	w.refilled = now
	if w.tokens < 1 {
		return false
	}
	w.tokens--
	return true
}

// query is one disco#info request in flight. Guarded by Service.mu.
type query struct {
	caps     capsKey
	shared   bool              // verifiable: the result is cached and told to every waiter
	waiters  map[*session]bool // sessions waiting for it: true for those asked
	attempts int
}

// New returns the caps service.
func New(r *router.Router, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 30 * time.Second
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 4096
	}
	return &Service{
		router: r, log: log, opts: opts, now: time.Now,
		sessions: map[sessionKey]*session{},
		cache:    newLRU(opts.CacheEntries),
		inflight: map[capsKey]*query{},
	}
}

// Register hooks the service into the router.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS)
	r.BroadcastPresence(s.presence)
	r.OnAvailable(s.available)
	r.OnUnavailable(s.forget)
	r.OnUnbind(s.forget)
}

// OnKnown registers fn, called once a session's caps become known: right
// after its presence when the ver was cached (after its initial presence
// went out, for the first), or when the disco#info answer verified; again
// when a later presence changes the ver. fn must not block (it may run on
// the goroutine of the client that answered, or a timer's).
func (s *Service) OnKnown(fn func(ctx context.Context, full jid.JID)) {
	s.mu.Lock()
	s.onKnown = append(s.onKnown, fn)
	s.mu.Unlock()
}

// Wants reports whether the available session full announced
// node+"+notify" (from verified caps).
func (s *Service) Wants(full jid.JID, node string) bool {
	s.mu.RLock()
	w := s.sessions[keyOf(full)]
	ok := w != nil && w.known != nil && w.full.Equal(full)
	if ok {
		_, ok = w.known.notify[node]
	}
	s.mu.RUnlock()
	return ok
}

// Features returns the verified features of full's caps (nil if unknown),
// sorted.
func (s *Service) Features(full jid.JID) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w := s.sessions[keyOf(full)]
	if w == nil || w.known == nil || !w.full.Equal(full) {
		return nil
	}
	return slices.Clone(w.known.features)
}

// Stats are counts for tests and monitoring.
type Stats struct {
	Sessions int // sessions with caps state
	Cached   int // verified feature sets in the cache
	Queries  int // disco#info queries in flight
}

// Stats returns the current counts.
func (s *Service) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Sessions: len(s.sessions), Cached: s.cache.len(), Queries: s.queries}
}

// presenceCaps returns the caps of an available presence, if it has
// usable ones.
func presenceCaps(st *router.Stanza) (capsKey, bool) {
	if !bytes.Contains(st.Raw, []byte(NS)) {
		return capsKey{}, false // no decoding for a presence without caps
	}
	d := st.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return capsKey{}, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 || t.Name.Space != NS || t.Name.Local != "c" {
				continue
			}
			var k capsKey
			for _, a := range t.Attr {
				if a.Name.Space != "" {
					continue
				}
				switch a.Name.Local {
				case "hash":
					k.hash = a.Value
				case "node":
					k.node = a.Value
				case "ver":
					k.ver = a.Value
				}
			}
			return k, k.ver != "" && len(k.ver) <= maxVer && len(k.node) <= maxNode && len(k.hash) <= 16
		case xml.EndElement:
			depth--
		}
	}
}

// presence is the BroadcastPresence hook: it reads the caps and starts
// what learning them takes. The presence goes on unchanged.
func (s *Service) presence(ctx context.Context, st *router.Stanza) (*router.Stanza, router.Result) {
	c, ok := presenceCaps(st)
	if !ok {
		return st, router.Continue
	}
	s.mu.Lock()
	// Looked up under mu: OnUnbind, which runs after the session left the
	// table, then finds what is added here.
	sess, bound := s.router.SessionOf(st.From)
	if !bound {
		s.mu.Unlock()
		return st, router.Continue
	}
	k := keyOf(st.From)
	w := s.sessions[k]
	if w == nil || w.sess != sess {
		_, avail := s.router.Priority(st.From)
		w = &session{sess: sess, full: st.From, available: avail, tokens: queryBurst, refilled: s.now()}
		s.sessions[k] = w
	}
	if w.caps == c && (w.known != nil || w.waiting) {
		s.mu.Unlock()
		return st, router.Continue // the same caps again
	}
	w.caps, w.known, w.waiting, w.pending = c, nil, false, false
	var fire bool
	var q *query
	if c.verifiable() {
		if e := s.cache.get(c.cacheKey()); e != nil {
			w.known = e
			fire = s.tell(w)
		} else if q = s.inflight[c.cacheKey()]; q != nil {
			if _, ok := q.waiters[w]; !ok {
				q.waiters[w] = false
			}
			w.waiting = true
			q = nil
		} else if q = s.newQuery(w, true); q != nil {
			s.inflight[c.cacheKey()] = q
		}
	} else {
		q = s.newQuery(w, false)
	}
	s.mu.Unlock()
	if fire {
		s.fireKnown(ctx, w.full)
	}
	if q != nil {
		s.ask(ctx, q, w, c.node)
	}
	return st, router.Continue
}

// newQuery makes a query asking w, when w's budget and the server's
// bound allow; called with mu held.
func (s *Service) newQuery(w *session, shared bool) *query {
	if s.queries >= maxQueries || !w.spend(s.now()) {
		s.log.Debug("caps: not asking", "jid", w.full.String(), "ver", w.caps.ver, "queries", s.queries)
		return nil
	}
	s.queries++
	w.waiting = true
	return &query{caps: w.caps, shared: shared, waiters: map[*session]bool{w: true}, attempts: 1}
}

// tell marks w's caps as known and reports whether OnKnown is to run now
// (else it runs from OnAvailable); called with mu held.
func (s *Service) tell(w *session) bool {
	w.waiting = false
	if !w.available {
		w.pending = true
		return false
	}
	return true
}

// current reports whether w is still bound with caps c; called with mu held.
func (s *Service) current(w *session, c capsKey) bool {
	return s.sessions[keyOf(w.full)] == w && w.caps == c
}

// waitsFor reports whether w still waits for q's answer: for a shared
// query, any node with q's hash and ver (they are waiters of one query,
// since the ver alone names the features); else q's very caps.
func (s *Service) waitsFor(w *session, q *query) bool {
	if q.shared {
		return s.sessions[keyOf(w.full)] == w && w.caps.cacheKey() == q.caps.cacheKey()
	}
	return s.current(w, q.caps)
}

func (s *Service) fireKnown(ctx context.Context, full jid.JID) {
	s.mu.RLock()
	fns := s.onKnown // appended to only: this prefix never changes
	s.mu.RUnlock()
	for _, fn := range fns {
		fn(ctx, full)
	}
}

// ask sends q's disco#info to the session asked, to.
func (s *Service) ask(ctx context.Context, q *query, to *session, capsNode string) {
	node := q.caps.ver
	if capsNode != "" {
		node = capsNode + "#" + q.caps.ver
	}
	payload := xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Space: nsDiscoInfo, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}},
	})
	err := s.router.Request(ctx, "get", to.full, payload, s.opts.QueryTimeout, func(ctx context.Context, reply *router.Stanza, err error) {
		s.answered(ctx, q, to, reply, err)
	})
	if err != nil {
		s.answered(ctx, q, to, nil, err)
	}
}

// answered takes the answer (or the failure) of q, asked of to.
func (s *Service) answered(ctx context.Context, q *query, to *session, reply *router.Stanza, err error) {
	var e *entry
	if err == nil {
		e, err = check(q.caps, reply)
	}
	if err != nil {
		// Debug: a client's failure, bounded by its query budget.
		s.log.Debug("caps: no features learnt", "jid", to.full.String(), "hash", q.caps.hash, "ver", q.caps.ver, "err", err)
	}
	var fire []jid.JID
	var next *session
	var nextNode string
	s.mu.Lock()
	s.queries--
	if e != nil {
		if q.shared {
			s.cache.put(q.caps.cacheKey(), e)
		}
		for w := range q.waiters {
			if s.waitsFor(w, q) {
				w.known = e
				if s.tell(w) {
					fire = append(fire, w.full)
				}
			}
		}
	} else {
		// Another session announcing the same ver may answer honestly;
		// those asked stay waiters, since a ver verified by anyone holds
		// for everyone announcing it.
		for w, asked := range q.waiters {
			if q.attempts >= maxAttempts || s.queries >= maxQueries {
				break
			}
			if !s.waitsFor(w, q) {
				delete(q.waiters, w)
				continue
			}
			if !asked && w.spend(s.now()) {
				next = w
				break
			}
		}
		if next != nil {
			q.waiters[next] = true
			q.attempts++
			s.queries++
			nextNode = next.caps.node // its own node: another's may be unknown to it
		} else {
			for w := range q.waiters {
				if s.waitsFor(w, q) {
					w.waiting = false
				}
			}
		}
	}
	if q.shared && next == nil && s.inflight[q.caps.cacheKey()] == q {
		delete(s.inflight, q.caps.cacheKey())
	}
	s.mu.Unlock()
	for _, full := range fire {
		s.fireKnown(ctx, full)
	}
	if next != nil {
		s.ask(ctx, q, next, nextNode)
	}
}

// errForged is an answer whose features do not hash to the ver asked.
var errForged = errors.New("caps: the answer does not hash to the ver")

// check reads a disco#info answer for caps c and returns its features:
// verified when c's hash can be, as they are otherwise.
func check(c capsKey, reply *router.Stanza) (*entry, error) {
	if reply.Type != "result" {
		return nil, errors.New("caps: the client answered with an error")
	}
	info, err := ParseInfo(reply.Decoder())
	if err != nil {
		return nil, err
	}
	if c.verifiable() {
		ver, err := Ver(c.hash, info)
		if err != nil {
			return nil, err
		}
		if ver != c.ver {
			return nil, errForged
		}
	} else if _, err := VerString(info); err != nil {
		return nil, err // ill-formed even if it cannot be verified
	}
	return newEntry(info.Features), nil
}

// available is the OnAvailable hook: caps learnt with the initial
// presence are told now that it went out.
func (s *Service) available(ctx context.Context, sess router.Session) {
	full := sess.JID()
	s.mu.Lock()
	w := s.sessions[keyOf(full)]
	fire := false
	if w != nil && w.sess == sess {
		w.available = true
		fire, w.pending = w.pending, false
	}
	s.mu.Unlock()
	if fire {
		s.fireKnown(ctx, full)
	}
}

// forget is the OnUnavailable and OnUnbind hook.
func (s *Service) forget(ctx context.Context, sess router.Session) {
	k := keyOf(sess.JID())
	s.mu.Lock()
	if w := s.sessions[k]; w != nil && w.sess == sess {
		delete(s.sessions, k)
	}
	s.mu.Unlock()
}

// lru is a bounded cache of verified feature sets, the least recently
// used going first.
type lru struct {
	max int
	m   map[capsKey]*list.Element
	l   list.List // of *lruItem, most recent first
}

type lruItem struct {
	k capsKey
	e *entry
}

func newLRU(max int) lru { return lru{max: max, m: map[capsKey]*list.Element{}} }

func (c *lru) len() int { return len(c.m) }

func (c *lru) get(k capsKey) *entry {
	el := c.m[k]
	if el == nil {
		return nil
	}
	c.l.MoveToFront(el)
	return el.Value.(*lruItem).e
}

func (c *lru) put(k capsKey, e *entry) {
	if el := c.m[k]; el != nil {
		el.Value.(*lruItem).e = e
		c.l.MoveToFront(el)
		return
	}
	c.m[k] = c.l.PushFront(&lruItem{k, e})
	for len(c.m) > c.max {
		old := c.l.Back()
		c.l.Remove(old)
		delete(c.m, old.Value.(*lruItem).k)
	}
}

// ServerVer returns the sha-1 ver of the server's own disco#info (info,
// the <query/> a query without node gets) for its stream features.
func ServerVer(info xml.TokenReader) (string, error) {
	i, err := ParseInfo(info)
	if err != nil {
		return "", err
	}
	return Ver("sha-1", i)
}

// StreamFeature returns the server's caps element for its stream features
// (XEP-0115 §6.3), ver from ServerVer.
func StreamFeature(ver string) []byte {
	b := []byte("<c")
	b = xmlenc.AppendAttr(b, "xmlns", NS)
	b = xmlenc.AppendAttr(b, "hash", "sha-1")
	b = xmlenc.AppendAttr(b, "node", ServerNode)
	b = xmlenc.AppendAttr(b, "ver", ver)
	return append(b, "/>"...)
}
