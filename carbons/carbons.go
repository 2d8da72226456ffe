// Package carbons implements XEP-0280: Message Carbons (urn:xmpp:carbons:2).
//
// A session turns carbons on and off with the enable and disable IQs. A
// message a user's client sends passes the router's outbound pipeline,
// where a copy wrapped in <sent/> and XEP-0297 <forwarded/> goes to each of
// the user's other sessions that enabled carbons; a message delivered to a
// user is copied, wrapped in <received/>, to each carbons-enabled session
// that did not get it (the router's Delivered hook names those that did).
// Which messages are copied is shouldCopy's business (XEP-0280 §6): chat,
// normal with a body, MUC private messages; never groupchat, headline,
// error, nor a message with <private/> or a XEP-0334 <no-copy/> hint. A
// <private/> element is removed from a message before it is delivered to
// its recipient (§7).
//
// It stores nothing: which sessions enabled carbons is kept in memory,
// keyed by router.Session and forgotten on OnUnbind. While no session of
// the server has carbons on, its hooks return after one atomic load.
package carbons

import (
	"context"
	"encoding/xml"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces of XEP-0280 and the ones its copies use.
const (
	NS        = "urn:xmpp:carbons:2"
	NSForward = "urn:xmpp:forward:0" // XEP-0297
	NSHints   = "urn:xmpp:hints"     // XEP-0334
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

// Service is the carbons feature.
type Service struct {
	router *router.Router
	log    *slog.Logger

	// count is the number of sessions with carbons on: the hooks' fast
	// exit when it is zero.
	count atomic.Int64

	// enabled maps a local user's localpart to its sessions with carbons
	// on. The map is replaced, never changed, under mu, so that the
	// message path reads it without a lock: it is read for every message,
	// changed only when a session enables, disables or ends.
	mu      sync.Mutex
	enabled atomic.Pointer[map[string][]router.Session]
}

// New returns the carbons service.
func New(r *router.Router, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{router: r, log: log}
	s.enabled.Store(&map[string][]router.Session{})
	return s
}

// sessions returns the sessions of user (a local account) with carbons on.
// The localpart is the key: every user is at the served domain, and it
// needs no string built.
func (s *Service) sessions(user jid.JID) []router.Session {
	return (*s.enabled.Load())[user.Localpart()]
}

// update replaces user's sessions with f of them; called with mu held.
func (s *Service) update(user jid.JID, f func([]router.Session) []router.Session) {
	old := *s.enabled.Load()
	m := make(map[string][]router.Session, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	k := user.Localpart()
	if list := f(slices.Clone(old[k])); len(list) > 0 {
		m[k] = list
	} else {
		delete(m, k)
	}
	s.enabled.Store(&m)
}

// Register hooks carbons into the router.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS)
	r.AccountFeature(NS)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "enable"}, s.enable)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "disable"}, s.disable)
	r.OutboundMessage(router.PhaseCopy, s.sent)
	r.InboundMessage(router.PhaseRewrite, s.stripPrivate)
	r.Delivered(s.received)
	r.OnUnbind(s.unbind)
}

// Enabled reports whether sess has carbons on.
func (s *Service) Enabled(sess router.Session) bool {
	return slices.Contains(s.sessions(sess.JID()), sess)
}

func (s *Service) enable(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	sess, ok := s.router.SessionOf(iq.From)
	if !ok {
		return nil, nil // the session is gone; nobody reads the answer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.sessions(iq.From), sess) {
		s.update(iq.From, func(l []router.Session) []router.Session { return append(l, sess) })
		s.count.Add(1)
	}
	return nil, nil // enabling twice is no error (§8.1)
}

func (s *Service) disable(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if sess, ok := s.router.SessionOf(iq.From); ok {
		s.forget(sess)
	}
	return nil, nil
}

func (s *Service) unbind(ctx context.Context, sess router.Session) { s.forget(sess) }

func (s *Service) forget(sess router.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user := sess.JID()
	if !slices.Contains(s.sessions(user), sess) {
		return
	}
	s.update(user, func(l []router.Session) []router.Session {
		return slices.DeleteFunc(l, func(x router.Session) bool { return x == sess })
	})
	s.count.Add(-1)
}

// targets returns the sessions of user with carbons on, less those skip
// says to leave out.
func (s *Service) targets(user jid.JID, skip func(router.Session) bool) []router.Session {
	var out []router.Session
	for _, sess := range s.sessions(user) {
		if !skip(sess) {
			out = append(out, sess)
		}
	}
	return out
}

// sent copies a message a local client sends to the sender's other
// sessions with carbons on (§6, "Sending Messages"), whether or not the
// sender has carbons on itself.
func (s *Service) sent(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	if s.count.Load() == 0 {
		return m, router.Continue
	}
	to := s.targets(m.From, func(sess router.Session) bool { return sess.JID().Equal(m.From) })
	if len(to) == 0 {
		return m, router.Continue
	}
	if ok, why := shouldCopy(m); !ok {
		s.log.Debug("carbons: not copying sent message", "from", m.From.String(), "reason", why)
		return m, router.Continue
	}
	s.copyTo(to, "sent", m)
	return m, router.Continue
}

// received copies a message delivered to a local account to the
// account's sessions with carbons on that did not get it (§5).
func (s *Service) received(ctx context.Context, d router.Delivery) {
	if s.count.Load() == 0 || d.Message.To.Localpart() == "" {
		return
	}
	to := s.targets(d.Message.To, d.Sessions.Contains)
	if len(to) == 0 {
		return
	}
	// The eligibility of the message as it arrived: <private/> is gone
	// from what the sessions got.
	if ok, why := shouldCopy(d.Arrived); !ok {
		s.log.Debug("carbons: not copying received message", "to", d.Message.To.String(), "reason", why)
		return
	}
	s.copyTo(to, "received", d.Message)
}

// copyTo delivers m wrapped in a <sent/> or <received/> (dir) to each
// session, from the user's bare JID to the session's full JID.
func (s *Service) copyTo(sessions []router.Session, dir string, m *router.Stanza) {
	inner := xmlenc.AppendDeclaringNS(nil, m.Raw, stanza.NSClient)
	for _, sess := range sessions {
		full := sess.JID()
		sess.Deliver(wrap(m.Type, full.Bare(), full, dir, inner))
	}
}

// stripPrivate removes <private/> from a message before it is delivered
// to its recipient (§7: the receiving server SHOULD).
func (s *Service) stripPrivate(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	raw, ok := stripPrivate(m.Raw)
	if !ok {
		return m, router.Continue
	}
	cp := *m
	cp.Raw = raw
	return &cp, router.Continue
}
