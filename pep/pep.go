package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Namespaces of XEP-0060 and XEP-0004.
const (
	NS               = "http://jabber.org/protocol/pubsub"
	NSOwner          = NS + "#owner"
	NSEvent          = NS + "#event"
	NSErrors         = NS + "#errors"
	NSPublishOptions = NS + "#publish-options"
	NSNodeConfig     = NS + "#node_config"
	nsData           = "jabber:x:data"
)

// Store is what PEP needs from storage; *storage.PEP implements it.
type Store interface {
	Nodes(ctx context.Context, owner string) ([]storage.PEPNode, error)
	Node(ctx context.Context, owner, node string) (storage.PEPNode, bool, error)
	CreateNode(ctx context.Context, owner string, n storage.PEPNode, maxNodes int) error
	ConfigureNode(ctx context.Context, owner string, n storage.PEPNode, keep int) error
	DeleteNode(ctx context.Context, owner, node string) (bool, error)
	Publish(ctx context.Context, owner string, it storage.PEPItem, keep int) error
	Items(ctx context.Context, owner, node string, ids []string, last int) ([]storage.PEPItem, error)
	Retract(ctx context.Context, owner, node, id string) (bool, error)
	Purge(ctx context.Context, owner, node string) error
	Last(ctx context.Context, owners []string) ([]storage.PEPLast, error)
	Payloads(ctx context.Context, seqs []int64) (map[int64][]byte, error)
}

// Roster is what PEP needs to know of rosters; package roster implements
// it, from the summary it keeps of online accounts where it can.
type Roster interface {
	// Relation returns contact's subscription state in owner's roster
	// ("none", "to", "from", "both", "" if absent) and its groups.
	Relation(ctx context.Context, owner, contact jid.JID) (subscription string, groups []string, err error)
	// SubscribedTo returns the bare JIDs whose presence user receives
	// (roster to/both).
	SubscribedTo(ctx context.Context, user jid.JID) ([]jid.JID, error)
	// Subscribers returns the bare JIDs that receive owner's presence
	// (roster from/both): those PEP notifies of owner's events.
	Subscribers(ctx context.Context, owner jid.JID) ([]jid.JID, error)
}

// Interest tells PEP which available resources asked for a node's events
// (XEP-0163 §4: the <node>+notify feature of their entity capabilities).
type Interest interface {
	// Wants reports whether the session of full wants events of node (it
	// announced node+"+notify").
	Wants(full jid.JID, node string) bool
}

// Options are PEP's limits and its source of interest.
type Options struct {
	// MaxNodes bounds the nodes of one account (0: no bound).
	MaxNodes int
	// MaxItems bounds the items one node keeps; pubsub#max_items "max"
	// means it. At least 1.
	MaxItems int
	// MaxPayloadBytes bounds one item's payload as serialised.
	MaxPayloadBytes int
	// Interest says who wants which events; it is required. Whoever
	// learns a resource's capabilities calls CapsKnown. There is no
	// "everyone wants everything" default: it would send every contact's
	// OMEMO bundles, avatars and bookmarks to every client at every
	// login, and the server always has entity capabilities (package caps).
	Interest Interest
}

// WatchFunc is told of a change to a node of some account: an item
// published (payload) or retracted (payload nil), or the node deleted or
// purged (id "" and payload nil). It runs on the path of the change,
// after it is stored and notified and with no lock held, so it may
// publish in turn (to another node: the same one would loop).
type WatchFunc func(ctx context.Context, owner jid.JID, id string, payload []byte)

// Service is the PEP service of every local account.
type Service struct {
	store    Store
	roster   Roster
	router   *router.Router
	opts     Options
	log      *slog.Logger
	storeLog *burstlog.Logger // storage failures off the IQ path (events, last items)

	// locks serialise the writes to one account's nodes, so that a
	// node limit and a node's existence are checked with the write.
	seed  maphash.Seed
	locks [stripes]sync.Mutex

	watchMu sync.RWMutex
	watch   map[string][]WatchFunc // by node; guarded by watchMu
}

const stripes = 64

// New returns the PEP service. It panics without o.Interest, as a
// registration the server cannot run without does.
func New(store Store, roster Roster, r *router.Router, o Options, log *slog.Logger) *Service {
	if o.Interest == nil {
		panic("pep: New without an Interest")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.MaxItems = max(o.MaxItems, 1)
	return &Service{store: store, roster: roster, router: r, opts: o, log: log, seed: maphash.MakeSeed(),
		storeLog: burstlog.New(log, "pep: storage failed", time.Minute), watch: map[string][]WatchFunc{}}
}

// Features are the pubsub features an account's disco#info lists
// (XEP-0060 §10, XEP-0163 §7).
var Features = []string{
	NS + "#access-open", NS + "#access-presence", NS + "#access-roster", NS + "#access-whitelist",
	NS + "#auto-create", NS + "#config-node", NS + "#config-node-max", NS + "#create-and-configure", NS + "#create-nodes",
	NS + "#delete-items", NS + "#delete-nodes", NS + "#filtered-notifications", NS + "#item-ids", NS + "#last-published",
	NS + "#multi-items", NS + "#persistent-items", NS + "#presence-notifications", NS + "#publish", NS + "#publish-options",
	NS + "#purge-nodes", NS + "#retract-items", NS + "#retrieve-default", NS + "#retrieve-items",
}

// Register hooks PEP into the router: the pubsub IQs to an account's bare
// JID, its identity and features, and the disco queries about its nodes.
func (s *Service) Register(r *router.Registry) {
	r.AccountIdentity(router.Identity{Category: "pubsub", Type: "pep"})
	for _, f := range Features {
		r.AccountFeature(f)
	}
	for _, to := range []router.Addressee{router.ToSelf, router.ToBare} {
		r.IQFunc(stanza.GetIQ, to, xml.Name{Space: NS, Local: "pubsub"}, s.get)
		r.IQFunc(stanza.SetIQ, to, xml.Name{Space: NS, Local: "pubsub"}, s.set)
		r.IQFunc(stanza.GetIQ, to, xml.Name{Space: NSOwner, Local: "pubsub"}, s.ownerGet)
		r.IQFunc(stanza.SetIQ, to, xml.Name{Space: NSOwner, Local: "pubsub"}, s.ownerSet)
	}
	r.SetAccountNodes(discoNodes{s})
}

// wants reports whether full wants events of node.
func (s *Service) wants(full jid.JID, node string) bool {
	return s.opts.Interest.Wants(full, node)
}

func (s *Service) lock(owner jid.JID) func() {
	m := &s.locks[maphash.String(s.seed, owner.String())%stripes]
	m.Lock()
	return m.Unlock
}

// Watch has fn called after each change of node on any account (see
// WatchFunc). It is meant to be called while the server is assembled.
func (s *Service) Watch(node string, fn func(ctx context.Context, owner jid.JID, id string, payload []byte)) {
	s.watchMu.Lock()
	s.watch[node] = append(s.watch[node], fn)
	s.watchMu.Unlock()
}

func (s *Service) changed(ctx context.Context, owner jid.JID, node, id string, payload []byte) {
	s.watchMu.RLock()
	fns := s.watch[node]
	s.watchMu.RUnlock()
	for _, fn := range fns {
		fn(ctx, owner, id, payload)
	}
}

// Publish publishes payload, one serialised XML element, as item id ("" for
// a new id) of owner's node, as the owner would with opts as
// publish-options (field var → value), and notifies as a client's publish
// does. It returns the item id. A refusal is the stanza error a client
// would get (router.AppError or stanza.Error: precondition-not-met,
// payload-too-big, …); errors.As tells them apart from storage failures.
func (s *Service) Publish(ctx context.Context, owner jid.JID, node, id string, payload []byte, opts map[string]string) (string, error) {
	canon, err := canonical(payload)
	if err != nil {
		return "", appError(stanza.Modify, stanza.BadRequest, "invalid-payload", "the payload is not one XML element")
	}
	var fields map[string][]string
	if opts != nil {
		fields = make(map[string][]string, len(opts))
		for k, v := range opts {
			if k != "FORM_TYPE" {
				fields[k] = []string{v}
			}
		}
	}
	return s.publish(ctx, owner.Bare(), owner.Bare(), node, id, canon, fields)
}

// Items returns the items of owner's node, newest last; a node that does
// not exist has none.
func (s *Service) Items(ctx context.Context, owner jid.JID, node string) (ids []string, payloads [][]byte, err error) {
	items, err := s.store.Items(ctx, owner.Bare().String(), node, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	for _, it := range items {
		ids = append(ids, it.ID)
		payloads = append(payloads, it.Payload)
	}
	return ids, payloads, nil
}

// Retract removes an item of owner's node, notifying as the node's
// pubsub#notify_retract says. An item or node that does not exist is no
// error: what the caller wants is so.
func (s *Service) Retract(ctx context.Context, owner jid.JID, node, id string) error {
	err := s.retract(ctx, owner.Bare(), node, id, "")
	var se stanza.Error
	if errors.As(err, &se) && se.Condition == stanza.ItemNotFound {
		return nil
	}
	return err
}

// newID returns a fresh item id.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publish is every publication: a client's (publisher the owner, opts
// its publish-options, nil without) and the Go API's.
func (s *Service) publish(ctx context.Context, owner, publisher jid.JID, node, id string, payload []byte, opts map[string][]string) (string, error) {
	switch {
	case node == "":
		return "", appError(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	case len(node) > maxNodeNameSize || len(id) > maxNodeNameSize:
		return "", router.ErrorText(stanza.Modify, stanza.NotAcceptable, "the node name or item id is too long")
	case len(payload) > s.opts.MaxPayloadBytes:
		return "", appError(stanza.Modify, stanza.NotAcceptable, "payload-too-big",
			"an item's payload is at most "+strconv.Itoa(s.opts.MaxPayloadBytes)+" bytes here")
	}
	if id == "" {
		id = newID()
	}
	unlock := s.lock(owner)
	n, ok, err := s.store.Node(ctx, owner.String(), node)
	if err != nil {
		unlock()
		return "", err
	}
	if ok && opts != nil {
		err = s.preconditions(n, opts)
	}
	if !ok {
		n, err = s.create(ctx, owner, node, opts, true)
	}
	if err == nil && n.PersistItems {
		err = s.store.Publish(ctx, owner.String(), storage.PEPItem{Node: node, ID: id, Publisher: publisher.String(), Payload: payload}, s.keep(n))
	}
	unlock()
	if err != nil {
		return "", err
	}
	s.broadcast(ctx, owner, n, itemEvent(owner, node, id, payload))
	s.changed(ctx, owner, node, id, payload)
	return id, nil
}

// create makes a node of owner configured by fields (publish-options or a
// create's configure form). Locked by the caller. An unknown field is
// precondition-not-met for publish-options (auto), not-acceptable for a
// configure form.
func (s *Service) create(ctx context.Context, owner jid.JID, node string, fields map[string][]string, auto bool) (storage.PEPNode, error) {
	n := defaultNode(node)
	if err := s.apply(&n, fields); err != nil {
		var uf unknownField
		if errors.As(err, &uf) {
			if auto {
				return n, appError(stanza.Cancel, stanza.Conflict, "precondition-not-met", "publish-option "+uf.name+" is not supported")
			}
			return n, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "field "+uf.name+" is not supported")
		}
		return n, err
	}
	err := s.store.CreateNode(ctx, owner.String(), n, s.opts.MaxNodes)
	switch {
	case errors.Is(err, storage.ErrLimit):
		return n, appError(stanza.Cancel, stanza.NotAllowed, "max-nodes-exceeded",
			"an account has at most "+strconv.Itoa(s.opts.MaxNodes)+" nodes here")
	case errors.Is(err, storage.ErrExists):
		return n, router.ErrorText(stanza.Cancel, stanza.Conflict, "the node exists")
	}
	return n, err
}

// retract removes an item (XEP-0060 §7.2). notify is the request's
// notify attribute ("" when absent: the node's notify_retract decides).
func (s *Service) retract(ctx context.Context, owner jid.JID, node, id, notify string) error {
	if node == "" {
		return appError(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	}
	if id == "" {
		return appError(stanza.Modify, stanza.BadRequest, "item-required", "")
	}
	unlock := s.lock(owner)
	n, ok, err := s.store.Node(ctx, owner.String(), node)
	if err == nil && !ok {
		err = router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	if err == nil {
		ok, err = s.store.Retract(ctx, owner.String(), node, id)
		if err == nil && !ok {
			err = router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such item")
		}
	}
	unlock()
	if err != nil {
		return err
	}
	send := n.NotifyRetract
	if b, ok := parseBool(notify); ok {
		send = b
	}
	if send {
		s.broadcast(ctx, owner, n, retractEvent(owner, node, id))
	}
	s.changed(ctx, owner, node, id, nil)
	return nil
}

// failed logs a storage failure off the IQ path, once per burst.
func (s *Service) failed(err error, op string, who jid.JID) bool {
	if err == nil {
		s.storeLog.OK()
		return false
	}
	s.storeLog.Fail(err, "op", op, "jid", who.String())
	return true
}
