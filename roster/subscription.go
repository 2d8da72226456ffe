package roster

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// sameState compares the subscription state of two items (the fields a
// subscription stanza can change).
func sameState(a, b storage.RosterItem) bool {
	return a.Subscription == b.Subscription && a.Ask == b.Ask && a.PendingIn == b.PendingIn &&
		a.Approved == b.Approved && a.Visible == b.Visible
}

// isSubscription reports whether typ is a subscription presence type.
func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// hasTo and hasFrom split a subscription state into its two directions.
func hasTo(sub string) bool   { return sub == "to" || sub == "both" }
func hasFrom(sub string) bool { return sub == "from" || sub == "both" }

func join(to, from bool) string {
	switch {
	case to && from:
		return "both"
	case to:
		return "to"
	case from:
		return "from"
	}
	return "none"
}

// outbound takes subscription presence sent by a local user (RFC 6121
// §3.1.2, §3.2.2, §3.3.2, §3.4; Appendix A.2 and A.4 "outbound"): it
// updates the user's roster, pushes the change, and routes the stanza from
// the user's bare JID to the contact.
func (s *Service) outbound(ctx context.Context, st *router.Stanza) router.Result {
	if !isSubscription(st.Type) {
		return router.Continue
	}
	user, contact := st.From.Bare(), st.To.Bare()
	if contact.Equal(user) || contact.Localpart() == "" {
		return router.Handled // nothing to subscribe to; dropped
	}
	if s.sharedSubscription(ctx, st.Type, user, contact, true) {
		return router.Handled
	}
	unlock := s.lock(user)
	it, ok, err := s.store.Get(ctx, user.String(), contact.String())
	if s.failed(err, "outbound subscription: get", user) {
		unlock()
		return router.Failed
	}
	before := it
	if !ok {
		it = storage.RosterItem{Contact: contact.String(), Subscription: "none"}
	}
	route := true
	var sendPresence, sendUnavailable bool
	switch st.Type {
	case "subscribe":
		// A.2.1: pending-out unless already subscribed to.
		if !hasTo(it.Subscription) {
			it.Ask = true
			it.Visible = true
		}
	case "unsubscribe":
		// A.2.3: drop "to" and any pending-out.
		it.Ask = false
		it.Subscription = join(false, hasFrom(it.Subscription))
	case "subscribed":
		// A.2.2: approve a pending request, or pre-approve (§3.4).
		switch {
		case it.PendingIn:
			it.PendingIn, it.Request = false, ""
			it.Subscription = join(hasTo(it.Subscription), true)
			it.Visible = true
			sendPresence = true
		case hasFrom(it.Subscription):
			route = false // already subscribed: nothing to say
		default:
			it.Approved = true
			it.Visible = true
			route = false // a pre-approval stays on this server
		}
	case "unsubscribed":
		// A.2.4: cancel "from", deny a pending request, drop a pre-approval.
		if !hasFrom(it.Subscription) && !it.PendingIn && !it.Approved {
			route = ok // nothing to cancel; still tell a known contact
		}
		sendUnavailable = hasFrom(it.Subscription)
		it.PendingIn, it.Request, it.Approved = false, "", false
		it.Subscription = join(hasTo(it.Subscription), false)
	}
	changed := !sameState(it, before)
	if !ok && !it.Visible {
		changed = false // never create a row only to say nothing
	}
	if !ok && it.Visible {
		if err := s.checkRoom(ctx, user); err != nil {
			unlock()
			var se stanza.Error
			if !errors.As(err, &se) && s.failed(err, "outbound subscription: count", user) {
				return router.Failed
			}
			return router.Handled
		}
	}
	if changed {
		if err := s.save(ctx, user, it, before, ok); s.failed(err, "outbound subscription: save", user) {
			unlock()
			return router.Failed
		}
	}
	unlock()
	if route {
		// The stanza goes on as the user sent it (a nick or status it
		// carries included), from the bare JID (RFC 6121 §3.1.2).
		s.router.Route(ctx, router.Restamp(st, user, contact))
	}
	if sendPresence {
		s.sendPresenceTo(ctx, user, contact)
	}
	if sendUnavailable {
		s.sendUnavailableTo(ctx, user, contact)
	}
	return router.Handled
}

// save stores it (or deletes a row that holds nothing any more) and pushes
// visible changes.
func (s *Service) save(ctx context.Context, user jid.JID, it, before storage.RosterItem, existed bool) error {
	if !it.Visible && !it.PendingIn {
		if !existed {
			return nil
		}
		if _, err := s.del(ctx, user, it.Contact); err != nil {
			return storeErr("delete", err)
		}
		return nil
	}
	// Only what the user sees is pushed and versioned: a pending request
	// alone is not part of the roster (RFC 6121 §3.1.3).
	seen := it.Visible && (!existed || !before.Visible || it.Subscription != before.Subscription ||
		it.Ask != before.Ask || it.Approved != before.Approved)
	ver, err := s.put(ctx, user, it, seen)
	if err != nil {
		return storeErr("put", err)
	}
	if seen {
		s.push(ctx, user, it, false, ver)
	}
	return nil
}

// inbound takes subscription presence and probes addressed to a local
// user (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3, §4.3.2; Appendix A.3 and
// A.4 "inbound").
func (s *Service) inbound(ctx context.Context, st *router.Stanza) router.Result {
	if st.Type == "probe" {
		s.probe(ctx, st)
		return router.Handled
	}
	if !isSubscription(st.Type) {
		return router.Continue
	}
	user, contact := st.To.Bare(), st.From.Bare()
	if st.To.Resourcepart() != "" {
		// Subscription presence is about accounts, never resources.
		st = &router.Stanza{Kind: st.Kind, Type: st.Type, From: contact, To: user}
	}
	exists, err := s.exists(ctx, user)
	if s.failed(err, "inbound subscription: account", user) {
		return router.Failed // not "no such user": the sender may try again
	}
	if exists && s.sharedSubscription(ctx, st.Type, user, contact, false) {
		return router.Handled
	}
	if !exists {
		// §3.1.3: no such user; tell a subscriber it will never be.
		if st.Type == "subscribe" {
			s.sendSubscription(ctx, user, contact, "unsubscribed")
		}
		return router.Handled
	}
	unlock := s.lock(user)
	it, ok, err := s.store.Get(ctx, user.String(), contact.String())
	if s.failed(err, "inbound subscription: get", user) {
		unlock()
		return router.Failed
	}
	before := it
	if !ok {
		it = storage.RosterItem{Contact: contact.String(), Subscription: "none"}
	}
	deliver := false
	var autoReply string
	var sendPresence, sendUnavailable bool
	switch st.Type {
	case "subscribe":
		switch {
		case hasFrom(it.Subscription):
			autoReply = "subscribed" // §3.1.3: already subscribed
		case it.Approved:
			// §3.4: pre-approved; the subscription is granted at once.
			it.Approved = false
			it.Subscription = join(hasTo(it.Subscription), true)
			autoReply, sendPresence = "subscribed", true
		default:
			if !ok {
				if err := s.checkRoom(ctx, user); err != nil {
					unlock()
					return router.Handled // a full roster takes no new requests
				}
			}
			it.PendingIn = true
			it.Request = string(router.Restamp(st, contact, user).Raw)
			deliver = true
		}
	case "subscribed":
		// §3.1.6: only meaningful when the user asked.
		if it.Ask {
			it.Ask = false
			it.Subscription = join(true, hasFrom(it.Subscription))
			deliver = true
		}
	case "unsubscribe":
		// §3.3.3: the contact no longer wants the user's presence.
		if hasFrom(it.Subscription) || it.PendingIn {
			sendUnavailable = hasFrom(it.Subscription)
			it.PendingIn, it.Request = false, ""
			it.Subscription = join(hasTo(it.Subscription), false)
			deliver = true
		}
	case "unsubscribed":
		// §3.2.3: the contact cancelled or denied the user's subscription.
		if hasTo(it.Subscription) || it.Ask {
			it.Ask = false
			it.Subscription = join(false, hasFrom(it.Subscription))
			deliver = true
		}
	}
	if !sameState(it, before) || (!ok && it.PendingIn) {
		if err := s.save(ctx, user, it, before, ok); s.failed(err, "inbound subscription: save", user) {
			unlock()
			return router.Failed
		}
	}
	unlock()
	if deliver {
		// To the user's available resources (§3.1.3); a request waits
		// as pending-in for a user with none.
		s.router.DeliverToAvailable(ctx, router.Restamp(st, contact, user))
	}
	if autoReply != "" {
		s.sendSubscription(ctx, user, contact, autoReply)
	}
	if sendPresence {
		s.sendPresenceTo(ctx, user, contact)
	}
	if sendUnavailable {
		s.sendUnavailableTo(ctx, user, contact)
	}
	return router.Handled
}

// exists reports whether user is a local account.
func (s *Service) exists(ctx context.Context, user jid.JID) (bool, error) {
	return s.router.AccountExists(ctx, user)
}

// sendPresenceTo sends the current presence of every available resource
// of user to contact (§3.1.5: after approving a subscription).
func (s *Service) sendPresenceTo(ctx context.Context, user, contact jid.JID) {
	for _, raw := range s.router.Presences(user) {
		s.router.Route(ctx, &router.Stanza{Kind: router.KindPresence, From: user, To: contact, Raw: router.WithTo(raw, contact)})
	}
}

// sendUnavailableTo tells contact that every resource of user is gone
// (§3.2.2, §3.3.3: after the subscription from contact ended).
func (s *Service) sendUnavailableTo(ctx context.Context, user, contact jid.JID) {
	for _, res := range s.router.AvailableResources(user) {
		st, err := router.Build(router.KindPresence, "unavailable", "", res, contact, nil)
		if err == nil {
			s.router.Route(ctx, st)
		}
	}
}

// probe answers a presence probe addressed to user (§4.3.2): a subscriber
// gets the presence of each available resource, or unavailable presence
// when there is none; anyone else learns nothing.
func (s *Service) probe(ctx context.Context, st *router.Stanza) {
	user, prober := st.To.Bare(), st.From.Bare()
	if prober.Equal(user) {
		return
	}
	// A contact a shared group shows the user to needs no lookup: the
	// group gives it the half (a login probes every such contact).
	if _, _, from := sharedHalves(s.sharedView(), user.String(), prober.String()); !from {
		it, ok, err := s.store.Get(ctx, user.String(), prober.String())
		if s.failed(err, "probe", user) {
			return // a probe is the server's own; nobody to tell
		}
		if !ok || !hasFrom(it.Subscription) {
			return
		}
	}
	presences := s.router.Presences(user)
	if len(presences) == 0 {
		if reply, err := router.Build(router.KindPresence, "unavailable", "", user, prober, nil); err == nil {
			s.router.Route(ctx, reply)
		}
		return
	}
	for _, raw := range presences {
		s.router.Route(ctx, &router.Stanza{Kind: router.KindPresence, From: user, To: st.From, Raw: router.WithTo(raw, st.From)})
	}
}

// available runs when a resource of a local user sends initial presence:
// it probes the contacts the user is subscribed to (§4.2.2) and hands the
// new resource the subscription requests that arrived while it was away.
func (s *Service) available(ctx context.Context, sess router.Session) {
	full := sess.JID()
	sum, err := s.summary(ctx, full.Bare())
	if s.failed(err, "probes and pending requests", full) {
		return
	}
	for _, contact := range sum.subscriptions {
		// The probe comes from the full JID so that the answer reaches
		// the resource that needs it.
		if st, err := router.Build(router.KindPresence, "probe", "", full, contact, nil); err == nil {
			s.router.Route(ctx, st)
		}
	}
	for _, raw := range sum.pending {
		sess.Deliver(raw)
	}
}
