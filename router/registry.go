package router

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Addressee classifies the to of an IQ, so that features never work it out
// again (Prosody's host/bare/self event classes).
type Addressee uint8

// Addressee classes.
const (
	// ToServer is an IQ to the server's domain.
	ToServer Addressee = iota + 1
	// ToSelf is an IQ with no to, or to the sender's own bare JID: the
	// server answers on behalf of the account (RFC 6120 §10.3.3).
	ToSelf
	// ToBare is an IQ to another local account's bare JID.
	ToBare
)

func (a Addressee) String() string {
	switch a {
	case ToServer:
		return "server"
	case ToSelf:
		return "self"
	case ToBare:
		return "bare"
	}
	return "unknown"
}

// IQHandler answers an IQ. It returns the payload of the result (nil for an
// empty result) or an error; a stanza.Error is sent to the requester as is,
// any other error (storage failed) is logged, once per burst, and answered
// with wait/internal-server-error so that the client tries again.
type IQHandler interface {
	HandleIQ(ctx context.Context, iq *Stanza) (xml.TokenReader, error)
}

// IQHandlerFunc adapts a function to an IQHandler.
type IQHandlerFunc func(ctx context.Context, iq *Stanza) (xml.TokenReader, error)

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, iq *Stanza) (xml.TokenReader, error) {
	return f(ctx, iq)
}

// StanzaHandler takes every stanza addressed to a domain it owns (a
// component such as conference.example.org).
type StanzaHandler interface {
	HandleStanza(ctx context.Context, s *Stanza)
}

// Result tells a hook chain whether to go on.
type Result uint8

// Hook results.
const (
	// Continue passes the stanza to the next hook, or to the router's own
	// handling after the last.
	Continue Result = iota
	// Handled stops the chain: the hook owns the stanza.
	Handled
	// Failed stops the chain because the hook could not do its part for
	// now (its storage failed): the router answers the sender with
	// wait/internal-server-error, "temporary storage failure; try again
	// later", so that the client retries rather than giving up as it
	// would on cancel/service-unavailable. The hook logs the failure
	// itself (once per burst: internal/burstlog), and must not have
	// acknowledged or half-done anything the retry would repeat.
	Failed
)

func (r Result) String() string {
	switch r {
	case Continue:
		return "continue"
	case Handled:
		return "handled"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// SessionHook is called when a session becomes available (initial presence)
// or unavailable (its last presence, or the end of its stream).
type SessionHook func(ctx context.Context, s Session)

// StanzaHook sees a stanza; returning Handled or Failed stops the chain.
type StanzaHook func(ctx context.Context, s *Stanza) Result

// Item is an entry of the server's disco#items (a component or service).
type Item struct {
	JID  string
	Name string
}

type iqKey struct {
	typ     stanza.IQType
	to      Addressee
	payload xml.Name
}

// Registry is where features hook into the router. It is filled by
// cmd/xmppd before the server starts and is read-only afterwards; a duplicate
// or nil registration panics, naming the pattern.
type Registry struct {
	features        []string
	accountFeatures []string // of local accounts' disco#info
	accountIDs      []Identity
	accountNodes    AccountNodes
	items           []Item
	iq              map[iqKey]IQHandler
	domains         map[string]StanzaHandler
	onAvailable     []SessionHook
	onUnavailable   []SessionHook
	onUnbind        []SessionHook
	undeliverable   []StanzaHook
	kept            []KeptHook
	onDetach        []DetachHook
	outPresence     []StanzaHook
	inPresence      []StanzaHook
	outIQ           []StanzaHook
	inIQ            []StanzaHook
	broadcast       []phased // BroadcastPresence, one phase
	directed        []phased // DirectedPresence, one phase
	outMessage      []phased // sorted by phase
	inMessage       []phased // sorted by phase
	delivered       []DeliveredHook
	subscribers     SubscribersFunc
	inRoster        InRosterFunc
	remote          Remote

	infoForms         []infoForm        // XEP-0128, by FORM_TYPE
	onUnavailablePres []UnavailableHook // with the unavailable presence
}

// InRosterFunc reports whether contact (any JID; its bare JID counts) is
// an item of the account user's roster. The roster provides it.
type InRosterFunc func(ctx context.Context, user, contact jid.JID) bool

// SubscribersFunc returns the bare JIDs that receive the broadcast
// presence of the account user (RFC 6121 §4.2.2: contacts with a
// subscription of from or both). The roster provides it.
type SubscribersFunc func(ctx context.Context, user jid.JID) []jid.JID

func newRegistry() *Registry {
	return &Registry{iq: map[iqKey]IQHandler{}, domains: map[string]StanzaHandler{}}
}

// Feature announces a disco#info feature of the server.
func (r *Registry) Feature(ns string) {
	if slices.Contains(r.features, ns) {
		panic("router: multiple registrations for feature " + ns)
	}
	r.features = append(r.features, ns)
}

// Features returns the server's disco#info features, sorted.
func (r *Registry) Features() []string {
	f := slices.Clone(r.features)
	slices.Sort(f)
	return f
}

// AccountFeature adds a feature to every local account's disco#info: a
// service the account has (XEP-0191's block list, say), as the server's
// features are the server's.
func (r *Registry) AccountFeature(ns string) {
	if slices.Contains(r.accountFeatures, ns) {
		panic("router: multiple registrations for account feature " + ns)
	}
	r.accountFeatures = append(r.accountFeatures, ns)
}

// AccountFeatures returns the accounts' disco#info features, sorted.
func (r *Registry) AccountFeatures() []string {
	f := slices.Clone(r.accountFeatures)
	slices.Sort(f)
	return f
}

// Identity is a disco#info identity (XEP-0030 §3.1).
type Identity struct {
	Category, Type, Name string
}

// AccountIdentity adds an identity to every local account's disco#info
// besides account/registered: a service the account hosts (PEP's
// pubsub/pep, XEP-0163 §1).
func (r *Registry) AccountIdentity(id Identity) {
	if slices.Contains(r.accountIDs, id) {
		panic("router: multiple registrations for account identity " + id.Category + "/" + id.Type)
	}
	r.accountIDs = append(r.accountIDs, id)
}

// AccountIdentities returns the identities added by AccountIdentity.
func (r *Registry) AccountIdentities() []Identity { return slices.Clone(r.accountIDs) }

// AccountNodes answers the disco queries about a local account that its
// own services answer (XEP-0030 §3.2, §4: the nodes of its PEP service):
// disco#info with a node, and disco#items.
type AccountNodes interface {
	// NodeInfo answers a disco#info query to the account with a node.
	NodeInfo(ctx context.Context, iq *Stanza, node string) (xml.TokenReader, error)
	// Items answers a disco#items query to the account (node "" for none).
	Items(ctx context.Context, iq *Stanza, node string) (xml.TokenReader, error)
}

// SetAccountNodes makes h answer the accounts' node queries. Only one may
// be set.
func (r *Registry) SetAccountNodes(h AccountNodes) {
	if h == nil || r.accountNodes != nil {
		panic("router: AccountNodes set twice or to nil")
	}
	r.accountNodes = h
}

// AccountNodesHandler returns what SetAccountNodes set, or nil.
func (r *Registry) AccountNodesHandler() AccountNodes { return r.accountNodes }

// Item adds an entry to the server's disco#items.
func (r *Registry) Item(it Item) { r.items = append(r.items, it) }

// Items returns the server's disco#items.
func (r *Registry) Items() []Item { return slices.Clone(r.items) }

// IQ registers h for IQs of type typ addressed to class to whose payload is
// named payload.
func (r *Registry) IQ(typ stanza.IQType, to Addressee, payload xml.Name, h IQHandler) {
	k := iqKey{typ, to, payload}
	if h == nil {
		panic(fmt.Sprintf("router: nil handler for iq %s/%s/{%s}%s", typ, to, payload.Space, payload.Local))
	}
	if _, dup := r.iq[k]; dup {
		panic(fmt.Sprintf("router: multiple registrations for iq %s/%s/{%s}%s", typ, to, payload.Space, payload.Local))
	}
	r.iq[k] = h
}

// IQFunc is IQ for a function.
func (r *Registry) IQFunc(typ stanza.IQType, to Addressee, payload xml.Name, f func(context.Context, *Stanza) (xml.TokenReader, error)) {
	r.IQ(typ, to, payload, IQHandlerFunc(f))
}

// Domain makes h the handler of every stanza addressed to domain or to a JID
// at it.
func (r *Registry) Domain(domain string, h StanzaHandler) {
	if h == nil {
		panic("router: nil handler for domain " + domain)
	}
	if _, dup := r.domains[domain]; dup {
		panic("router: multiple registrations for domain " + domain)
	}
	r.domains[domain] = h
}

// OnAvailable adds a hook run when a resource sends its initial presence.
func (r *Registry) OnAvailable(h SessionHook) { r.onAvailable = append(r.onAvailable, h) }

// OnUnavailable adds a hook run when an available resource goes unavailable
// or its stream ends.
func (r *Registry) OnUnavailable(h SessionHook) { r.onUnavailable = append(r.onUnavailable, h) }

// OnUnbind adds a hook run when a session leaves the session table
// (its stream ended or it was replaced), after OnUnavailable.
func (r *Registry) OnUnbind(h SessionHook) { r.onUnbind = append(r.onUnbind, h) }

// OutboundPresence adds a hook for presence sent by a local session with
// a to (directed or subscription presence), before the router delivers
// it. A hook that returns Handled owns the stanza (the roster takes
// subscription requests and probes this way); one that returns Failed
// has the sender get a presence error, wait/internal-server-error.
func (r *Registry) OutboundPresence(h StanzaHook) { r.outPresence = append(r.outPresence, h) }

// InboundPresence adds a hook for presence addressed to a local account,
// before it is delivered to the account's resources. Handled and Failed
// mean what they mean for OutboundPresence.
func (r *Registry) InboundPresence(h StanzaHook) { r.inPresence = append(r.inPresence, h) }

// Subscribers sets the function that names who receives a user's
// broadcast presence besides the user's own resources. Only one may be
// set.
func (r *Registry) Subscribers(f SubscribersFunc) {
	if f == nil || r.subscribers != nil {
		panic("router: Subscribers set twice or to nil")
	}
	r.subscribers = f
}

// InRoster sets the function that says whether a JID is in a user's
// roster. Only one may be set.
func (r *Registry) InRoster(f InRosterFunc) {
	if f == nil || r.inRoster != nil {
		panic("router: InRoster set twice or to nil")
	}
	r.inRoster = f
}

// Undeliverable adds a hook for a message to a local account with no
// resource to take it (RFC 6121 §8.5.2.2). The first hook that returns
// Handled owns the message; one that returns Failed (it could not store
// the message) has the sender told wait/internal-server-error; when none
// does either, the sender gets service-unavailable.
func (r *Registry) Undeliverable(h StanzaHook) { r.undeliverable = append(r.undeliverable, h) }

// KeptHook is told of a message for a local account that an Undeliverable
// hook took (stored offline): it waits for the account's next session. It
// cannot change or stop anything.
type KeptHook func(ctx context.Context, m *Stanza)

// Kept adds a hook run after an Undeliverable hook took a message the
// router was routing to a local account (XEP-0357 push notifications
// start here for an account with no session). It is not run for what a
// session hands back when it ends (Router.Undeliverable): those messages
// were routed to the session before.
func (r *Registry) Kept(h KeptHook) {
	if h == nil {
		panic("router: nil kept hook")
	}
	r.kept = append(r.kept, h)
}

// DetachHook is told that a session lost its connection and waits for a
// resumption (XEP-0198), with the messages written to the lost
// connection that the client had not acknowledged: they wait with the
// session, and the client may never have seen them.
type DetachHook func(ctx context.Context, s Session, unacked []*Stanza)

// OnDetach adds a DetachHook (XEP-0357 push notifications for what a
// sleeping phone missed).
func (r *Registry) OnDetach(h DetachHook) {
	if h == nil {
		panic("router: nil detach hook")
	}
	r.onDetach = append(r.onDetach, h)
}

// --- Extended service discovery information (XEP-0128) -------------------

// InfoForm adds a XEP-0128 data form to the server's disco#info. formType
// is the form's FORM_TYPE, which may appear once (XEP-0128 §2); form
// returns a fresh reader over the whole <x xmlns='jabber:x:data'/>
// element on every call, since each answer reads one.
func (r *Registry) InfoForm(formType string, form func() xml.TokenReader) {
	if form == nil {
		panic("router: nil info form " + formType)
	}
	if slices.ContainsFunc(r.infoForms, func(f infoForm) bool { return f.formType == formType }) {
		panic("router: multiple registrations for info form " + formType)
	}
	r.infoForms = append(r.infoForms, infoForm{formType, form})
	slices.SortFunc(r.infoForms, func(a, b infoForm) int { return strings.Compare(a.formType, b.formType) })
}

// InfoForms returns readers over the server's disco#info forms, by
// FORM_TYPE.
func (r *Registry) InfoForms() []xml.TokenReader {
	out := make([]xml.TokenReader, len(r.infoForms))
	for i, f := range r.infoForms {
		out[i] = f.form()
	}
	return out
}

type infoForm struct {
	formType string
	form     func() xml.TokenReader
}

// --- The unavailable presence itself ---------------------------------------

// UnavailableHook is called as an OnUnavailable hook is, with the
// unavailable presence the client sent, or nil when the server made one up
// (the stream ended without one). The session is already unavailable in the
// session table, so a hook sees the account's remaining available
// resources (XEP-0012 last activity records the last one's status).
type UnavailableHook func(ctx context.Context, s Session, pres *Stanza)

// OnUnavailablePresence adds an UnavailableHook, run after the
// OnUnavailable hooks.
func (r *Registry) OnUnavailablePresence(h UnavailableHook) {
	if h == nil {
		panic("router: nil unavailable presence hook")
	}
	r.onUnavailablePres = append(r.onUnavailablePres, h)
}
