package muc

import (
	"context"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// affiliation is a lasting relation of a bare JID with a room (XEP-0045
// §5.2). Privileges compare with >= from affMember up.
type affiliation uint8

const (
	affNone affiliation = iota
	affOutcast
	affMember
	affAdmin
	affOwner
)

var affNames = [...]string{"none", "outcast", "member", "admin", "owner"}

func (a affiliation) String() string { return affNames[a] }

func parseAffiliation(s string) (affiliation, bool) {
	for i, n := range affNames {
		if n == s {
			return affiliation(i), true
		}
	}
	return 0, false
}

// role is an occupant's part in the room while it is joined (XEP-0045
// §5.1), in increasing privilege.
type role uint8

const (
	roleNone role = iota
	roleVisitor
	roleParticipant
	roleModerator
)

var roleNames = [...]string{"none", "visitor", "participant", "moderator"}

func (r role) String() string { return roleNames[r] }

func parseRole(s string) (role, bool) {
	for i, n := range roleNames {
		if n == s {
			return role(i), true
		}
	}
	return 0, false
}

// affEntry is an affiliation with the reason given when it was set.
type affEntry struct {
	aff    affiliation
	reason string
	// nick is the nickname the JID has reserved in the room (XEP-0045
	// §7.12; set by an import from Openfire's ofMucMember), "" for none:
	// disco#info's x-roomuser-item node names it, and no one else may
	// take it.
	nick string
}

// occupant is one joined session. All fields are guarded by the room's
// mutex; jid, real, realStr and bare never change once it has joined
// (a nick change replaces nick, jid and from).
type occupant struct {
	nick    string
	jid     jid.JID // room@service/nick
	from    string  // jid as a string
	real    jid.JID // the session's full JID
	realStr string
	toAttr  []byte // ` to='realStr'`, for the copies sent to it
	bare    string // the session's bare JID
	role    role
	payload []byte // children of its last presence, without MUC elements

	tokens float64   // rate limiter bucket
	last   time.Time // when tokens was last refilled
}

// room is one chat room. Its state is guarded by mu; stanzas it sends
// are queued in out under mu and routed after mu is released (see
// unlockAndFlush), so that no lock is held while the router delivers
// and an error bounced back into the room cannot deadlock.
type room struct {
	svc     *Service  // immutable
	jid     jid.JID   // immutable; the room's bare JID
	jidStr  string    // immutable
	name    string    // immutable; the localpart
	creator string    // immutable; bare JID
	created time.Time // immutable

	mu        sync.Mutex
	cfg       roomConfig
	locked    bool // created and not yet configured (XEP-0045 §10.1)
	destroyed bool // removed from the service; a stanza that finds it retries
	archived  bool // the room may have an archive to forget (see forgetLocked)
	affs      map[string]affEntry
	occupants []*occupant          // in order of joining
	byNick    map[string]*occupant // by nick
	byReal    map[string]*occupant // by full JID string
	subject   string
	subjNick  string
	hist      history
	arena     []byte          // where queued stanzas are written; see enqueueLocked
	out       []router.Stanza // queued for routing
	draining  bool            // a goroutine is routing out
}

func (s *Service) newRoom(j jid.JID, creator string, created time.Time) *room {
	r := &room{
		svc: s, jid: j, jidStr: j.String(), name: j.Localpart(), creator: creator, created: created,
		cfg:    s.defaultConfig(),
		affs:   map[string]affEntry{},
		byNick: map[string]*occupant{},
		byReal: map[string]*occupant{},
	}
	r.hist.resize(r.cfg.historyLength)
	return r
}

// affOf returns the affiliation of a bare JID.
func (r *room) affOf(bare string) affiliation { return r.affs[bare].aff }

// reservedByOther reports whether nick is reserved in the room by another
// JID than bare.
func (r *room) reservedByOther(nick, bare string) bool {
	for j, e := range r.affs {
		if e.nick == nick && j != bare {
			return true
		}
	}
	return false
}

// defaultRoleLocked is the role an occupant with affiliation a gets
// (XEP-0045 §5.1.2).
func (r *room) defaultRoleLocked(a affiliation) role {
	switch a {
	case affOwner, affAdmin:
		return roleModerator
	case affMember:
		return roleParticipant
	case affOutcast:
		return roleNone
	}
	if r.cfg.moderated {
		return roleVisitor
	}
	return roleParticipant
}

// seesJID reports whether q may see occupants' real JIDs.
func (r *room) seesJID(q *occupant) bool { return r.cfg.whoisAnyone || q.role == roleModerator }

// reserveLocked makes room for n more bytes in the arena.
func (r *room) reserveLocked(n int) {
	if cap(r.arena)-len(r.arena) < n {
		r.arena = make([]byte, 0, max(n, 512))
	}
}

// toAttr is the to attribute of a stanza for to, with its leading space.
func toAttr(to string) []byte { return xmlenc.AppendAttr(nil, "to", to) }

// sendLocked queues tmpl, a stanza serialised without a to attribute,
// for the occupant q.
func (r *room) sendLocked(q *occupant, k router.Kind, typ, id string, from jid.JID, tmpl []byte) {
	r.queueLocked(k, typ, id, from, q.real, q.toAttr, tmpl)
}

// enqueueLocked is sendLocked for a recipient that need not be an
// occupant.
func (r *room) enqueueLocked(k router.Kind, typ, id string, from, to jid.JID, toStr string, tmpl []byte) {
	r.queueLocked(k, typ, id, from, to, toAttr(toStr), tmpl)
}

// queueLocked queues tmpl for to, whose to attribute is attr. Each
// recipient's copy is tmpl with attr added after the element name,
// appended to the room's arena: a fan-out reserves the bytes of all its
// copies first, so that they share one allocation. No byte handed out is
// written again (slices are capped at their end).
func (r *room) queueLocked(k router.Kind, typ, id string, from, to jid.JID, attr, tmpl []byte) {
	i := 1 + len(k.String()) // tmpl starts with '<' and the kind
	r.reserveLocked(len(tmpl) + len(attr))
	start := len(r.arena)
	a := append(r.arena, tmpl[:i]...)
	a = append(a, attr...)
	a = append(a, tmpl[i:]...)
	r.arena = a
	r.out = append(r.out, router.Stanza{Kind: k, Type: typ, ID: id, From: from, To: to, Raw: a[start:len(a):len(a)]})
}

// reserveFanoutLocked makes room for copies of tmpl to every occupant.
func (r *room) reserveFanoutLocked(tmplLen int) {
	size := 0
	for _, q := range r.occupants {
		size += tmplLen + len(q.toAttr)
	}
	r.reserveLocked(size)
	r.out = slices.Grow(r.out, len(r.occupants))
}

// unlockAndFlush releases mu and routes what is queued. Only one
// goroutine routes a room's queue at a time, in order; a stanza queued
// meanwhile (by another goroutine, or by an error the router bounces
// back into the room while delivering) is routed by the one already
// draining.
func (r *room) unlockAndFlush(ctx context.Context) {
	if r.draining || len(r.out) == 0 {
		r.mu.Unlock()
		return
	}
	r.draining = true
	ctx = context.WithoutCancel(ctx)
	for len(r.out) > 0 {
		batch := r.out
		r.out, r.arena = nil, nil
		r.mu.Unlock()
		for i := range batch {
			r.svc.router.Route(ctx, &batch[i])
		}
		r.mu.Lock()
	}
	r.draining = false
	r.mu.Unlock()
}

// presInfo describes an occupant presence the room sends.
type presInfo struct {
	typ     string // "" or "unavailable"
	aff     affiliation
	role    role
	nick    string // the new nick, with 303
	actor   string // nick of the moderator who acted
	reason  string
	codes   []int        // status codes for every recipient
	destroy *destruction // the room is being destroyed
	selfID  string       // the id of the occupant's own presence that caused this one
}

// destruction is why and where to a room was destroyed (XEP-0045 §10.9).
type destruction struct {
	alt, reason, password string
}

// presenceLocked serialises o's presence (without to). withJID adds o's
// real JID; selfCodes are status codes for o itself, written first, and
// o's own copy carries the id of the presence that caused it.
func (r *room) presenceLocked(o *occupant, p *presInfo, withJID bool, selfCodes []int) []byte {
	w := xw{b: make([]byte, 0, 192+len(o.payload)+len(p.reason))}
	id := ""
	if selfCodes != nil {
		id = p.selfID
	}
	w.header(router.KindPresence, p.typ, id, o.from)
	w.b = append(w.b, o.payload...)
	w.open("x", "xmlns", NSUser)
	j := ""
	if withJID {
		j = o.realStr
	}
	itemAttrs := []string{"affiliation", p.aff.String(), "role", p.role.String(), "jid", j, "nick", p.nick}
	if p.actor == "" && p.reason == "" {
		w.empty("item", itemAttrs...)
	} else {
		w.open("item", itemAttrs...)
		if p.actor != "" {
			w.empty("actor", "nick", p.actor)
		}
		if p.reason != "" {
			w.elem("reason", p.reason)
		}
		w.close("item")
	}
	if d := p.destroy; d != nil {
		w.open("destroy", "jid", d.alt)
		if d.reason != "" {
			w.elem("reason", d.reason)
		}
		if d.password != "" {
			w.elem("password", d.password)
		}
		w.close("destroy")
	}
	for _, c := range selfCodes {
		w.status(c)
	}
	for _, c := range p.codes {
		w.status(c)
	}
	w.close("x")
	w.close("presence")
	return w.b
}

// broadcastLocked sends o's presence p to every occupant, o included
// when it is in the room (with 110 and selfCodes). Recipients allowed to
// see real JIDs get the variant with o's.
func (r *room) broadcastLocked(o *occupant, p *presInfo, selfCodes []int) {
	var plain, full, self []byte
	size := 0
	for _, q := range r.occupants {
		var v *[]byte
		switch {
		case q == o:
			if self == nil {
				self = r.presenceLocked(o, p, true, append([]int{110}, selfCodes...))
			}
			v = &self
		case r.seesJID(q):
			if full == nil {
				full = r.presenceLocked(o, p, true, nil)
			}
			v = &full
		default:
			if plain == nil {
				plain = r.presenceLocked(o, p, false, nil)
			}
			v = &plain
		}
		size += len(*v) + len(q.toAttr)
	}
	r.reserveLocked(size)
	r.out = slices.Grow(r.out, len(r.occupants))
	for _, q := range r.occupants {
		tmpl := plain
		switch {
		case q == o:
			tmpl = self
		case r.seesJID(q):
			tmpl = full
		}
		r.sendLocked(q, router.KindPresence, p.typ, "", o.jid, tmpl)
	}
}

// presenceOfLocked is the current available presence of o.
func (r *room) presenceOfLocked(o *occupant) presInfo {
	return presInfo{aff: r.affOf(o.bare), role: o.role}
}

// errorLocked queues the error answering st (XEP-0045 errors name the
// room in by).
func (r *room) errorLocked(st *router.Stanza, e stanza.Error) {
	if st.Type == "error" {
		return
	}
	r.enqueueLocked(st.Kind, "error", st.ID, st.To, st.From, st.From.String(), errorTmpl(st, e, r.jidStr))
}

// resultLocked queues the IQ result answering st; body is its payload.
func (r *room) resultLocked(st *router.Stanza, body []byte) {
	w := xw{b: make([]byte, 0, 64+len(body))}
	w.header(router.KindIQ, "result", st.ID, st.To.String())
	w.b = append(w.b, body...)
	w.close("iq")
	r.enqueueLocked(router.KindIQ, "result", st.ID, st.To, st.From, st.From.String(), w.b)
}

// removeLocked takes o out of the room's occupants.
func (r *room) removeLocked(o *occupant) {
	if i := slices.Index(r.occupants, o); i >= 0 {
		r.occupants = slices.Delete(r.occupants, i, i+1)
	}
	if r.byNick[o.nick] == o {
		delete(r.byNick, o.nick)
	}
	delete(r.byReal, o.realStr)
	r.svc.track(o.realStr, r, false)
}

// addLocked makes o an occupant.
func (r *room) addLocked(o *occupant) {
	r.occupants = append(r.occupants, o)
	r.byNick[o.nick] = o
	r.byReal[o.realStr] = o
	r.svc.track(o.realStr, r, true)
}

// clearLocked removes every occupant, telling nobody.
func (r *room) clearLocked() {
	for _, o := range r.occupants {
		r.svc.track(o.realStr, r, false)
	}
	r.occupants = nil
	clear(r.byNick)
	clear(r.byReal)
}

// emptyLocked reports whether the room is temporary and nobody is in it,
// and if so marks it destroyed: the caller removes it from the service
// once it has released mu (see closeIfEmpty).
func (r *room) emptyLocked() bool {
	if r.cfg.persistent || len(r.occupants) > 0 || r.destroyed {
		return false
	}
	r.destroyed = true
	return true
}

// unlockFlushAndReap is unlockAndFlush, then removing the room from the
// service when it was destroyed or is a temporary room left empty.
func (r *room) unlockFlushAndReap(ctx context.Context) {
	gone := r.emptyLocked() || r.destroyed
	if gone && r.archived {
		// A temporary room that archived goes with its archive, so that
		// a new room of the same name starts without it.
		r.forgetLocked(ctx)
	}
	r.unlockAndFlush(ctx)
	if gone {
		r.svc.removeRoom(r)
	}
}
