package muc

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// adminItem is an <item/> of a muc#admin query (XEP-0045 §8, §9, §10).
type adminItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
	Reason      string `xml:"reason"`
}

// parseAdmin reads the items of a muc#admin query.
func parseAdmin(st *router.Stanza) ([]adminItem, error) {
	var iq struct {
		Items []adminItem `xml:"query>item"`
	}
	if err := st.Decoder().Decode(&iq); err != nil {
		return nil, err
	}
	return iq.Items, nil
}

// actorLocked is who sends a muc#admin request: its affiliation, its
// role (that of its occupant, or what its affiliation would give it when
// it is not joined) and its nick in the room ("" when not joined).
func (r *room) actorLocked(st *router.Stanza) (aff affiliation, rl role, nick string) {
	aff = r.affOf(st.From.Bare().String())
	if o := r.byReal[st.From.String()]; o != nil {
		return aff, o.role, o.nick
	}
	if aff >= affAdmin {
		rl = roleModerator
	}
	return aff, rl, ""
}

// adminGetLocked returns an affiliation list (admins and owners) or a
// role list (moderators).
func (r *room) adminGetLocked(st *router.Stanza) {
	items, err := parseAdmin(st)
	if err != nil || len(items) != 1 || (items[0].Affiliation == "") == (items[0].Role == "") {
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "ask for one affiliation or one role"))
		return
	}
	actorAff, actorRole, _ := r.actorLocked(st)
	w := xw{}
	w.open("query", "xmlns", NSAdmin)
	if it := items[0]; it.Affiliation != "" {
		a, ok := parseAffiliation(it.Affiliation)
		switch {
		case !ok || a == affNone:
			r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "no such affiliation list"))
			return
		case actorAff < affAdmin:
			r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only admins and owners may see affiliation lists"))
			return
		}
		var jids []string
		for j, e := range r.affs {
			if e.aff == a {
				jids = append(jids, j)
			}
		}
		slices.Sort(jids)
		for _, j := range jids {
			if reason := r.affs[j].reason; reason != "" {
				w.open("item", "affiliation", a.String(), "jid", j)
				w.elem("reason", reason)
				w.close("item")
			} else {
				w.empty("item", "affiliation", a.String(), "jid", j)
			}
		}
	} else {
		rl, ok := parseRole(it.Role)
		switch {
		case !ok || rl == roleNone:
			r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "no such role list"))
			return
		case actorRole != roleModerator:
			r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only moderators may see role lists"))
			return
		}
		for _, q := range r.occupants {
			if q.role == rl {
				w.empty("item", "nick", q.nick, "role", rl.String(), "affiliation", r.affOf(q.bare).String(), "jid", q.realStr)
			}
		}
	}
	w.close("query")
	r.resultLocked(st, w.b)
}

// adminChange is one checked item of a muc#admin set.
type adminChange struct {
	item   adminItem
	isAff  bool
	aff    affiliation
	target string // bare JID, for affiliation changes
	role   role
	occ    *occupant // for role changes
}

// adminSetLocked changes affiliations and roles. Every item is checked
// before any is applied.
func (r *room) adminSetLocked(ctx context.Context, st *router.Stanza) {
	items, err := parseAdmin(st)
	if err != nil || len(items) == 0 {
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "malformed muc#admin request"))
		return
	}
	actorAff, actorRole, actorNick := r.actorLocked(st)
	actorBare := st.From.Bare().String()
	owners := 0
	for _, e := range r.affs {
		if e.aff == affOwner {
			owners++
		}
	}
	changes := make([]adminChange, 0, len(items))
	for _, it := range items {
		c, e := r.checkChangeLocked(it, actorAff, actorRole, actorBare, &owners)
		if e != nil {
			r.errorLocked(st, *e)
			return
		}
		changes = append(changes, c)
	}
	for _, c := range changes {
		if c.isAff {
			if err := r.setAffiliationLocked(ctx, c.target, c.aff, c.item.Reason, actorNick); err != nil {
				r.errorLocked(st, errText(stanza.Wait, stanza.InternalServerError, ""))
				return
			}
			continue
		}
		r.setRoleLocked(c.occ, c.role, c.item.Reason, actorNick)
	}
	r.resultLocked(st, nil)
}

// checkChangeLocked applies the permission tables of XEP-0045 §5.1.2 and
// §5.2.1 to one item; owners counts the room's owners as the changes
// checked so far leave them.
func (r *room) checkChangeLocked(it adminItem, actorAff affiliation, actorRole role, actorBare string, owners *int) (adminChange, *stanza.Error) {
	fail := func(typ stanza.ErrorType, cond stanza.Condition, text string) (adminChange, *stanza.Error) {
		e := errText(typ, cond, text)
		return adminChange{}, &e
	}
	c := adminChange{item: it}
	if (it.Affiliation == "") == (it.Role == "") {
		return fail(stanza.Modify, stanza.BadRequest, "an item changes either an affiliation or a role")
	}
	if it.Affiliation != "" {
		c.isAff = true
		a, ok := parseAffiliation(it.Affiliation)
		if !ok {
			return fail(stanza.Modify, stanza.BadRequest, "no such affiliation")
		}
		c.aff = a
		switch {
		case it.JID != "":
			j, err := jid.Parse(it.JID)
			if err != nil {
				return fail(stanza.Modify, stanza.JIDMalformed, "invalid jid")
			}
			c.target = j.Bare().String()
		case it.Nick != "":
			o := r.byNick[it.Nick]
			if o == nil {
				return fail(stanza.Cancel, stanza.ItemNotFound, "no such occupant")
			}
			c.target = o.bare
		default:
			return fail(stanza.Modify, stanza.BadRequest, "an affiliation item needs a jid")
		}
		cur := r.affOf(c.target)
		switch {
		case actorAff < affAdmin:
			return fail(stanza.Auth, stanza.Forbidden, "only admins and owners may change affiliations")
		case (a == affOwner || a == affAdmin) && actorAff != affOwner:
			return fail(stanza.Auth, stanza.Forbidden, "only owners may grant or revoke admin and owner")
		case (cur == affOwner || cur == affAdmin) && actorAff != affOwner:
			return fail(stanza.Cancel, stanza.NotAllowed, "admins may not change the affiliation of an admin or owner")
		case cur == affOwner && a != affOwner && *owners <= 1:
			return fail(stanza.Cancel, stanza.Conflict, "a room needs an owner")
		}
		if cur == affOwner && a != affOwner {
			*owners--
		} else if cur != affOwner && a == affOwner {
			*owners++
		}
		return c, nil
	}
	rl, ok := parseRole(it.Role)
	if !ok {
		return fail(stanza.Modify, stanza.BadRequest, "no such role")
	}
	c.role = rl
	o := r.byNick[it.Nick]
	if o == nil && it.JID != "" {
		if j, err := jid.Parse(it.JID); err == nil {
			o = r.byReal[j.String()]
		}
	}
	if o == nil {
		return fail(stanza.Cancel, stanza.ItemNotFound, "no such occupant")
	}
	c.occ = o
	targetAff := r.affOf(o.bare)
	switch {
	case actorRole != roleModerator:
		return fail(stanza.Auth, stanza.Forbidden, "only moderators may change roles")
	case targetAff == affOwner || (targetAff == affAdmin && actorAff != affOwner):
		return fail(stanza.Cancel, stanza.NotAllowed, "the role of an admin or owner follows its affiliation")
	case (rl == roleModerator || o.role == roleModerator) && actorAff < affAdmin:
		return fail(stanza.Cancel, stanza.NotAllowed, "only admins and owners may grant or revoke moderator")
	}
	return c, nil
}

// setAffiliationLocked sets the affiliation of bare, stores it when the
// room persists, and updates its occupants: banned ones leave with 301,
// those no longer members of a members-only room with 321, the others
// get their new affiliation and role in a presence to everyone.
func (r *room) setAffiliationLocked(ctx context.Context, bare string, a affiliation, reason, actor string) error {
	if r.cfg.persistent && r.svc.store != nil {
		sctx, cancel := storeCtx(ctx)
		err := r.svc.store.SetAffiliation(sctx, r.jidStr, storage.MUCAffiliation{JID: bare, Affiliation: a.String(), Reason: reason})
		cancel()
		if err != nil {
			r.svc.log.Error("could not store affiliation", "room", r.jidStr, "err", err)
			return err
		}
	}
	if a == affNone {
		delete(r.affs, bare)
	} else {
		// A reserved nick stays with the JID while it is affiliated
		// (storage keeps it likewise).
		r.affs[bare] = affEntry{aff: a, reason: reason, nick: r.affs[bare].nick}
	}
	var affected []*occupant
	for _, q := range r.occupants {
		if q.bare == bare {
			affected = append(affected, q)
		}
	}
	for _, q := range affected {
		switch {
		case a == affOutcast:
			r.removeWithLocked(q, presInfo{aff: affOutcast, actor: actor, reason: reason, codes: []int{301}})
		case r.cfg.membersOnly && a < affMember:
			r.removeWithLocked(q, presInfo{aff: a, actor: actor, reason: reason, codes: []int{321}})
		default:
			q.role = r.defaultRoleLocked(a)
			p := presInfo{aff: a, role: q.role, reason: reason}
			r.broadcastLocked(q, &p, nil)
		}
	}
	return nil
}

// setRoleLocked gives o the role rl; role none kicks it (307).
func (r *room) setRoleLocked(o *occupant, rl role, reason, actor string) {
	if rl == roleNone {
		r.removeWithLocked(o, presInfo{aff: r.affOf(o.bare), actor: actor, reason: reason, codes: []int{307}})
		return
	}
	o.role = rl
	p := presInfo{aff: r.affOf(o.bare), role: rl, reason: reason}
	r.broadcastLocked(o, &p, nil)
}

// removeWithLocked removes o from the room, telling everyone, o included,
// with the unavailable presence p (role none).
func (r *room) removeWithLocked(o *occupant, p presInfo) {
	p.typ, p.role = "unavailable", roleNone
	o.payload = nil
	r.broadcastLocked(o, &p, nil)
	r.removeLocked(o)
}
