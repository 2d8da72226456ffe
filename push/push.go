// Package push implements XEP-0357: Push Notifications (urn:xmpp:push:0),
// the server's side: a mobile client (Conversations, Monal, Siskin)
// registers its app server, and while the client's connection is gone the
// server tells the app server of each message, which wakes the phone
// through Google's or Apple's push service.
//
// It registers with the router: urn:xmpp:push:0 in every account's
// disco#info (§3); the enable and disable sets on behalf of the account
// (§5, §6); a Delivered hook (a message taken only by sessions waiting for
// a resumption, XEP-0198), a Kept hook (a message stored offline for an
// account without a session) and an OnDetach hook (the messages a session
// had not acknowledged when it lost its connection), which send the
// notifications (§7); OnAvailable, which starts the count of waiting
// messages again; OnUnbind, which drops a session's watch. A message that
// connected stream-managed sessions took is watched: not acknowledged
// within Options.AckTimeout, it is notified too (ack.go).
//
// A notification is a pubsub publish to the registration's node at the
// app server, sent with Router.RequestFrom from the user's bare JID (as
// §7's example and Prosody do), carrying the urn:xmpp:push:summary form
// (message-count, last-message-sender and, with Options.IncludeBody,
// last-message-body) and the publish-options the client gave. Only
// messages that matter send one, as Prosody's mod_cloud_notify decides:
// a body, an encrypted payload (OMEMO, PGP, OX) or a call proposal
// (XEP-0353); not chat states, receipts or group chat subjects. One
// notification per message, not rate-limited: Conversations expects a wake
// per message, and neither the XEP nor Prosody limits them.
//
// An app server that answers with an error of type cancel, auth or modify
// has its registration removed at once (the app server no longer knows
// the device; XEP-0357 leaves disabling it to the server). An error of
// type wait, a remote-server-* error (the app server's domain could not be
// reached) or no answer within Options.Timeout counts as a failure;
// MaxFailures in a row remove the registration, and any result starts the
// count again.
//
// Registrations are stored through Store (storage's push_registrations).
// At Start the service learns which accounts have one; an account's
// registrations are read the first time a message needs them and kept in
// memory, updated by every change, so that a message for an account
// without one costs one atomic load (none registered on the server) or a
// map lookup. This assumes one server per database, as offline does.
package push

import (
	"context"
	"encoding/xml"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Namespaces of XEP-0357 and of the XEP-0060 parts it uses.
const (
	NS                 = "urn:xmpp:push:0"
	NSSummary          = "urn:xmpp:push:summary"
	NSPubsub           = "http://jabber.org/protocol/pubsub"
	NSPublishOptions   = "http://jabber.org/protocol/pubsub#publish-options"
	nsData             = "jabber:x:data"
	maxFormBytes       = 4096 // a publish-options form as stored
	defaultTimeout     = 30 * time.Second
	defaultMaxFailures = 5
)

// Store is what push needs from storage; *storage.Push implements it.
type Store interface {
	Owners(ctx context.Context) ([]string, error)
	List(ctx context.Context, user string) ([]storage.PushRegistration, error)
	Enable(ctx context.Context, r storage.PushRegistration, max int) ([]storage.PushRegistration, error)
	Disable(ctx context.Context, user, service, node string) (int, error)
}

var _ Store = (*storage.Push)(nil)

// Options are the service's settings ([push]).
type Options struct {
	// IncludeBody puts the message's body into the summary.
	IncludeBody bool
	// MaxRegistrations bounds one account's registrations (0: 5); the
	// oldest goes when one more is enabled.
	MaxRegistrations int
	// Timeout is how long an app server has to answer (0: 30s).
	Timeout time.Duration
	// MaxFailures is how many timeouts or wait errors in a row remove a
	// registration (0: 5).
	MaxFailures int
	// AckTimeout is how long a connected stream-managed session has to
	// acknowledge a message that matters before the app server is told
	// (a phone asleep behind a half-open connection); 0 never tells.
	AckTimeout time.Duration
}

// key names one registration of an account.
type key struct{ service, node string }

// account is what the service keeps of an account with registrations.
// Guarded by Service.mu but for pending.
type account struct {
	pending  atomic.Int64               // messages notified since a session last took one
	loaded   bool                       // regs holds what is stored
	regs     []storage.PushRegistration // oldest first
	failures map[key]int                // timeouts and wait errors in a row
	// ackNotified holds the sessions whose late acknowledgement was
	// notified (watchAck), so that their detach does not notify the same
	// messages again.
	ackNotified map[router.Session]uint32
}

// Service is the push notification feature.
type Service struct {
	store    Store
	router   *router.Router
	opts     Options
	log      *slog.Logger
	storeLog *burstlog.Logger

	// owners is len(accounts): the message path's fast exit when zero.
	owners atomic.Int64

	// change serialises changes to registrations, so that storage and the
	// cache see them in one order.
	change sync.Mutex

	mu       sync.RWMutex
	accounts map[string]*account // bare JID → its registrations; only accounts that have one

	watchMu sync.Mutex
	watches map[router.Session]*watch // guarded by watchMu
}

// New returns the push service.
func New(store Store, r *router.Router, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRegistrations <= 0 {
		opts.MaxRegistrations = 5
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = defaultMaxFailures
	}
	return &Service{store: store, router: r, opts: opts, log: log,
		storeLog: burstlog.New(log, "push: storage failed", time.Minute),
		accounts: map[string]*account{}, watches: map[router.Session]*watch{}}
}

// Start learns which accounts have registrations; call it before stanzas
// flow.
func (s *Service) Start(ctx context.Context) error {
	owners, err := s.store.Owners(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range owners {
		s.accounts[o] = &account{}
	}
	s.owners.Store(int64(len(s.accounts)))
	return nil
}

// Register hooks push into the router.
func (s *Service) Register(r *router.Registry) {
	r.AccountFeature(NS)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "enable"}, s.enable)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "disable"}, s.disable)
	r.Delivered(s.delivered)
	r.Kept(s.kept)
	r.OnDetach(s.detached)
	r.OnAvailable(s.available)
	r.OnUnbind(s.forgetWatch)
}

// --- enable and disable (§5, §6) -------------------------------------------

// request is an enable or disable as parsed.
type request struct {
	service jid.JID
	node    string
	form    string // publish-options as stored; enable only
}

func badRequest(text string) error {
	return router.ErrorText(stanza.Modify, stanza.BadRequest, text)
}

// parseRequest reads the enable or disable element of iq.
func parseRequest(iq *router.Stanza) (request, error) {
	d := iq.Decoder()
	var req request
	var rawJID string
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return request{}, badRequest("malformed payload")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				for _, a := range t.Attr {
					switch {
					case a.Name.Space != "":
					case a.Name.Local == "jid":
						rawJID = a.Value
					case a.Name.Local == "node":
						req.node = a.Value
					}
				}
			case depth == 3 && t.Name == xml.Name{Space: nsData, Local: "x"} && iq.Payload.Local == "enable":
				if req.form != "" {
					return request{}, badRequest("more than one publish-options form")
				}
				f, err := readForm(d, t)
				if err != nil {
					return request{}, err
				}
				req.form = f
				depth--
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				if rawJID == "" {
					return request{}, badRequest("the app server's jid is missing")
				}
				j, err := jid.Parse(rawJID)
				if err != nil {
					return request{}, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "the app server's jid is malformed")
				}
				req.service = j
				return req, nil
			}
		}
	}
}

// formField is one field of a data form as stored.
type formField struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr"`
	Values []string `xml:"value"`
}

// readForm reads the publish-options form (start already read) and
// returns it serialised again, only its fields kept: XEP-0357 §5 has the
// server send it with every publish (Conversations' app server checks its
// secret).
func readForm(d *xml.Decoder, start xml.StartElement) (string, error) {
	var f struct {
		Type   string      `xml:"type,attr"`
		Fields []formField `xml:"field"`
	}
	if err := d.DecodeElement(&f, &start); err != nil {
		return "", badRequest("malformed publish-options form")
	}
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'>")
	formType := ""
	for _, fl := range f.Fields {
		if fl.Var == "" {
			continue
		}
		if fl.Var == "FORM_TYPE" && len(fl.Values) > 0 {
			formType = fl.Values[0]
		}
		b.WriteString("<field var='")
		escape(&b, fl.Var)
		if fl.Type != "" {
			b.WriteString("' type='")
			escape(&b, fl.Type)
		}
		b.WriteString("'>")
		for _, v := range fl.Values {
			b.WriteString("<value>")
			escape(&b, v)
			b.WriteString("</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	if formType != NSPublishOptions {
		return "", badRequest("the form's FORM_TYPE must be " + NSPublishOptions)
	}
	if b.Len() > maxFormBytes {
		return "", router.ErrorText(stanza.Modify, stanza.NotAcceptable, "the publish-options form is too big")
	}
	return b.String(), nil
}

// escape writes v escaped for text and single-quoted attributes.
func escape(b *strings.Builder, v string) {
	for _, r := range v {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteRune(r)
		}
	}
}

func (s *Service) enable(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parseRequest(iq)
	if err != nil {
		return nil, err
	}
	if req.node == "" {
		return nil, badRequest("the node is missing")
	}
	if req.service.Equal(iq.From.Bare()) {
		// The publish would go to the account's own PEP service.
		return nil, badRequest("the app server cannot be the account itself")
	}
	user := iq.From.Bare().String()
	reg := storage.PushRegistration{Account: user, Service: req.service.String(), Node: req.node, Options: req.form, Created: time.Now()}
	s.change.Lock()
	defer s.change.Unlock()
	removed, err := s.store.Enable(ctx, reg, s.opts.MaxRegistrations)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	a := s.accounts[user]
	if a == nil {
		a = &account{}
		s.accounts[user] = a
		s.owners.Store(int64(len(s.accounts)))
	}
	if a.loaded {
		a.regs = without(a.regs, key{reg.Service, reg.Node})
		for _, r := range removed {
			a.regs = without(a.regs, key{r.Service, r.Node})
		}
		a.regs = append(a.regs, reg)
	}
	s.mu.Unlock()
	s.log.Debug("push enabled", "user", user, "service", reg.Service, "removed", len(removed))
	return nil, nil
}

func (s *Service) disable(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parseRequest(iq)
	if err != nil {
		return nil, err
	}
	user := iq.From.Bare().String()
	s.change.Lock()
	defer s.change.Unlock()
	if _, err := s.store.Disable(ctx, user, req.service.String(), req.node); err != nil {
		return nil, err
	}
	s.forgetLocked(user, req.service.String(), req.node)
	s.log.Debug("push disabled", "user", user, "service", req.service.String())
	return nil, nil
}

// forgetLocked drops registrations from the cache as Store.Disable drops
// them from storage (node "": all of service's). Called with change held.
func (s *Service) forgetLocked(user, service, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[user]
	if a == nil {
		return
	}
	if !a.loaded {
		// Not read yet: storage tells on first need. Stale entries in
		// failures are harmless.
		return
	}
	kept := a.regs[:0]
	for _, r := range a.regs {
		if r.Service == service && (node == "" || r.Node == node) {
			delete(a.failures, key{r.Service, r.Node})
			continue
		}
		kept = append(kept, r)
	}
	a.regs = kept
	if len(a.regs) == 0 {
		delete(s.accounts, user)
		s.owners.Store(int64(len(s.accounts)))
	}
}

func without(regs []storage.PushRegistration, k key) []storage.PushRegistration {
	out := regs[:0]
	for _, r := range regs {
		if r.Service != k.service || r.Node != k.node {
			out = append(out, r)
		}
	}
	return out
}

// --- when to notify (§7) ----------------------------------------------------

// delivered sends notifications for a message that only sessions waiting
// for a resumption took. A message a connected session took starts the
// count of waiting messages again; when all the connected sessions that
// took it have stream management on, their acknowledgement is watched
// (watchAck).
func (s *Service) delivered(ctx context.Context, d router.Delivery) {
	if s.owners.Load() == 0 || d.Sessions.Len() == 0 {
		return // none registered, or it went the undeliverable path (kept)
	}
	// The key is built again on the slow path: kept local, it does not
	// allocate.
	a := s.lookup(d.Message.To.Bare().String())
	if a == nil {
		return
	}
	attached := 0
	for i := range d.Sessions.Len() {
		if !router.Detached(d.Sessions.At(i)) {
			attached++
		}
	}
	if attached == 0 {
		s.notify(ctx, d.Message.To.Bare().String(), d.Message)
		return
	}
	if a.pending.Load() != 0 {
		a.pending.Store(0)
	}
	if s.opts.AckTimeout <= 0 {
		return
	}
	for i := range d.Sessions.Len() {
		sess := d.Sessions.At(i)
		if router.Detached(sess) {
			continue
		}
		ack, ok := sess.(router.Acknowledger)
		if !ok {
			return
		}
		if _, _, on := ack.AckState(); !on {
			return // a client without stream management: not a phone that sleeps
		}
	}
	sum := inspect(d.Message)
	if !sum.important {
		return
	}
	user := d.Message.To.Bare().String()
	for i := range d.Sessions.Len() {
		sess := d.Sessions.At(i)
		if !router.Detached(sess) {
			s.watchAck(user, sess, sess.(router.Acknowledger), sum)
		}
	}
}

// detached sends one notification for the messages a session had not
// acknowledged when its connection was lost (a phone gone to sleep with
// the connection half-open, found out by the keepalive), when no other
// session of the account is connected: they may never have reached the
// phone. The count goes up by all of them; the summary names the last.
func (s *Service) detached(ctx context.Context, sess router.Session, unacked []*router.Stanza) {
	if s.owners.Load() == 0 || len(unacked) == 0 {
		return
	}
	bare := sess.JID().Bare()
	user := bare.String()
	if s.lookup(user) == nil {
		return
	}
	// What a late acknowledgement notified is not notified again: only
	// what was watched since.
	s.watchMu.Lock()
	w := s.watches[sess]
	if w != nil {
		w.timer.Stop()
		delete(s.watches, sess)
	}
	s.watchMu.Unlock()
	notified := false
	s.mu.Lock()
	if a := s.accounts[user]; a != nil {
		_, notified = a.ackNotified[sess]
		delete(a.ackNotified, sess)
	}
	s.mu.Unlock()
	for _, j := range s.router.AvailableResources(bare) {
		if other, ok := s.router.SessionOf(j); ok && other != sess && !router.Detached(other) {
			return
		}
	}
	if notified {
		if w != nil {
			s.send(ctx, user, w.last, w.count)
		}
		return
	}
	var last summary
	n := 0
	for _, m := range unacked {
		if sum := inspect(m); sum.important {
			last = sum
			n++
		}
	}
	if n > 0 {
		s.send(ctx, user, last, n)
	}
}

// kept sends notifications for a message stored offline.
func (s *Service) kept(ctx context.Context, m *router.Stanza) {
	if s.owners.Load() == 0 {
		return
	}
	s.notify(ctx, m.To.Bare().String(), m)
}

// available starts the count of waiting messages again: the user is back.
func (s *Service) available(ctx context.Context, sess router.Session) {
	if s.owners.Load() == 0 {
		return
	}
	if a := s.lookup(sess.JID().Bare().String()); a != nil {
		a.pending.Store(0)
	}
}

// lookup returns what the service keeps of user, nil when user has no
// registration: a read lock, so that messages to different accounts do
// not wait for one another.
func (s *Service) lookup(user string) *account {
	s.mu.RLock()
	a := s.accounts[user]
	s.mu.RUnlock()
	return a
}
