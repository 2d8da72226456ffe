// Package roster implements rosters and presence subscriptions: RFC 6121
// §2 (roster management), §3 and Appendix A (the subscription state
// machine), §4 (presence broadcast and probes, through router hooks) and
// XEP-0237 (roster versioning).
//
// It registers with the router: jabber:iq:roster get and set on behalf of
// the account; an OutboundPresence hook that takes the subscription
// presence a user sends; an InboundPresence hook that takes subscription
// presence and probes addressed to a local user; the Subscribers function
// that tells the router who receives a user's broadcast presence; and
// OnAvailable (probes, redelivery of pending requests) and OnUnbind
// (forget interested resources). Every change is committed to storage
// before it is pushed to the user's interested resources (those that
// fetched the roster). What presence handling reads (subscribers,
// subscriptions, pending requests) is cached per online account and
// invalidated by every write (cache.go).
//
// Limits: max_items rows per user (visible items and pending requests);
// item names up to 1023 bytes, group names up to 1023 bytes, at most 64
// groups per item. Contacts on other servers work like local ones: the
// router routes subscription presence and probes to them through its
// remote route (federation), and theirs arrive through the same inbound
// hook.
package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// NS is the roster namespace.
const NS = "jabber:iq:roster"

// Limits on what a client may store.
const (
	maxNameBytes  = 1023
	maxGroupBytes = 1023
	maxGroups     = 64
)

// Store is what the roster needs from storage; *storage.Rosters
// implements it. Who receives and whom to probe come from All through
// the summary cache (cache.go).
type Store interface {
	Items(ctx context.Context, user string) ([]storage.RosterItem, int64, error)
	Get(ctx context.Context, user, contact string) (storage.RosterItem, bool, error)
	Put(ctx context.Context, user string, it storage.RosterItem, bump bool) (int64, error)
	Delete(ctx context.Context, user, contact string) (int64, error)
	Count(ctx context.Context, user string) (int, error)
	All(ctx context.Context, user string) ([]storage.RosterItem, error)
}

// Service is the roster feature.
type Service struct {
	store    Store
	router   *router.Router
	log      *slog.Logger
	maxItems int
	// storeLog logs storage failures of presence handling once per
	// burst: an outage fails every presence stanza.
	storeLog *burstlog.Logger

	// locks serialise the state changes of one account, so that two
	// subscription stanzas for the same pair cannot interleave. cache
	// holds the summaries of online accounts (cache.go); both are indexed
	// by stripe.
	seed  maphash.Seed
	locks [stripes]sync.Mutex
	cache [stripes]cacheShard

	mu         sync.Mutex
	interested map[string]map[string]jid.JID // bare → resource → full JID; guarded by mu

	shared func() SharedView // nil: no shared groups (shared.go)
}

// New returns the roster service; maxItems bounds each roster.
func New(store Store, r *router.Router, maxItems int, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, router: r, log: log, maxItems: maxItems, seed: maphash.MakeSeed(),
		interested: map[string]map[string]jid.JID{},
		storeLog:   burstlog.New(log, "roster: storage failed", time.Minute)}
	for i := range s.cache {
		s.cache[i].m = map[string]*summary{}
	}
	return s
}

// Register hooks the roster into the router.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS) // not required by RFC 6121, but lets clients see it
	q := xml.Name{Space: NS, Local: "query"}
	r.IQFunc(stanza.GetIQ, router.ToSelf, q, s.get)
	r.IQFunc(stanza.SetIQ, router.ToSelf, q, s.set)
	r.OutboundPresence(s.outbound)
	r.InboundPresence(s.inbound)
	r.Subscribers(s.subscribers)
	r.InRoster(s.inRoster)
	r.OnAvailable(s.available)
	r.OnUnbind(s.unbind)
}

// StreamFeatures names the stream features the roster adds: roster
// versioning (XEP-0237 §2.1) and pre-approval (RFC 6121 §3.4).
var StreamFeatures = []xml.Name{
	{Space: "urn:xmpp:features:rosterver", Local: "ver"},
	{Space: "urn:xmpp:features:pre-approval", Local: "sub"},
}

// stripes is the number of account locks and cache shards.
const stripes = 64

// stripe is the index of the lock and the cache shard of the account
// user (a bare JID).
func (s *Service) stripe(user string) uint64 {
	return maphash.String(s.seed, user) % stripes
}

func (s *Service) lock(user jid.JID) func() {
	m := &s.locks[s.stripe(user.String())]
	m.Lock()
	return m.Unlock
}

// get answers a roster get (RFC 6121 §2.1.3, XEP-0237 §2.3).
func (s *Service) get(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	ver, hasVer, err := requestedVersion(iq)
	if err != nil {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed roster query")
	}
	user := iq.From.Bare()
	items, cur, err := s.store.Items(ctx, user.String())
	if err != nil {
		return nil, err
	}
	s.setInterested(iq.From)
	sv := s.sharedView()
	items = withShared(sv, user.String(), items)
	curVer := version(sv, cur)
	if hasVer && ver == curVer {
		return nil, nil // XEP-0237 §2.4: nothing changed, empty result
	}
	children := make([]xml.TokenReader, 0, len(items))
	for _, it := range items {
		children = append(children, itemXML(it, false))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{
		Name: xml.Name{Space: NS, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "ver"}, Value: curVer}},
	}), nil
}

// requestedVersion reads the ver attribute of the query.
func requestedVersion(iq *router.Stanza) (string, bool, error) {
	d := iq.Decoder()
	for depth := 0; ; {
		tok, err := d.Token()
		if err != nil {
			return "", false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				for _, a := range t.Attr {
					if a.Name.Local == "ver" && a.Name.Space == "" {
						return a.Value, true, nil
					}
				}
				return "", false, nil
			}
		case xml.EndElement:
			depth--
		}
	}
}

// itemXML serialises an item; remove gives subscription='remove'.
func itemXML(it storage.RosterItem, remove bool) xml.TokenReader {
	attrs := []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: it.Contact}}
	if it.Name != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: it.Name})
	}
	sub := it.Subscription
	if sub == "" {
		sub = "none"
	}
	if remove {
		sub = "remove"
	}
	attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "subscription"}, Value: sub})
	if it.Ask && !remove {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "ask"}, Value: "subscribe"})
	}
	if it.Approved && !remove {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "approved"}, Value: "true"})
	}
	var groups []xml.TokenReader
	if !remove {
		for _, g := range it.Groups {
			groups = append(groups, xmlstream.Wrap(xmlstream.Token(xml.CharData(g)), xml.StartElement{Name: xml.Name{Space: NS, Local: "group"}}))
		}
	}
	return xmlstream.Wrap(xmlstream.MultiReader(groups...), xml.StartElement{Name: xml.Name{Space: NS, Local: "item"}, Attr: attrs})
}

// setItem is the item of a roster set as the client sent it.
type setItem struct {
	JID          string   `xml:"jid,attr"`
	Name         *string  `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Groups       []string `xml:"group"`
}

// set handles a roster set: add, update or remove one item (RFC 6121
// §2.3–§2.5).
func (s *Service) set(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	var q struct {
		Items []setItem `xml:"jabber:iq:roster item"`
	}
	d := iq.Decoder()
	var payload xml.StartElement
	for depth := 0; depth < 2; {
		tok, err := d.Token()
		if err != nil {
			return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed roster set")
		}
		if t, ok := tok.(xml.StartElement); ok {
			depth++
			payload = t
		}
	}
	if err := d.DecodeElement(&q, &payload); err != nil {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed roster set")
	}
	if len(q.Items) != 1 {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "a roster set carries exactly one item")
	}
	in := q.Items[0]
	user := iq.From.Bare()
	contact, err := jid.Parse(in.JID)
	if err != nil || in.JID == "" {
		return nil, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "the item's jid is not a valid JID")
	}
	contact = contact.Bare()
	if contact.Equal(user) {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "you cannot add yourself to your roster")
	}
	if in.Subscription == "remove" {
		return nil, s.remove(ctx, user, contact)
	}
	// Any other subscription value is ignored (RFC 6121 §2.1.2.5).
	if in.Name != nil && len(*in.Name) > maxNameBytes {
		return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "the item name is too long")
	}
	if len(in.Groups) > maxGroups {
		return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "too many groups")
	}
	groups := slices.Clone(in.Groups)
	for _, g := range groups {
		switch {
		case g == "":
			return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "a group name cannot be empty")
		case len(g) > maxGroupBytes:
			return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "a group name is too long")
		}
	}
	slices.Sort(groups)
	if len(slices.Compact(slices.Clone(groups))) != len(groups) {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "the same group is named twice")
	}

	defer s.lock(user)()
	it, ok, err := s.store.Get(ctx, user.String(), contact.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.checkRoom(ctx, user); err != nil {
			return nil, err
		}
		it = storage.RosterItem{Contact: contact.String(), Subscription: "none"}
	}
	it.Visible = true
	if in.Name != nil {
		it.Name = *in.Name
	}
	it.Groups = groups
	ver, err := s.put(ctx, user, it, true)
	if err != nil {
		return nil, err
	}
	s.push(ctx, user, it, false, ver)
	return nil, nil
}

// checkRoom refuses a new row when the roster is full.
func (s *Service) checkRoom(ctx context.Context, user jid.JID) error {
	if s.maxItems <= 0 {
		return nil
	}
	n, err := s.store.Count(ctx, user.String())
	if err != nil {
		return err
	}
	if n >= s.maxItems {
		return router.ErrorText(stanza.Cancel, stanza.NotAllowed, "your roster is full ("+strconv.Itoa(s.maxItems)+" items)")
	}
	return nil
}

// remove deletes an item (RFC 6121 §2.5.3): it cancels the subscriptions
// both ways first, so the contact's side ends in a consistent state.
func (s *Service) remove(ctx context.Context, user, contact jid.JID) error {
	unlock := s.lock(user)
	it, ok, err := s.store.Get(ctx, user.String(), contact.String())
	if err != nil {
		unlock()
		return err
	}
	if err := sharedRemove(s.sharedView(), user.String(), contact.String()); err != nil {
		unlock()
		return err
	}
	if !ok || !it.Visible {
		unlock()
		return router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such roster item")
	}
	ver, err := s.del(ctx, user, contact.String())
	if err != nil {
		unlock()
		return err
	}
	s.push(ctx, user, it, true, ver)
	unlock()
	// Then tell the contact, as if the user had sent the presence; but
	// not that it lost a half a shared group still gives it (the contact
	// still sees the user, and gets the user's presence).
	_, _, sharedFrom := sharedHalves(s.sharedView(), user.String(), contact.String())
	if it.Subscription == "to" || it.Subscription == "both" || it.Ask {
		s.sendSubscription(ctx, user, contact, "unsubscribe")
	}
	if (it.Subscription == "from" || it.Subscription == "both" || it.PendingIn) && !sharedFrom {
		s.sendSubscription(ctx, user, contact, "unsubscribed")
	}
	if hasFrom(it.Subscription) && !sharedFrom {
		s.sendUnavailableTo(ctx, user, contact) // as for unsubscribed (§3.2.2)
	}
	return nil
}

// sendSubscription routes subscription presence of type typ from user's
// bare JID to contact, through the inbound processing of the contact's
// server (RFC 6121 §3: the server stamps the bare JID).
func (s *Service) sendSubscription(ctx context.Context, user, contact jid.JID, typ string) {
	st, err := router.Build(router.KindPresence, typ, "", user, contact, nil)
	if err != nil {
		return
	}
	s.router.Route(ctx, st)
}

// push sends a roster push with the changed item to every interested
// resource of user (RFC 6121 §2.1.6).
func (s *Service) push(ctx context.Context, user jid.JID, it storage.RosterItem, remove bool, ver int64) {
	sv := s.sharedView()
	if sv != nil {
		// What the roster shows: a removed item a shared group keeps
		// is pushed as the group has it.
		if remove {
			it = storage.RosterItem{Contact: it.Contact, Subscription: "none"}
		}
		it = overlay(sv, user.String(), it)
		remove = remove && !it.Visible
	}
	v := version(sv, ver)
	for _, to := range s.interestedOf(user) {
		q := xmlstream.Wrap(itemXML(it, remove), xml.StartElement{
			Name: xml.Name{Space: NS, Local: "query"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "ver"}, Value: v}},
		})
		st, err := router.Build(router.KindIQ, "set", "push-"+v, jid.JID{}, to, q)
		if err != nil {
			s.log.Error("roster push failed to encode", "err", err)
			continue
		}
		st.From = user // errors to the push come back to the account, not to a bare server
		s.router.Route(ctx, st)
	}
}

func (s *Service) setInterested(full jid.JID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bare := full.Bare().String()
	m := s.interested[bare]
	if m == nil {
		m = map[string]jid.JID{}
		s.interested[bare] = m
	}
	m[full.Resourcepart()] = full
}

func (s *Service) interestedOf(user jid.JID) []jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jid.JID
	for _, j := range s.interested[user.String()] {
		out = append(out, j)
	}
	return out
}

// unbind forgets a session's interest when its stream ends, and the
// account's summary when no available resource is left. The router calls
// it after removing the session and sending its unavailable presence, so
// that last broadcast still found the summary.
func (s *Service) unbind(_ context.Context, sess router.Session) {
	full := sess.JID()
	bare := full.Bare()
	s.mu.Lock()
	if m := s.interested[bare.String()]; m != nil {
		if j, ok := m[full.Resourcepart()]; ok && j.Equal(full) {
			delete(m, full.Resourcepart())
		}
		if len(m) == 0 {
			delete(s.interested, bare.String())
		}
	}
	s.mu.Unlock()
	if !s.online(bare) {
		s.dropSummary(bare.String(), nil)
	}
}

// subscribers names who receives a user's broadcast presence. The slice
// is shared with the cache: the router only reads it.
func (s *Service) subscribers(ctx context.Context, user jid.JID) []jid.JID {
	sum, err := s.summary(ctx, user)
	if s.failed(err, "subscribers", user) {
		return nil
	}
	return s.withEverybody(user, sum)
}

// withEverybody adds to sum's subscribers, for a user in a shared group
// shown to everybody, every account online now (the others get the
// user's presence by probing when they come online).
func (s *Service) withEverybody(user jid.JID, sum *summary) []jid.JID {
	if !sum.everybody {
		return sum.subscribers
	}
	online := s.router.AvailableAccounts()
	seen := make(map[string]bool, len(sum.subscribers)+1)
	seen[user.String()] = true
	out := slices.Clone(sum.subscribers)
	for _, j := range out {
		seen[j.String()] = true
	}
	for _, j := range online {
		if !seen[j.String()] {
			out = append(out, j)
		}
	}
	return out
}

// inRoster reports whether contact is in user's roster: from the cached
// summary when they share a subscription, otherwise from storage (an
// item with none). A storage failure counts as not in the roster.
func (s *Service) inRoster(ctx context.Context, user, contact jid.JID) bool {
	sum, err := s.summary(ctx, user)
	if s.failed(err, "in roster", user) {
		return false
	}
	if slices.ContainsFunc(sum.subscribers, contact.Equal) || slices.ContainsFunc(sum.subscriptions, contact.Equal) {
		return true
	}
	if _, to, _ := sharedHalves(s.sharedView(), user.String(), contact.String()); to {
		return true
	}
	_, ok, err := s.store.Get(ctx, user.String(), contact.String())
	return !s.failed(err, "in roster", user) && ok
}

// failed reports whether err is a storage failure, logging it once per
// burst; a nil err records a success, which ends a burst.
func (s *Service) failed(err error, op string, user jid.JID) bool {
	if err == nil {
		s.storeLog.OK()
		return false
	}
	s.storeLog.Fail(err, "op", op, "jid", user.String())
	return true
}

// errStore wraps storage failures for logs.
var errStore = errors.New("roster: storage")

func storeErr(op string, err error) error { return fmt.Errorf("%w: %s: %w", errStore, op, err) }
