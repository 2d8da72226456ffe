// Package blocking implements XEP-0191: Blocking Command (urn:xmpp:blocking).
//
// It registers with the router: the blocklist get and the block and
// unblock sets on behalf of the account (an unblock without items empties
// the list); pipeline hooks that enforce the list — InboundMessage and
// InboundIQ (a stanza from a blocked JID is answered service-unavailable;
// results and errors are dropped), InboundPresence (dropped, whichever of
// the two accounts blocks the other, so that a blocked contact gets no
// broadcast presence), OutboundMessage, OutboundIQ and OutboundPresence (a
// stanza to a blocked JID is refused with not-acceptable and
// <blocked xmlns='urn:xmpp:blocking:errors'/>, §3.5); and OnUnbind (forget
// the resources that fetched the list, to which changes are pushed).
//
// Lists are stored through Store (storage's blocklist table). At Start the
// service learns which accounts have a list; an account's list is read the
// first time a stanza needs it and kept in memory, updated by every change,
// so the stanza path reads no storage after that, and a stanza between
// accounts without a list costs a map lookup at most (one atomic load when
// nobody on the server blocks anyone). This assumes one server per
// database, as offline does.
//
// JIDs match as XEP-0191 §3.6 (XEP-0016 §2.1) says: an item blocks a full
// JID equal to it, or whose bare JID, domain/resource or domain equals it.
// A list holds at most MaxItems JIDs.
package blocking

import (
	"context"
	"encoding/xml"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
)

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// MaxItems bounds the JIDs one account may block.
const MaxItems = 1000

// Store is what blocking needs from storage; *storage.Blocklists
// implements it.
type Store interface {
	Owners(ctx context.Context) ([]string, error)
	List(ctx context.Context, user string) ([]string, error)
	Block(ctx context.Context, user string, jids []string) error
	Unblock(ctx context.Context, user string, jids []string) error
}

// list is one account's block list as cached.
type list struct {
	loaded bool                // jids holds the stored list
	jids   map[string]struct{} // normalised JIDs
}

// Service is the blocking feature.
type Service struct {
	store    Store
	router   *router.Router
	log      *slog.Logger
	storeLog *burstlog.Logger
	pushN    atomic.Uint64

	// owners is len(lists): the stanza path's fast exit when zero.
	owners atomic.Int64

	// change serialises changes to lists, so that storage and the
	// cache see them in one order.
	change sync.Mutex

	// lists maps a bare JID to its list, only for accounts whose list is
	// not empty. The map is replaced, never changed (under change), so
	// that the stanza path reads it without a lock.
	lists atomic.Pointer[map[string]*list]

	mu         sync.RWMutex
	interested map[string][]router.Session // bare JID → sessions that fetched the list; guarded by mu
}

// New returns the blocking service.
func New(store Store, r *router.Router, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, router: r, log: log,
		storeLog:   burstlog.New(log, "blocking: storage failed", time.Minute),
		interested: map[string][]router.Session{}}
	s.lists.Store(&map[string]*list{})
	return s
}

// list returns the cached list of the bare JID, nil when it has none.
func (s *Service) list(bare string) *list { return (*s.lists.Load())[bare] }

// Start learns which accounts have a block list; call it before stanzas
// flow.
func (s *Service) Start(ctx context.Context) error {
	owners, err := s.store.Owners(ctx)
	if err != nil {
		return err
	}
	s.change.Lock()
	defer s.change.Unlock()
	m := make(map[string]*list, len(owners))
	for _, o := range owners {
		m[o] = &list{}
	}
	s.lists.Store(&m)
	s.owners.Store(int64(len(m)))
	return nil
}

// Register hooks blocking into the router. Register it before the roster,
// so that presence from a blocked JID is dropped before the roster sees it.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS)
	r.AccountFeature(NS)
	r.IQFunc(stanza.GetIQ, router.ToSelf, xml.Name{Space: NS, Local: "blocklist"}, s.get)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "block"}, s.block)
	r.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "unblock"}, s.unblock)
	r.InboundMessage(router.PhaseFilter, s.inboundMessage)
	r.OutboundMessage(router.PhaseFilter, s.outboundMessage)
	r.InboundIQ(s.inbound)
	r.OutboundIQ(s.outbound)
	r.InboundPresence(s.inboundPresence)
	r.OutboundPresence(s.outbound)
	r.OnUnbind(s.unbind)
}

// matchKeys are the forms of j an item can block it by (XEP-0016 §2.1):
// the full JID, the bare JID, domain/resource and the domain.
func matchKeys(j jid.JID) [4]string {
	var k [4]string
	k[0] = j.String()
	k[1] = j.Bare().String()
	d := j.Domainpart()
	if r := j.Resourcepart(); r != "" {
		k[2] = d + "/" + r
	}
	k[3] = d
	return k
}

// Blocks reports whether user (a local account) blocks other. A list
// storage failed to read blocks nothing, and the error is returned.
func (s *Service) Blocks(ctx context.Context, user, other jid.JID) (bool, error) {
	if s.owners.Load() == 0 || user.Localpart() == "" {
		return false, nil
	}
	// The key is built again on the slow path: kept local, it does not
	// allocate.
	l := s.list(user.Bare().String())
	loaded := l != nil && l.loaded
	var hit bool
	if loaded {
		hit = matches(l.jids, other)
	}
	if l == nil || loaded {
		return hit, nil
	}
	bare := user.Bare().String()
	jids, err := s.load(ctx, bare)
	if err != nil {
		s.storeLog.Fail(err, "user", bare)
		return false, err
	}
	s.storeLog.OK()
	return matches(jids, other), nil
}

func matches(jids map[string]struct{}, other jid.JID) bool {
	if len(jids) == 0 || other.Equal(jid.JID{}) {
		return false
	}
	for _, k := range matchKeys(other) {
		if _, ok := jids[k]; ok && k != "" {
			return true
		}
	}
	return false
}

// load reads user's list into the cache and returns it.
func (s *Service) load(ctx context.Context, bare string) (map[string]struct{}, error) {
	s.change.Lock()
	defer s.change.Unlock()
	m, err := s.currentLocked(ctx, bare)
	if err != nil {
		return nil, err
	}
	if l := s.list(bare); l != nil && !l.loaded {
		s.setLocked(bare, m) // read from storage: cached from now on
	}
	return m, nil
}

// setLocked replaces the cached list of bare; s.change must be held. The
// map is never modified once cached: readers use it without a lock.
func (s *Service) setLocked(bare string, jids map[string]struct{}) {
	old := *s.lists.Load()
	m := make(map[string]*list, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if len(jids) == 0 {
		delete(m, bare)
	} else {
		m[bare] = &list{loaded: true, jids: jids}
	}
	s.lists.Store(&m)
	s.owners.Store(int64(len(m)))
}

// current returns user's list, reading it if it is not cached.
func (s *Service) current(ctx context.Context, bare string) (map[string]struct{}, error) {
	l := s.list(bare)
	switch {
	case l == nil:
		return nil, nil
	case l.loaded:
		return l.jids, nil
	}
	return s.load(ctx, bare)
}

// blockedEither reports whether the recipient of st blocks its sender,
// or, for presence, whether the sender (a local account) blocks the
// recipient: a blocked contact gets no broadcast presence nor answers to
// probes. Failed to read means not blocked.
func (s *Service) blockedEither(ctx context.Context, st *router.Stanza) bool {
	if s.owners.Load() == 0 || st.From.Bare().Equal(st.To.Bare()) || st.From.Equal(s.router.Domain()) {
		return false // the server itself is never blocked
	}
	if b, _ := s.Blocks(ctx, st.To, st.From); b {
		return true
	}
	// Only presence is checked the other way: the error that answers a
	// stanza from a blocked JID comes from the user and must reach it.
	if st.Kind != router.KindPresence || st.From.Domainpart() != s.router.Domain().Domainpart() {
		return false
	}
	b, _ := s.Blocks(ctx, st.From, st.To)
	return b
}

// inboundMessage answers a message from a blocked JID with
// service-unavailable (§3.6: as if the user did not exist).
func (s *Service) inboundMessage(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	if !s.blockedEither(ctx, m) {
		return m, router.Continue
	}
	s.refuse(ctx, m, router.ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	return nil, router.Handled
}

// inbound answers an IQ from a blocked JID with service-unavailable;
// results and errors are dropped.
func (s *Service) inbound(ctx context.Context, st *router.Stanza) router.Result {
	if !s.blockedEither(ctx, st) {
		return router.Continue
	}
	if st.Type == "get" || st.Type == "set" {
		s.refuse(ctx, st, router.ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	}
	return router.Handled
}

// inboundPresence drops presence between an account and a JID it blocks.
func (s *Service) inboundPresence(ctx context.Context, st *router.Stanza) router.Result {
	if s.blockedEither(ctx, st) {
		return router.Handled
	}
	return router.Continue
}

// outboundMessage refuses a message to a JID the sender blocks.
func (s *Service) outboundMessage(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	if s.outbound(ctx, m) == router.Handled {
		return nil, router.Handled
	}
	return m, router.Continue
}

// outbound refuses a stanza to a JID the sender blocks (§3.5).
func (s *Service) outbound(ctx context.Context, st *router.Stanza) router.Result {
	if s.owners.Load() == 0 || st.To.Equal(jid.JID{}) || st.To.Bare().Equal(st.From.Bare()) || st.To.Equal(s.router.Domain()) {
		return router.Continue
	}
	if b, _ := s.Blocks(ctx, st.From, st.To); !b {
		return router.Continue
	}
	if st.Type != "error" && (st.Kind != router.KindIQ || st.Type == "get" || st.Type == "set") {
		// Straight to the sending session: routed, the error would come
		// from the blocked JID and be dropped.
		sess, ok := s.router.SessionOf(st.From)
		if reply, err := router.Build(st.Kind, "error", st.ID, st.To, st.From, blockedError()); ok && err == nil {
			sess.Deliver(reply.Raw)
		}
	}
	return router.Handled
}

// blockedError is <error type='cancel'><not-acceptable/><blocked/></error>.
func blockedError() xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-stanzas", Local: "not-acceptable"}}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSErrors, Local: "blocked"}}),
	), xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "cancel"}}})
}

// refuse answers st with e.
func (s *Service) refuse(ctx context.Context, st *router.Stanza, e stanza.Error) {
	if reply := router.ErrorReply(st, e); reply != nil {
		s.router.Route(ctx, reply)
	}
}

// get answers the blocklist get (§3.2) and makes the session interested
// in pushes.
func (s *Service) get(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	bare := iq.From.Bare().String()
	jids, err := s.current(ctx, bare)
	if err != nil {
		return nil, err
	}
	if sess, ok := s.router.SessionOf(iq.From); ok {
		s.mu.Lock()
		if !slices.Contains(s.interested[bare], sess) {
			s.interested[bare] = append(s.interested[bare], sess)
		}
		s.mu.Unlock()
	}
	sorted := make([]string, 0, len(jids))
	for j := range jids {
		sorted = append(sorted, j)
	}
	slices.Sort(sorted)
	return items("blocklist", sorted), nil
}

// items is <local xmlns=NS> with an <item jid/> per JID.
func items(local string, jids []string) xml.TokenReader {
	children := make([]xml.TokenReader, 0, len(jids))
	for _, j := range jids {
		children = append(children, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Space: NS, Local: "item"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: j}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: NS, Local: local}})
}

// block adds JIDs to the list (§3.3), pushes the change and sends the
// blocked local contacts unavailable presence from each available
// resource of the user.
func (s *Service) block(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	jids, err := parseItems(iq)
	if err != nil {
		return nil, err
	}
	if len(jids) == 0 {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "a block needs at least one item")
	}
	user := iq.From.Bare()
	bare := user.String()
	s.change.Lock()
	cur, err := s.currentLocked(ctx, bare)
	if err != nil {
		s.change.Unlock()
		return nil, err
	}
	next := make(map[string]struct{}, len(cur)+len(jids))
	for j := range cur {
		next[j] = struct{}{}
	}
	var added []string
	for _, j := range jids {
		if _, ok := next[j]; !ok {
			next[j] = struct{}{}
			added = append(added, j)
		}
	}
	if len(next) > MaxItems {
		s.change.Unlock()
		return nil, router.ErrorText(stanza.Wait, stanza.ResourceConstraint, "a block list holds at most "+strconv.Itoa(MaxItems)+" JIDs")
	}
	if err := s.store.Block(ctx, bare, jids); err != nil {
		s.change.Unlock()
		return nil, err
	}
	// The blocked contacts see the user go away (§3.3) before the list
	// takes effect, which would drop the presence.
	s.unavailableTo(ctx, user, added)
	s.setLocked(bare, next)
	s.change.Unlock()
	s.push(user, "block", jids)
	return nil, nil
}

// unblock removes JIDs from the list, all of them without items (§3.4).
func (s *Service) unblock(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	jids, err := parseItems(iq)
	if err != nil {
		return nil, err
	}
	user := iq.From.Bare()
	bare := user.String()
	s.change.Lock()
	cur, err := s.currentLocked(ctx, bare)
	if err != nil {
		s.change.Unlock()
		return nil, err
	}
	if err := s.store.Unblock(ctx, bare, jids); err != nil {
		s.change.Unlock()
		return nil, err
	}
	next := map[string]struct{}{}
	var freed []string
	for j := range cur {
		if len(jids) > 0 && !slices.Contains(jids, j) {
			next[j] = struct{}{}
		} else {
			freed = append(freed, j)
		}
	}
	s.setLocked(bare, next)
	s.change.Unlock()
	s.push(user, "unblock", jids)
	s.presenceTo(ctx, user, freed)
	return nil, nil
}

// presenceTo lets unblocked local contacts see the user again: the server
// probes the user on each one's behalf, and the roster answers a
// subscriber with the user's current presence and anyone else with
// nothing (as a blocked subscriber was sent unavailable presence, it is
// sent the current one on unblock).
func (s *Service) presenceTo(ctx context.Context, user jid.JID, freed []string) {
	for _, j := range freed {
		from, ok := s.localAccount(j)
		if !ok {
			continue
		}
		if p, err := router.Build(router.KindPresence, "probe", "", from, user, nil); err == nil {
			s.router.Route(ctx, p)
		}
	}
}

// localAccount returns the block list item j as a local account's bare
// JID, or false for a domain, a remote JID (no federation yet) or
// anything unparsable: those have no presence to send.
func (s *Service) localAccount(j string) (jid.JID, bool) {
	a, err := jid.Parse(j)
	if err != nil || a.Localpart() == "" || a.Domainpart() != s.router.Domain().Domainpart() {
		return jid.JID{}, false
	}
	return a.Bare(), true
}

// currentLocked is current with s.change held.
func (s *Service) currentLocked(ctx context.Context, bare string) (map[string]struct{}, error) {
	l := s.list(bare)
	switch {
	case l == nil:
		return nil, nil
	case l.loaded:
		return l.jids, nil
	}
	stored, err := s.store.List(ctx, bare)
	if err != nil {
		return nil, err
	}
	m := make(map[string]struct{}, len(stored))
	for _, j := range stored {
		m[j] = struct{}{}
	}
	return m, nil
}

// unavailableTo sends unavailable presence from each available resource
// of user to the local accounts among jids.
func (s *Service) unavailableTo(ctx context.Context, user jid.JID, jids []string) {
	res := s.router.AvailableResources(user)
	if len(res) == 0 {
		return
	}
	for _, j := range jids {
		to, ok := s.localAccount(j)
		if !ok {
			continue
		}
		if !s.router.Subscribes(ctx, user, to) {
			continue // §3.3: only a contact allowed to see the user's presence
		}
		for _, from := range res {
			if p, err := router.Build(router.KindPresence, "unavailable", "", from, to, nil); err == nil {
				s.router.DeliverToAvailable(ctx, p)
			}
		}
	}
}

// push sends a block or unblock push to the user's interested resources
// (§3.3, §3.4).
func (s *Service) push(user jid.JID, what string, jids []string) {
	s.mu.RLock()
	sessions := slices.Clone(s.interested[user.String()])
	s.mu.RUnlock()
	for _, sess := range sessions {
		id := "block-push-" + strconv.FormatUint(s.pushN.Add(1), 10)
		st, err := router.Build(router.KindIQ, "set", id, user, sess.JID(), items(what, jids))
		if err != nil {
			s.log.Error("blocking: push failed to encode", "err", err)
			return
		}
		sess.Deliver(st.Raw)
	}
}

func (s *Service) unbind(ctx context.Context, sess router.Session) {
	bare := sess.JID().Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.interested[bare]
	if i := slices.Index(list, sess); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.interested, bare)
	} else {
		s.interested[bare] = list
	}
}
