package router

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
)

// Accounts tells the router whether a local account exists, so that a
// stanza to an unknown user is answered as RFC 6121 §8.5.1 says. An error
// (storage failed) is not taken for "no such account": the sender is told
// to try again later (see [Failed]).
type Accounts interface {
	Exists(ctx context.Context, bare jid.JID) (bool, error)
}

// Router routes stanzas between local sessions, the server's own handlers
// and components. Create it with New, register features on Registry(), then
// start serving; the registry must not change once stanzas flow.
type Router struct {
	domain   jid.JID
	accounts Accounts
	log      *slog.Logger
	reg      *Registry
	table    *table

	// storeLog logs failed account lookups, iqLog IQ handlers that
	// failed with something other than a stanza error: once per burst,
	// since an outage of storage fails every stanza that needs it.
	storeLog *burstlog.Logger
	iqLog    *burstlog.Logger

	req requests // the server's own IQs waiting for answers (Request)
}

// logPeriod is how often a burst of one failure is logged again.
const logPeriod = time.Minute

// storageFailure answers a stanza the server could not handle because
// storage failed: wait, so that the client tries again (RFC 6120
// §8.3.2), rather than cancel/service-unavailable, which says the
// recipient does not exist.
func storageFailure() stanza.Error {
	return ErrorText(stanza.Wait, stanza.InternalServerError, "temporary storage failure; try again later")
}

// New returns a router for domain.
func New(domain jid.JID, accounts Accounts, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{
		domain: domain.Domain(), accounts: accounts, log: log, reg: newRegistry(), table: newTable(),
		storeLog: burstlog.New(log, "router: account lookup failed", logPeriod),
		iqLog:    burstlog.New(log, "router: iq handler failed", logPeriod),
	}
}

// Domain is the XMPP domain the router serves.
func (r *Router) Domain() jid.JID { return r.domain }

// Registry is where features register; see Registry.
func (r *Router) Registry() *Registry { return r.reg }

// SessionCount is the number of bound sessions.
func (r *Router) SessionCount() int { return r.table.count() }

// Bind adds a freshly bound session. When another session holds the same
// full JID it is removed from the table and returned: the caller ends its
// stream with <conflict/> (RFC 6120 §7.7.2.2, the newer session wins).
func (r *Router) Bind(ctx context.Context, s Session) (replaced Session) {
	replaced, _ = r.BindAtMost(ctx, s, 0)
	return replaced
}

// BindAtMost is Bind for an account that may have at most max sessions at
// once (0: no bound). A session that would be one too many is not bound
// and the error wraps ErrTooManyResources; one that replaces a session of
// the same full JID always is.
func (r *Router) BindAtMost(ctx context.Context, s Session, max int) (replaced Session, err error) {
	old, err := r.table.bind(s, max)
	if old == nil {
		return nil, err
	}
	if old.available {
		r.wentUnavailable(ctx, old, nil)
	}
	for _, h := range r.reg.onUnbind {
		h(ctx, old.sess)
	}
	return old.sess, nil
}

// Unbind removes a session whose stream has ended. If it was available,
// unavailable presence is sent for it (RFC 6121 §4.5.3.2 and §4.6.3).
func (r *Router) Unbind(ctx context.Context, s Session) {
	res, ok := r.table.unbind(s)
	if !ok {
		return
	}
	if res.available {
		r.wentUnavailable(ctx, res, nil)
	}
	for _, h := range r.reg.onUnbind {
		h(ctx, s)
	}
}

// FromClient routes a stanza a local client sent, From stamped by c2s.
// Presence without to is the client's broadcast presence (RFC 6121 §4.2,
// §4.4, §4.5); presence with to passes the OutboundPresence hooks (the
// roster takes subscription management there) and is remembered as
// directed presence.
func (r *Router) FromClient(ctx context.Context, st *Stanza) {
	if st.Kind == KindPresence {
		if st.To.Equal(jid.JID{}) {
			r.broadcastPresence(ctx, st)
			return
		}
		if st.Type == "" && len(r.reg.directed) > 0 {
			if st = r.runMessageHooks(ctx, r.reg.directed, st); st == nil {
				return
			}
		}
		if r.runHooks(ctx, r.reg.outPresence, st) {
			return
		}
		r.trackDirected(st)
	}
	switch st.Kind {
	case KindMessage:
		if len(r.reg.outMessage) > 0 {
			if st = r.runMessageHooks(ctx, r.reg.outMessage, st); st == nil {
				return
			}
		}
	case KindIQ:
		if r.runHooks(ctx, r.reg.outIQ, st) {
			return
		}
	}
	r.Route(ctx, st)
}

// Route delivers a stanza from a local session or from a server feature
// or component. It never blocks on a recipient.
func (r *Router) Route(ctx context.Context, st *Stanza) {
	to := st.To
	switch {
	case to.Equal(jid.JID{}):
		r.routeNoTo(ctx, st)
	case to.Domainpart() == r.domain.Domainpart():
		switch {
		case to.Localpart() != "":
			r.routeLocal(ctx, st)
		default:
			r.routeServer(ctx, st)
		}
	default:
		if h, ok := r.reg.domains[to.Domainpart()]; ok {
			h.HandleStanza(ctx, st)
			return
		}
		if r.reg.remote != nil {
			r.reg.remote.Route(ctx, st)
			return
		}
		r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.RemoteServerNotFound,
			"this server does not federate; "+to.Domainpart()+" is not served here"))
	}
}

// routeNoTo handles a stanza without to: RFC 6120 §10.3.
func (r *Router) routeNoTo(ctx context.Context, st *Stanza) {
	switch st.Kind {
	case KindPresence:
		// Broadcast presence comes from clients through FromClient.
	case KindMessage:
		// Treated as addressed to the sender's bare JID.
		r.routeMessage(ctx, st, st.From.Bare())
	case KindIQ:
		r.handleIQ(ctx, st, ToSelf)
	}
}

func (r *Router) routeServer(ctx context.Context, st *Stanza) {
	switch st.Kind {
	case KindIQ:
		r.handleIQ(ctx, st, ToServer)
	case KindMessage:
		// Nothing on the server takes messages yet; RFC 6120 §10.3.1 lets
		// the server handle or ignore them.
		if st.Type != "error" && st.Type != "headline" && st.Type != "groupchat" {
			r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
		}
	case KindPresence:
		// Directed presence to the server: nothing to do.
	}
}

func (r *Router) routeLocal(ctx context.Context, st *Stanza) {
	switch st.Kind {
	case KindIQ:
		r.routeIQ(ctx, st)
	case KindMessage:
		r.routeMessage(ctx, st, st.To)
	case KindPresence:
		r.routePresence(ctx, st)
	}
}

// routeIQ: RFC 6121 §8.5.2.1.3 / §8.5.3 for IQs to a local account.
func (r *Router) routeIQ(ctx context.Context, st *Stanza) {
	to := st.To
	if len(r.reg.inIQ) > 0 && !to.Bare().Equal(st.From.Bare()) && r.runHooks(ctx, r.reg.inIQ, st) {
		return
	}
	if to.Resourcepart() == "" {
		class := ToBare
		if to.Equal(st.From.Bare()) {
			class = ToSelf
		}
		if class == ToBare && !r.existsOrBounce(ctx, st, to) {
			return
		}
		r.handleIQ(ctx, st, class)
		return
	}
	var buf [8]snapshot
	for _, s := range r.table.lookup(buf[:0], to.Bare().String()) {
		if s.sess.JID().Resourcepart() == to.Resourcepart() {
			if err := s.sess.Deliver(st.Raw); err == nil {
				return
			}
			break
		}
	}
	r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
}

// handleIQ answers an IQ addressed to the server or to an account from the
// registry.
func (r *Router) handleIQ(ctx context.Context, st *Stanza, class Addressee) {
	if st.Type != "get" && st.Type != "set" {
		// Results and errors addressed to the server end here, answering
		// one of its requests or nothing; so do those addressed to an
		// account's bare JID (RequestFrom: the server acting for it).
		if class == ToServer || class == ToBare {
			r.answer(ctx, st)
		}
		return
	}
	h, ok := r.reg.iq[iqKey{stanza.IQType(st.Type), class, st.Payload}]
	if !ok {
		r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
		return
	}
	payload, err := h.HandleIQ(ctx, st)
	if err != nil {
		var ae AppError
		if errors.As(err, &ae) {
			if reply := AppErrorReply(st, ae); reply != nil && !reply.To.Equal(jid.JID{}) {
				r.Route(ctx, reply)
			}
			return
		}
		var se stanza.Error
		if !errors.As(err, &se) {
			r.iqLog.Fail(err, "payload", st.Payload.Space+" "+st.Payload.Local, "from", st.From.String())
			se = ErrorText(stanza.Wait, stanza.InternalServerError, "temporary server failure; try again later")
		}
		r.bounce(ctx, st, se)
		return
	}
	r.iqLog.OK()
	reply, err := Build(KindIQ, "result", st.ID, st.To, st.From, payload)
	if err != nil {
		r.log.Error("iq result failed to encode", "payload", st.Payload.Local, "err", err)
		r.bounce(ctx, st, ErrorText(stanza.Wait, stanza.InternalServerError, ""))
		return
	}
	r.Route(ctx, reply)
}

// routeMessage: RFC 6121 §8.5.2 (bare) and §8.5.3 (full).
func (r *Router) routeMessage(ctx context.Context, st *Stanza, to jid.JID) {
	arrived := st
	var buf [8]snapshot
	sessions := r.table.lookup(buf[:0], to.Bare().String())
	// A chat or normal message for an account with no session: whether
	// the account exists is asked once, before the hooks, so that they
	// (the archive) never see one for a name nobody has.
	if len(sessions) == 0 && st.Type != "groupchat" && st.Type != "error" && st.Type != "headline" &&
		!r.existsOrBounce(ctx, st, to.Bare()) {
		return
	}
	if len(r.reg.inMessage) > 0 {
		if st = r.runMessageHooks(ctx, r.reg.inMessage, st); st == nil {
			return
		}
	}
	if res := to.Resourcepart(); res != "" {
		for _, s := range sessions {
			if s.sess.JID().Resourcepart() == res {
				ok := s.sess.Deliver(st.Raw) == nil
				if len(r.reg.delivered) > 0 {
					d := Delivery{Arrived: arrived, Message: st}
					if ok {
						d.Sessions.Add(s.sess)
					}
					r.runDelivered(ctx, &d)
				}
				if !ok {
					// The session closed itself on a full queue; the
					// message goes where an undeliverable one goes.
					r.undeliverableKept(ctx, st)
				}
				return
			}
		}
		switch st.Type {
		case "groupchat":
			r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
			return
		case "headline", "error":
			return
		}
		// chat and normal fall through to the bare JID.
	}
	if st.Type == "groupchat" {
		r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
		return
	}
	if st.Type == "error" {
		return
	}
	max := -1
	for _, s := range sessions {
		if s.available && s.priority > max {
			max = s.priority
		}
	}
	delivered := false
	var d Delivery
	for _, s := range sessions {
		if !s.available || s.priority < 0 {
			continue
		}
		// headline goes to every non-negative resource; chat and normal to
		// those with the highest priority.
		if st.Type != "headline" && s.priority != max {
			continue
		}
		if s.sess.Deliver(st.Raw) == nil {
			delivered = true
			d.Sessions.Add(s.sess)
		}
	}
	if len(sessions) > 0 && len(r.reg.delivered) > 0 {
		d.Arrived, d.Message = arrived, st
		r.runDelivered(ctx, &d)
	}
	if delivered || st.Type == "headline" {
		return
	}
	r.undeliverableKept(ctx, st)
}

// undeliverableKept is undeliverable for a message being routed to a
// local account, and runs the Kept hooks once an Undeliverable hook has
// taken it (the offline store kept it for the account's next session).
func (r *Router) undeliverableKept(ctx context.Context, st *Stanza) {
	if r.undeliverable(ctx, st) {
		for _, h := range r.reg.kept {
			h(ctx, st)
		}
	}
}

// runDelivered runs the Delivered hooks.
func (r *Router) runDelivered(ctx context.Context, d *Delivery) {
	for _, h := range r.reg.delivered {
		h(ctx, *d)
	}
}

// undeliverable runs the undeliverable hooks for a message; with none
// taking it, the sender learns it was not delivered. It reports whether a
// hook took it (Handled).
func (r *Router) undeliverable(ctx context.Context, st *Stanza) (kept bool) {
	if st.Kind != KindMessage || st.Type == "error" || st.Type == "headline" || st.Type == "groupchat" {
		return false
	}
	for _, h := range r.reg.undeliverable {
		switch h(ctx, st) {
		case Handled:
			return true
		case Failed:
			r.bounce(ctx, st, storageFailure())
			return false
		}
	}
	r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	return false
}

// runHooks runs a hook chain until a hook returns Handled or Failed, and
// reports whether one did. For Failed, the sender is told to try again.
func (r *Router) runHooks(ctx context.Context, hooks []StanzaHook, st *Stanza) bool {
	for _, h := range hooks {
		switch h(ctx, st) {
		case Handled:
			return true
		case Failed:
			r.bounce(ctx, st, storageFailure())
			return true
		}
	}
	return false
}

// WantsDetached reports whether SessionDetached has hooks to run, so that
// a session collects its unacknowledged stanzas only then.
func (r *Router) WantsDetached() bool { return len(r.reg.onDetach) > 0 }

// SessionDetached is called by a session that lost its connection and now
// waits for a resumption (router.Detachable), with the stanzas written to
// that connection and not acknowledged; the OnDetach hooks get the
// messages among them.
func (r *Router) SessionDetached(ctx context.Context, s Session, unacked [][]byte) {
	if len(r.reg.onDetach) == 0 {
		return
	}
	var msgs []*Stanza
	for _, b := range unacked {
		if !bytes.HasPrefix(b, []byte("<message")) {
			continue
		}
		if st, err := Parse(b); err == nil && st.Kind == KindMessage {
			msgs = append(msgs, st)
		}
	}
	for _, h := range r.reg.onDetach {
		h(ctx, s, msgs)
	}
}

// Undeliverable hands a message that could not be written to its
// recipient (a session closed with it still queued) to the undeliverable
// path.
func (r *Router) Undeliverable(ctx context.Context, st *Stanza) { r.undeliverable(ctx, st) }

// routePresence delivers directed presence to a local account (RFC 6121
// §4.6, §8.5.2.1.2, §8.5.3.1).
func (r *Router) routePresence(ctx context.Context, st *Stanza) {
	if r.runHooks(ctx, r.reg.inPresence, st) {
		return
	}
	if st.Type != "" && st.Type != "unavailable" && st.Type != "error" {
		return // subscription presence and probes without a roster to take them
	}
	var buf [8]snapshot
	sessions := r.table.lookup(buf[:0], st.To.Bare().String())
	res := st.To.Resourcepart()
	for _, s := range sessions {
		if res != "" && s.sess.JID().Resourcepart() != res {
			continue
		}
		if res == "" && !s.available {
			continue
		}
		s.sess.Deliver(st.Raw)
	}
}

// trackDirected remembers to whom a session sent directed available
// presence, so that they learn when it goes away (RFC 6121 §4.6.3).
func (r *Router) trackDirected(st *Stanza) {
	if st.From.Domainpart() != r.domain.Domainpart() || st.From.Resourcepart() == "" {
		return
	}
	if st.Type != "" && st.Type != "unavailable" {
		return
	}
	r.table.update(st.From, func(res *resource) {
		i := -1
		for k, d := range res.directed {
			if d.Equal(st.To) {
				i = k
			}
		}
		switch {
		case st.Type == "" && i < 0 && len(res.directed) < maxDirected:
			res.directed = append(res.directed, st.To)
		case st.Type == "unavailable" && i >= 0:
			res.directed = append(res.directed[:i], res.directed[i+1:]...)
		}
	})
}

// maxDirected bounds the directed-presence set a session can make the
// server remember.
const maxDirected = 1000

// broadcastPresence handles presence without to from a local session:
// initial, updated or unavailable presence (RFC 6121 §4.2–§4.5).
func (r *Router) broadcastPresence(ctx context.Context, st *Stanza) {
	switch st.Type {
	case "":
	case "unavailable":
		var prev *resource
		r.table.update(st.From, func(res *resource) {
			cp := *res
			prev = &cp
			res.available = false
			res.presence = nil
			res.directed = nil
		})
		if prev != nil && prev.available {
			r.wentUnavailable(ctx, prev, st)
		}
		return
	default:
		return // subscription presence and probes need a to: nothing to do
	}
	if len(r.reg.broadcast) > 0 {
		if st = r.runMessageHooks(ctx, r.reg.broadcast, st); st == nil {
			return
		}
	}
	prio := presencePriority(st)
	var first bool
	var self Session
	r.table.update(st.From, func(res *resource) {
		first = !res.available
		res.available = true
		res.priority = prio
		res.presence = st.Raw
		self = res.sess
	})
	if self == nil {
		return
	}
	var buf [8]snapshot
	for _, s := range r.table.lookup(buf[:0], st.From.Bare().String()) {
		if s.available || s.sess == self {
			s.sess.Deliver(st.Raw)
		}
	}
	r.toSubscribers(ctx, st.From, st.Type, st.Raw)
	if first {
		// The new resource learns of the account's other resources
		// (as Prosody and ejabberd do).
		for _, p := range r.table.presences(st.From) {
			self.Deliver(p)
		}
		for _, h := range r.reg.onAvailable {
			h(ctx, self)
		}
	}
}

// wentUnavailable sends unavailable presence for a resource that was
// available: to the account's resources and to everyone that got directed
// presence from it. pres is the client's own unavailable presence, or nil
// when the server synthesises one (stream ended).
func (r *Router) wentUnavailable(ctx context.Context, res *resource, pres *Stanza) {
	from := res.sess.JID()
	raw := []byte(nil)
	if pres != nil {
		raw = pres.Raw
	} else {
		raw = appendHeader(nil, KindPresence, "unavailable", "", from, jid.JID{})
		raw = append(raw[:len(raw)-1], "/>"...)
	}
	var buf [8]snapshot
	for _, s := range r.table.lookup(buf[:0], from.Bare().String()) {
		if s.available {
			s.sess.Deliver(raw)
		}
	}
	subs := r.toSubscribers(ctx, from, "unavailable", raw)
	for _, to := range res.directed {
		if slices.ContainsFunc(subs, func(s jid.JID) bool { return s.Equal(to.Bare()) }) {
			continue // already told as a subscriber
		}
		st, err := Build(KindPresence, "unavailable", "", from, to, nil)
		if err == nil {
			r.Route(ctx, st)
		}
	}
	for _, h := range r.reg.onUnavailable {
		h(ctx, res.sess)
	}
	for _, h := range r.reg.onUnavailablePres {
		h(ctx, res.sess, pres)
	}
}

// toSubscribers sends a user's broadcast presence (raw, without to) to
// every subscriber, local or remote, the roster names, addressed to the subscriber's
// bare JID (RFC 6121 §4.2.2, §4.4.2, §4.5.2). It returns the subscribers.
func (r *Router) toSubscribers(ctx context.Context, from jid.JID, typ string, raw []byte) []jid.JID {
	if r.reg.subscribers == nil {
		return nil
	}
	subs := r.reg.subscribers(ctx, from.Bare())
	for _, to := range subs {
		// Remote subscribers' presence goes through Route to the remote
		// route (federation); without one there is nobody to tell.
		if r.reg.remote == nil && !r.Serves(to.Domainpart()) {
			continue
		}
		r.Route(ctx, &Stanza{Kind: KindPresence, Type: typ, From: from, To: to, Raw: WithTo(raw, to)})
	}
	return subs
}

// Presences returns the last broadcast presence of each available
// resource of the account user, for answering probes (RFC 6121 §4.3.2).
func (r *Router) Presences(user jid.JID) [][]byte {
	return r.table.presences(user.Bare())
}

// Priority returns the priority of the resource bound to the full JID j
// from its last broadcast presence; available is false when j is not bound
// or has not sent available presence (prio is then 0).
func (r *Router) Priority(j jid.JID) (prio int, available bool) {
	var buf [8]snapshot
	for _, s := range r.table.lookup(buf[:0], j.Bare().String()) {
		if s.available && s.sess.JID().Resourcepart() == j.Resourcepart() {
			return s.priority, true
		}
	}
	return 0, false
}

// presencePriority reads <priority/> (RFC 6121 §4.7.2.3): an integer from
// -128 to 127, 0 when absent or invalid.
func presencePriority(st *Stanza) int {
	d := st.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return 0
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "priority" && t.Name.Space == stanza.NSClient {
				var s string
				if d.DecodeElement(&s, &t) != nil {
					return 0
				}
				p, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || p < -128 || p > 127 {
					return 0
				}
				return p
			}
		case xml.EndElement:
			depth--
		}
	}
}

// bounce answers st with an error, unless st is itself an error.
func (r *Router) bounce(ctx context.Context, st *Stanza, e stanza.Error) {
	reply := ErrorReply(st, e)
	if reply == nil || reply.To.Equal(jid.JID{}) {
		return
	}
	r.Route(ctx, reply)
}

// exists asks Accounts whether bare is a local account. An error is
// logged once per burst; the caller answers storageFailure.
func (r *Router) exists(ctx context.Context, bare jid.JID) (bool, error) {
	if r.accounts == nil {
		return false, nil
	}
	ok, err := r.accounts.Exists(ctx, bare)
	if err != nil {
		r.storeLog.Fail(err, "jid", bare.String())
		return false, err
	}
	r.storeLog.OK()
	return ok, nil
}

// existsOrBounce reports whether bare is a local account; when it is not,
// or the lookup failed, it answers st: cancel/service-unavailable for no
// such account (RFC 6121 §8.5.1), the wait error of a storage failure
// otherwise.
func (r *Router) existsOrBounce(ctx context.Context, st *Stanza, bare jid.JID) bool {
	ok, err := r.exists(ctx, bare)
	switch {
	case err != nil:
		r.bounce(ctx, st, storageFailure())
	case !ok:
		r.bounce(ctx, st, ErrorText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	}
	return ok && err == nil
}

// Subscribes reports whether contact is among those who receive user's
// broadcast presence (the Subscribers function: roster from or both).
func (r *Router) Subscribes(ctx context.Context, user, contact jid.JID) bool {
	if r.reg.subscribers == nil {
		return false
	}
	return slices.ContainsFunc(r.reg.subscribers(ctx, user.Bare()), contact.Bare().Equal)
}

// InRoster reports whether contact is an item of user's roster (false
// without a roster).
func (r *Router) InRoster(ctx context.Context, user, contact jid.JID) bool {
	if r.reg.inRoster == nil {
		return false
	}
	return r.reg.inRoster(ctx, user.Bare(), contact.Bare())
}

// AccountExists reports whether bare is a local account.
func (r *Router) AccountExists(ctx context.Context, bare jid.JID) (bool, error) {
	if r.accounts == nil {
		return false, nil
	}
	return r.accounts.Exists(ctx, bare.Bare())
}

// AvailableAccounts returns the bare JIDs of the local accounts with an
// available resource (for presence to "every user", such as a shared
// roster group shown to everybody).
func (r *Router) AvailableAccounts() []jid.JID { return r.table.available() }

// AvailableResources returns the full JIDs of the available resources of
// the account user.
func (r *Router) AvailableResources(user jid.JID) []jid.JID {
	var buf [8]snapshot
	var out []jid.JID
	for _, s := range r.table.lookup(buf[:0], user.Bare().String()) {
		if s.available {
			out = append(out, s.sess.JID())
		}
	}
	return out
}

// DeliverToAvailable writes st to every available resource of the account
// st.To, without the hooks (a feature delivering what it has already
// processed). It returns how many resources took it.
func (r *Router) DeliverToAvailable(ctx context.Context, st *Stanza) int {
	var buf [8]snapshot
	n := 0
	for _, s := range r.table.lookup(buf[:0], st.To.Bare().String()) {
		if s.available && s.sess.Deliver(st.Raw) == nil {
			n++
		}
	}
	return n
}

// SessionOf returns the session bound to the full JID j, for a feature
// that keeps state per session (it learns of its end through OnUnbind).
func (r *Router) SessionOf(j jid.JID) (Session, bool) {
	var buf [8]snapshot
	for _, s := range r.table.lookup(buf[:0], j.Bare().String()) {
		if s.sess.JID().Resourcepart() == j.Resourcepart() {
			return s.sess, true
		}
	}
	return nil, false
}
