package roster

import (
	"context"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/storage"
)

// The methods below implement pep.Roster: what PEP's access models and
// notifications read of rosters. They come from the summary of an online
// account (cache.go) where it can, and a lookup of one row otherwise.

// Relation returns contact's subscription in owner's roster ("none",
// "to", "from", "both"; "" when contact is not in it) and its groups.
func (s *Service) Relation(ctx context.Context, owner, contact jid.JID) (subscription string, groups []string, err error) {
	owner, contact = owner.Bare(), contact.Bare()
	if sum := s.cached(owner); sum != nil {
		if r, ok := sum.relations[contact.String()]; ok {
			return r.subscription, r.groups, nil
		}
	}
	it, ok, err := s.store.Get(ctx, owner.String(), contact.String())
	if err != nil {
		return "", nil, storeErr("relation", err)
	}
	if !ok {
		it = storage.RosterItem{Contact: contact.String(), Subscription: "none"}
	}
	it = overlay(s.sharedView(), owner.String(), it)
	if !it.Visible {
		return "", nil, nil
	}
	return it.Subscription, it.Groups, nil
}

// SubscribedTo returns the bare JIDs whose presence user receives
// (subscription to or both). The slice is shared: callers only read it.
func (s *Service) SubscribedTo(ctx context.Context, user jid.JID) ([]jid.JID, error) {
	sum, err := s.summary(ctx, user.Bare())
	if err != nil {
		return nil, err
	}
	return sum.subscriptions, nil
}

// Subscribers returns the bare JIDs that receive user's presence
// (subscription from or both). The slice is shared: callers only read it.
func (s *Service) Subscribers(ctx context.Context, user jid.JID) ([]jid.JID, error) {
	sum, err := s.summary(ctx, user.Bare())
	if err != nil {
		return nil, err
	}
	return sum.subscribers, nil
}

// cached returns user's summary if it is cached, without loading it.
func (s *Service) cached(user jid.JID) *summary {
	key := user.String()
	sh := &s.cache[s.stripe(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}
