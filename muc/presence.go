package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// joinRequest is what a presence to an occupant JID carries.
type joinRequest struct {
	muc      bool // has <x xmlns='http://jabber.org/protocol/muc'/>: a MUC join
	password string
	hist     histRequest
	payload  []byte // the other children (show, status, caps …)
}

// parsePresence reads a presence to an occupant JID.
func parsePresence(st *router.Stanza) (joinRequest, error) {
	jr := joinRequest{hist: noHistRequest}
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	err := children(st, func(d *xml.Decoder, start xml.StartElement) error {
		switch {
		case start.Name.Space == NS && start.Name.Local == "x":
			jr.muc = true
			var x struct {
				Password string `xml:"password"`
				History  *struct {
					MaxChars   string `xml:"maxchars,attr"`
					MaxStanzas string `xml:"maxstanzas,attr"`
					Seconds    string `xml:"seconds,attr"`
					Since      string `xml:"since,attr"`
				} `xml:"history"`
			}
			if err := d.DecodeElement(&x, &start); err != nil {
				return err
			}
			jr.password = x.Password
			if h := x.History; h != nil {
				jr.hist.maxChars = nonNegative(h.MaxChars)
				jr.hist.maxStanzas = nonNegative(h.MaxStanzas)
				jr.hist.seconds = nonNegative(h.Seconds)
				if t, err := time.Parse(time.RFC3339Nano, h.Since); err == nil {
					jr.hist.since = t
				}
			}
			return nil
		case start.Name.Space == NSUser && start.Name.Local == "x":
			return d.Skip()
		default:
			return copyElement(&enc, d, start)
		}
	})
	jr.payload = enc.Buf
	return jr, err
}

// nonNegative parses a history attribute; -1 when absent or invalid.
func nonNegative(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// cleanNick trims the spaces around a nick; modified reports whether it
// did (status 210).
func cleanNick(res string) (nick string, modified bool) {
	nick = strings.TrimSpace(res)
	return nick, nick != res
}

// handlePresence: joins, presence updates, nick changes and exits.
func (s *Service) handlePresence(ctx context.Context, st *router.Stanza) {
	switch st.Type {
	case "":
		s.available(ctx, st)
	case "unavailable":
		s.unavailable(ctx, st)
	case "error":
		if r := s.lookup(st.To.Localpart()); r != nil {
			r.mu.Lock()
			if o := r.byReal[st.From.String()]; o != nil && ghostCondition(stanzaErrorCondition(st)) {
				r.ghostLocked(o)
			}
			r.unlockFlushAndReap(ctx)
		}
	}
}

// available handles available presence to an occupant JID: a join, a
// presence update or a nick change.
func (s *Service) available(ctx context.Context, st *router.Stanza) {
	jr, err := parsePresence(st)
	if err != nil {
		s.reply(ctx, st, errText(stanza.Modify, stanza.BadRequest, "malformed presence"))
		return
	}
	nick, modified := cleanNick(st.To.Resourcepart())
	nickJID := st.To
	if modified && nick != "" {
		if nickJID, err = st.To.WithResource(nick); err != nil {
			nick = ""
		}
	}
	for range 8 { // a room destroyed under us is looked up again
		r := s.lookup(st.To.Localpart())
		created := false
		if r == nil {
			if nick == "" {
				s.reply(ctx, st, errText(stanza.Modify, stanza.JIDMalformed, "a nickname is required to enter a room"))
				return
			}
			r, created, err = s.createRoom(st.To.Localpart(), st.To.Bare(), st.From.Bare().String(), jr.muc)
			switch {
			case errors.Is(err, errTooManyRooms):
				s.reply(ctx, st, errText(stanza.Cancel, stanza.NotAllowed,
					"you may not create more than "+strconv.Itoa(s.opts.MaxRoomsPerUser)+" rooms"))
				return
			case err != nil:
				s.reply(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, "the service is shutting down"))
				return
			}
		}
		r.mu.Lock()
		if r.destroyed {
			r.mu.Unlock()
			continue
		}
		r.availableLocked(st, &jr, nick, nickJID, modified, created)
		r.unlockFlushAndReap(ctx)
		return
	}
	s.reply(ctx, st, errText(stanza.Wait, stanza.ResourceConstraint, "the room is being destroyed"))
}

// availableLocked handles available presence from st.From to the room.
func (r *room) availableLocked(st *router.Stanza, jr *joinRequest, nick string, nickJID jid.JID, modified, created bool) {
	realStr := st.From.String()
	if o := r.byReal[realStr]; o != nil {
		switch {
		case nick == "" || nick == o.nick:
			o.payload = jr.payload
			if jr.muc {
				r.rejoinLocked(o, jr, st.ID)
				return
			}
			p := r.presenceOfLocked(o)
			p.selfID = st.ID
			r.broadcastLocked(o, &p, nil)
		default:
			r.changeNickLocked(st, o, jr, nick, nickJID, modified)
		}
		return
	}
	if nick == "" {
		r.errorLocked(st, errText(stanza.Modify, stanza.JIDMalformed, "a nickname is required to enter a room"))
		return
	}
	bare := st.From.Bare().String()
	aff := r.affOf(bare)
	switch {
	case r.svc.isClosed():
		r.errorLocked(st, errText(stanza.Cancel, stanza.ServiceUnavailable, "the service is shutting down"))
		return
	case r.locked && aff != affOwner:
		r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "this room is locked until its owner configures it"))
		return
	case aff == affOutcast:
		r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "you are banned from this room"))
		return
	case r.cfg.membersOnly && aff < affMember:
		r.errorLocked(st, errText(stanza.Auth, stanza.RegistrationRequired, "this room is for members only"))
		return
	case r.cfg.passwordProtected && jr.password != r.cfg.password:
		r.errorLocked(st, errText(stanza.Auth, stanza.NotAuthorized, "this room needs the right password"))
		return
	case r.byNick[nick] != nil:
		r.errorLocked(st, errText(stanza.Cancel, stanza.Conflict, "that nickname is in use in this room"))
		return
	case r.reservedByOther(nick, bare):
		r.errorLocked(st, errText(stanza.Cancel, stanza.Conflict, "that nickname is reserved by a member of this room"))
		return
	case len(r.occupants) >= r.maxUsersLocked() && aff < affAdmin:
		r.errorLocked(st, errText(stanza.Wait, stanza.ServiceUnavailable, "this room is full"))
		return
	}
	now := r.svc.now()
	o := &occupant{
		nick: nick, jid: nickJID, from: nickJID.String(),
		real: st.From, realStr: realStr, toAttr: toAttr(realStr), bare: bare,
		role: r.defaultRoleLocked(aff), payload: jr.payload,
		tokens: float64(r.svc.opts.MessageBurst), last: now,
	}
	// XEP-0045 §7.2.3: the others' presence first, then the newcomer's
	// to everyone, its own last; then history and the subject.
	r.othersToLocked(o)
	r.addLocked(o)
	p := r.presenceOfLocked(o)
	p.selfID = st.ID
	r.broadcastLocked(o, &p, r.selfCodesLocked(created, modified))
	r.sendHistoryLocked(o, jr.hist)
	r.sendSubjectLocked(o)
}

// selfCodesLocked are the status codes of a newcomer's own presence
// besides 110.
func (r *room) selfCodesLocked(created, modified bool) []int {
	var codes []int
	if r.cfg.whoisAnyone {
		codes = append(codes, 100)
	}
	if created {
		codes = append(codes, 201)
	}
	if modified {
		codes = append(codes, 210)
	}
	return codes
}

// othersToLocked sends o the presence of every other occupant.
func (r *room) othersToLocked(o *occupant) {
	sees := r.seesJID(o)
	for _, q := range r.occupants {
		if q == o {
			continue
		}
		p := r.presenceOfLocked(q)
		r.sendLocked(o, router.KindPresence, "", "", q.jid, r.presenceLocked(q, &p, sees, nil))
	}
}

// rejoinLocked answers a join from a session already in the room with
// the same nick (a client that lost track of its state): it gets the
// room again as a newcomer would, and the others its updated presence.
func (r *room) rejoinLocked(o *occupant, jr *joinRequest, id string) {
	r.othersToLocked(o)
	p := r.presenceOfLocked(o)
	p.selfID = id
	r.broadcastLocked(o, &p, r.selfCodesLocked(false, false))
	r.sendHistoryLocked(o, jr.hist)
	r.sendSubjectLocked(o)
}

// changeNickLocked renames o (XEP-0045 §7.6): unavailable from the old
// nick with 303 and the new one, then available from the new nick.
func (r *room) changeNickLocked(st *router.Stanza, o *occupant, jr *joinRequest, nick string, nickJID jid.JID, modified bool) {
	if q := r.byNick[nick]; q != nil && q != o {
		r.errorLocked(st, errText(stanza.Cancel, stanza.Conflict, "that nickname is in use in this room"))
		return
	}
	if r.reservedByOther(nick, o.bare) {
		r.errorLocked(st, errText(stanza.Cancel, stanza.Conflict, "that nickname is reserved by a member of this room"))
		return
	}
	o.payload = nil
	p := presInfo{typ: "unavailable", aff: r.affOf(o.bare), role: o.role, nick: nick, codes: []int{303}}
	r.broadcastLocked(o, &p, nil)
	delete(r.byNick, o.nick)
	o.nick, o.jid, o.from = nick, nickJID, nickJID.String()
	r.byNick[nick] = o
	o.payload = jr.payload
	p = r.presenceOfLocked(o)
	p.selfID = st.ID
	var codes []int
	if modified {
		codes = []int{210}
	}
	r.broadcastLocked(o, &p, codes)
}

// unavailable handles an occupant leaving, or the router telling that
// its stream ended.
func (s *Service) unavailable(ctx context.Context, st *router.Stanza) {
	r := s.lookup(st.To.Localpart())
	if r == nil {
		return
	}
	r.mu.Lock()
	if o := r.byReal[st.From.String()]; o != nil {
		jr, _ := parsePresence(st)
		o.payload = jr.payload
		p := presInfo{typ: "unavailable", aff: r.affOf(o.bare), role: roleNone, selfID: st.ID}
		r.broadcastLocked(o, &p, nil)
		r.removeLocked(o)
	}
	r.unlockFlushAndReap(ctx)
}

// ghostCondition reports whether an error an occupant's server returned
// means the occupant is gone (XEP-0045 §18.1: delivery-related errors).
func ghostCondition(cond string) bool {
	switch stanza.Condition(cond) {
	case stanza.Gone, stanza.ItemNotFound, stanza.RecipientUnavailable, stanza.Redirect,
		stanza.RemoteServerNotFound, stanza.RemoteServerTimeout, stanza.ServiceUnavailable:
		return true
	}
	return false
}

// ghostLocked removes an occupant that cannot be reached (status 333).
func (r *room) ghostLocked(o *occupant) {
	r.removeLocked(o)
	o.payload = nil
	p := presInfo{typ: "unavailable", aff: r.affOf(o.bare), role: roleNone, codes: []int{333}}
	r.broadcastLocked(o, &p, nil)
}

// maxUsersLocked is the room's occupant limit.
func (r *room) maxUsersLocked() int { return min(r.cfg.maxUsers, r.svc.opts.MaxOccupants) }

// isClosed reports whether Shutdown has run.
func (s *Service) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}
