package roster

import (
	"context"
	"maps"
	"slices"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Shared roster groups. An administrator's groups put contacts in users'
// rosters with subscriptions nobody asked for (package sharedgroups): a
// user "sees" a contact when the contact is in a group shown to the user,
// and then receives the contact's presence (the "to" half of a
// subscription); the contact has the "from" half when it is the contact
// who sees the user. These halves are never stored: they are laid over the
// stored items wherever the roster is read (overlay), so that an
// administrator's change needs no write to any roster, and a user's own
// name or groups for such a contact are kept as a stored item beside them.

// SharedView is the shared roster groups at one version; package
// sharedgroups' View implements it. Users and contacts are bare JIDs.
type SharedView interface {
	// Contacts returns whom user sees, each with the groups it appears
	// under.
	Contacts(user string) map[string][]string
	// Groups returns the groups under which user sees contact; nil when
	// user does not see it.
	Groups(user, contact string) []string
	// Viewers returns who sees user; everybody means every account.
	Viewers(user string) (viewers []string, everybody bool)
	// Version changes with every change to the groups; 0 when there
	// never were any.
	Version() int64
}

// WithShared makes s serve the shared roster groups current returns; it
// must be called before Register.
func (s *Service) WithShared(current func() SharedView) *Service {
	s.shared = current
	return s
}

func (s *Service) sharedView() SharedView {
	if s.shared == nil {
		return nil
	}
	return s.shared()
}

// sharedHalves returns what shared groups give the pair: the groups
// under which user sees contact, whether it does (to), and whether contact
// sees user (from).
func sharedHalves(v SharedView, user, contact string) (groups []string, to, from bool) {
	if v == nil {
		return nil, false, false
	}
	groups = v.Groups(user, contact)
	return groups, len(groups) > 0, len(v.Groups(contact, user)) > 0
}

// overlay lays the shared groups over a stored item of user's roster (or
// a zero item naming the contact).
func overlay(v SharedView, user string, it storage.RosterItem) storage.RosterItem {
	groups, to, from := sharedHalves(v, user, it.Contact)
	if !to && !from {
		return it
	}
	if to {
		it.Visible = true
		it.Ask = false // nothing left to ask for
		it.Groups = union(it.Groups, groups)
	}
	it.Subscription = join(hasTo(it.Subscription) || to, hasFrom(it.Subscription) || from)
	return it
}

// union returns the sorted union of two sorted lists.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// version is the roster version clients see (XEP-0237): the stored
// counter, and the version of the shared groups sv when there are any, so
// that a change to the groups also makes clients fetch the roster again.
// The caller reads the view once for the items and the version.
func version(sv SharedView, cur int64) string {
	v := strconv.FormatInt(cur, 10)
	if sv != nil && sv.Version() > 0 {
		v += "-" + strconv.FormatInt(sv.Version(), 10)
	}
	return v
}

// withShared adds to items (user's visible stored items) the contacts only
// shared groups put there, and lays the groups over the rest.
func withShared(v SharedView, user string, items []storage.RosterItem) []storage.RosterItem {
	if v == nil {
		return items
	}
	contacts := v.Contacts(user)
	for i, it := range items {
		items[i] = overlay(v, user, it)
		delete(contacts, it.Contact)
	}
	for _, c := range slices.Sorted(maps.Keys(contacts)) {
		items = append(items, overlay(v, user, storage.RosterItem{Contact: c, Subscription: "none"}))
	}
	return items
}

// sharedRemove refuses to remove a contact a shared group puts in the
// roster: the administrator manages it.
func sharedRemove(v SharedView, user, contact string) error {
	if groups, to, _ := sharedHalves(v, user, contact); to {
		return router.ErrorText(stanza.Cancel, stanza.NotAllowed, "this contact is in the shared group "+groups[0]+", which an administrator manages")
	}
	return nil
}

// sharedSubscription tells whether a subscription stanza of type typ
// between user and contact is about a half shared groups already give, and
// is then taken here: such halves cannot be asked for, approved or
// cancelled. outbound is true for a stanza user sent to contact.
func (s *Service) sharedSubscription(ctx context.Context, typ string, user, contact jid.JID, outbound bool) bool {
	_, to, from := sharedHalves(s.sharedView(), user.String(), contact.String())
	if !to && !from {
		return false
	}
	switch {
	case outbound && typ == "subscribe" && to:
		s.sendPresenceTo(ctx, contact, user) // what a granted request brings
		return true
	case outbound && (typ == "subscribed" || typ == "unsubscribed") && from:
		// The answer to a request the contact made before a group gave
		// it the half: the request is settled, whatever the answer.
		s.settlePending(ctx, user, contact)
		return true
	case outbound && typ == "unsubscribe" && to:
		return true
	case !outbound && typ == "subscribe" && from:
		s.sendSubscription(ctx, user, contact, "subscribed") // §3.1.3: already subscribed
		return true
	case !outbound && (typ == "unsubscribe" && from || (typ == "subscribed" || typ == "unsubscribed") && to):
		return true
	}
	return false
}

// settlePending clears a stored subscription request of contact to user,
// which a shared group has made moot.
func (s *Service) settlePending(ctx context.Context, user, contact jid.JID) {
	defer s.lock(user)()
	it, ok, err := s.store.Get(ctx, user.String(), contact.String())
	if s.failed(err, "shared subscription: get", user) || !ok || !it.PendingIn {
		return
	}
	before := it
	it.PendingIn, it.Request = false, ""
	s.failed(s.save(ctx, user, it, before, true), "shared subscription: save", user)
}

// addShared lays the shared groups over a summary being built for user.
func addShared(v SharedView, user jid.JID, sum *summary) {
	if v == nil {
		return
	}
	u := user.String()
	seen := make(map[string]bool, len(sum.subscriptions))
	for _, j := range sum.subscriptions {
		seen[j.String()] = true
	}
	for c, groups := range v.Contacts(u) {
		cj, err := jid.Parse(c)
		if err != nil {
			continue
		}
		if !seen[c] {
			sum.subscriptions = append(sum.subscriptions, cj)
		}
		r := sum.relations[c]
		r.subscription = join(true, hasFrom(r.subscription) || len(v.Groups(c, u)) > 0)
		r.groups = union(r.groups, groups)
		sum.relations[c] = r
	}
	viewers, everybody := v.Viewers(u)
	clear(seen)
	for _, j := range sum.subscribers {
		seen[j.String()] = true
	}
	for _, c := range viewers {
		if seen[c] {
			continue
		}
		if cj, err := jid.Parse(c); err == nil {
			sum.subscribers = append(sum.subscribers, cj)
		}
		if r, ok := sum.relations[c]; ok {
			r.subscription = join(hasTo(r.subscription), true)
			sum.relations[c] = r
		}
	}
	sum.everybody = everybody
}

// SharedChanged brings online users up to date after the shared groups
// changed from old to the current view: every summary is dropped, and each
// user who fetched the roster gets a push for each contact whose shared
// groups changed, and the presence of contacts it now sees (unavailable
// presence from those it no longer does).
func (s *Service) SharedChanged(ctx context.Context, old SharedView) {
	for i := range s.cache {
		sh := &s.cache[i]
		sh.mu.Lock()
		sh.gen++
		clear(sh.m)
		sh.mu.Unlock()
	}
	cur := s.sharedView()
	if cur == nil {
		return
	}
	s.mu.Lock()
	users := slices.Collect(maps.Keys(s.interested))
	s.mu.Unlock()
	for _, u := range users {
		user, err := jid.Parse(u)
		if err != nil {
			continue
		}
		s.sharedChangedFor(ctx, user, old, cur)
	}
}

// sharedChangedFor pushes to user what the change from old to cur changed
// in its roster, under the account's lock, so that a roster set cannot
// interleave its push with these.
func (s *Service) sharedChangedFor(ctx context.Context, user jid.JID, old, cur SharedView) {
	u := user.String()
	before, after := old.Contacts(u), cur.Contacts(u)
	var changed []string
	for c, g := range after {
		if !slices.Equal(before[c], g) {
			changed = append(changed, c)
		}
	}
	for c := range before {
		if _, ok := after[c]; !ok {
			changed = append(changed, c)
		}
	}
	if len(changed) == 0 {
		return
	}
	defer s.lock(user)()
	items, ver, err := s.store.Items(ctx, u)
	if s.failed(err, "shared groups changed", user) {
		return
	}
	stored := make(map[string]storage.RosterItem, len(items))
	for _, it := range items {
		stored[it.Contact] = it
	}
	for _, c := range changed {
		it, ok := stored[c]
		if !ok {
			it = storage.RosterItem{Contact: c, Subscription: "none"}
		}
		merged := overlay(cur, u, it)
		s.push(ctx, user, it, !merged.Visible, ver)
		contact, err := jid.Parse(c)
		if err != nil {
			continue
		}
		_, sees := after[c]
		_, saw := before[c]
		switch {
		case sees && !saw:
			s.sendPresenceTo(ctx, contact, user)
		case saw && !sees && !hasTo(it.Subscription):
			s.sendUnavailableTo(ctx, contact, user)
		}
	}
}
