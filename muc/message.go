package muc

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// msgInfo is what the room needs to know of a message's children.
type msgInfo struct {
	body, hasSubject bool
	subject          string
	user             *userX // <x xmlns='http://jabber.org/protocol/muc#user'/>
	ownStanzaID      bool   // has a <stanza-id/> claiming to be the room's
}

// userX is the muc#user element of a message to the room: mediated
// invitations and declines (XEP-0045 §7.8.2).
type userX struct {
	Invites []struct {
		To       string    `xml:"to,attr"`
		Reason   string    `xml:"reason"`
		Continue *struct{} `xml:"continue"`
	} `xml:"invite"`
	Declines []struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"reason"`
	} `xml:"decline"`
}

// parseMessage reads the children of a message to the room that matter
// to it.
func (r *room) parseMessage(st *router.Stanza) (msgInfo, error) {
	var m msgInfo
	err := children(st, func(d *xml.Decoder, start xml.StartElement) error {
		switch {
		case start.Name.Space == stanza.NSClient && start.Name.Local == "body":
			m.body = true
		case start.Name.Space == stanza.NSClient && start.Name.Local == "subject":
			m.hasSubject = true
			s, err := textOf(d, start)
			m.subject = s
			return err
		case start.Name.Space == NSUser && start.Name.Local == "x":
			m.user = &userX{}
			return d.DecodeElement(m.user, &start)
		case r.isOwnStanzaID(start):
			m.ownStanzaID = true
		}
		return d.Skip()
	})
	return m, err
}

// handleMessage: group chat, private messages, invitations.
func (s *Service) handleMessage(ctx context.Context, st *router.Stanza) {
	r := s.lookup(st.To.Localpart())
	if r == nil {
		if st.Type != "error" && st.Type != "headline" {
			s.reply(ctx, st, errText(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		}
		return
	}
	r.mu.Lock()
	if r.destroyed {
		r.mu.Unlock()
		if st.Type != "error" {
			s.reply(ctx, st, errText(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		}
		return
	}
	var keep *storage.MUCMessage
	keepN := 0
	if st.To.Resourcepart() == "" {
		keep = r.roomMessageLocked(ctx, st)
		keepN = r.cfg.historyLength
	} else {
		r.privateMessageLocked(st)
	}
	r.unlockFlushAndReap(ctx)
	if keep != nil {
		// Outside the lock: rows carry their seq, so that writes of
		// one room may land in any order.
		sctx, cancel := storeCtx(ctx)
		defer cancel()
		if err := s.store.AppendHistory(sctx, r.jidStr, *keep, keepN); err != nil {
			s.log.Warn("could not store room history", "room", r.jidStr, "err", err)
		}
	}
}

// roomMessageLocked handles a message to the room's bare JID. It returns
// the history entry to store, if any.
func (r *room) roomMessageLocked(ctx context.Context, st *router.Stanza) *storage.MUCMessage {
	o := r.byReal[st.From.String()]
	switch st.Type {
	case "error":
		if o != nil && ghostCondition(stanzaErrorCondition(st)) {
			r.ghostLocked(o)
		}
		return nil
	case "headline":
		return nil
	}
	m, err := r.parseMessage(st)
	if err != nil {
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "malformed message"))
		return nil
	}
	if st.Type != "groupchat" {
		if m.user != nil && (len(m.user.Invites) > 0 || len(m.user.Declines) > 0) {
			r.inviteLocked(ctx, st, o, m.user)
			return nil
		}
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "messages to a room are of type groupchat"))
		return nil
	}
	switch {
	case o == nil:
		r.errorLocked(st, errText(stanza.Modify, stanza.NotAcceptable, "you are not in this room"))
		return nil
	case o.role < roleParticipant:
		r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "visitors may not speak in this moderated room"))
		return nil
	case !r.allowLocked(o):
		r.errorLocked(st, errText(stanza.Wait, stanza.ResourceConstraint, "you are sending messages too fast"))
		return nil
	}
	in := inner(st.Raw)
	if m.ownStanzaID {
		// XEP-0359 §3.1: only the room stamps its stanza ids; a forged
		// one never reaches the occupants, whether the room archives or
		// not.
		if in, err = r.withoutOwnStanzaIDs(st); err != nil {
			r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "malformed message"))
			return nil
		}
	}
	if m.hasSubject && !m.body {
		r.subjectLocked(ctx, st, o, m.subject, in)
		return nil
	}
	tmpl := r.reflectLocked(st.ID, o, in, m.body && r.archivesLocked())
	if !m.body || len(r.hist.buf) == 0 {
		return nil
	}
	e := r.hist.add(histEntry{
		id: st.ID, from: o.jid, nick: o.nick, sender: o.realStr, stamp: r.svc.now(),
		// The children as reflected: tmpl is never written again.
		payload: inner(tmpl),
	})
	if !r.cfg.persistent || r.svc.store == nil {
		return nil
	}
	return &storage.MUCMessage{Seq: e.seq, ID: e.id, Nick: e.nick, Sender: e.sender, Stamp: e.stamp, Payload: e.payload}
}

// reflectLocked sends a group chat message of o, whose children are in,
// to every occupant, o included, from o's occupant JID with the same id
// (XEP-0045 §7.4). It is serialised once; each copy only adds its
// recipient's to. With archive, the message is archived first and every
// copy carries the stanza id the archive gave (XEP-0313 §6, XEP-0359). It
// returns the serialised message (without to).
func (r *room) reflectLocked(id string, o *occupant, in []byte, archive bool) []byte {
	w := xw{b: make([]byte, 0, 64+len(id)+len(o.from)+len(in))}
	w.header(router.KindMessage, "groupchat", id, o.from)
	w.b = append(w.b, in...)
	w.close("message")
	tmpl := w.b
	if archive {
		if sid := r.archiveLocked(o, tmpl); sid != "" {
			tmpl = r.withStanzaID(tmpl, sid)
		}
	}
	r.reserveFanoutLocked(len(tmpl))
	for _, q := range r.occupants {
		r.sendLocked(q, router.KindMessage, "groupchat", id, o.jid, tmpl)
	}
	return tmpl
}

// withStanzaID returns a copy of msg, a serialised message, with the
// room's <stanza-id/> of id added as its last child. msg is not modified.
func (r *room) withStanzaID(msg []byte, id string) []byte {
	const end = "</message>"
	w := xw{b: make([]byte, 0, len(msg)+len(r.jidStr)+len(id)+64)}
	w.b = append(w.b, msg[:len(msg)-len(end)]...)
	w.empty("stanza-id", "xmlns", NSSID, "by", r.jidStr, "id", id)
	w.close("message")
	return w.b
}

// subjectLocked changes the subject (XEP-0045 §8.1): moderators may, and
// participants when the room lets them.
func (r *room) subjectLocked(ctx context.Context, st *router.Stanza, o *occupant, subject string, in []byte) {
	if o.role != roleModerator && !(r.cfg.changeSubject && o.role >= roleParticipant) {
		r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only moderators may change the subject of this room"))
		return
	}
	if r.cfg.persistent && r.svc.store != nil {
		sctx, cancel := storeCtx(ctx)
		err := r.svc.store.SetSubject(sctx, r.jidStr, subject, o.nick)
		cancel()
		if err != nil {
			r.svc.log.Error("could not store room subject", "room", r.jidStr, "err", err)
			r.errorLocked(st, errText(stanza.Wait, stanza.InternalServerError, ""))
			return
		}
	}
	r.subject, r.subjNick = subject, o.nick
	r.reflectLocked(st.ID, o, in, false)
}

// allowLocked takes one message from o's rate bucket; false when it is
// empty.
func (r *room) allowLocked(o *occupant) bool {
	rate := r.svc.opts.MessagesPerSecond
	if rate <= 0 {
		return true
	}
	now := r.svc.now()
	o.tokens = min(float64(r.svc.opts.MessageBurst), o.tokens+now.Sub(o.last).Seconds()*float64(rate))
	o.last = now
	if o.tokens < 1 {
		return false
	}
	o.tokens--
	return true
}

// privateMessageLocked delivers a message to an occupant JID (XEP-0045
// §7.5) from the sender's occupant JID, with a muc#user element.
func (r *room) privateMessageLocked(st *router.Stanza) {
	o := r.byReal[st.From.String()]
	if st.Type == "error" {
		if o != nil && ghostCondition(stanzaErrorCondition(st)) {
			r.ghostLocked(o)
		}
		return
	}
	to := r.byNick[st.To.Resourcepart()]
	switch {
	case o == nil:
		r.errorLocked(st, errText(stanza.Modify, stanza.NotAcceptable, "you are not in this room"))
	case st.Type == "groupchat":
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "a private message is not of type groupchat"))
	case to == nil:
		r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "no such occupant"))
	case !r.pmAllowedLocked(o):
		r.errorLocked(st, errText(stanza.Cancel, stanza.NotAllowed, "private messages are not allowed in this room"))
	case !r.allowLocked(o):
		r.errorLocked(st, errText(stanza.Wait, stanza.ResourceConstraint, "you are sending messages too fast"))
	default:
		in := inner(st.Raw)
		w := xw{b: make([]byte, 0, 128+len(in))}
		w.header(router.KindMessage, st.Type, st.ID, o.from)
		w.b = append(w.b, in...)
		w.empty("x", "xmlns", NSUser)
		w.close("message")
		r.sendLocked(to, router.KindMessage, st.Type, st.ID, o.jid, w.b)
	}
}

// pmAllowedLocked applies muc#roomconfig_allowpm to o.
func (r *room) pmAllowedLocked(o *occupant) bool {
	switch r.cfg.allowPM {
	case "anyone":
		return true
	case "participants":
		return o.role >= roleParticipant
	case "moderators":
		return o.role == roleModerator
	}
	return false
}

// maxInvites bounds the invitations and declines of one message.
const maxInvites = 20

// inviteLocked relays mediated invitations and declines (XEP-0045
// §7.8.2). In a members-only room only admins and owners may invite, and
// the invitee becomes a member.
func (r *room) inviteLocked(ctx context.Context, st *router.Stanza, o *occupant, x *userX) {
	if len(x.Invites)+len(x.Declines) > maxInvites {
		r.errorLocked(st, errText(stanza.Modify, stanza.NotAcceptable, "too many invitations in one message"))
		return
	}
	if len(x.Invites) > 0 {
		switch {
		case o == nil:
			r.errorLocked(st, errText(stanza.Modify, stanza.NotAcceptable, "only occupants may invite"))
			return
		case r.cfg.membersOnly && r.affOf(o.bare) < affAdmin:
			r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only admins may invite to this members-only room"))
			return
		case !r.allowLocked(o):
			r.errorLocked(st, errText(stanza.Wait, stanza.ResourceConstraint, "you are sending messages too fast"))
			return
		}
	}
	type relay struct {
		to     jid.JID
		invite bool
		reason string
		cont   bool
	}
	var out []relay
	for _, inv := range x.Invites {
		to, err := jid.Parse(inv.To)
		if err != nil {
			r.errorLocked(st, errText(stanza.Modify, stanza.JIDMalformed, "invalid invitee address"))
			return
		}
		out = append(out, relay{to: to, invite: true, reason: inv.Reason, cont: inv.Continue != nil})
	}
	for _, dec := range x.Declines {
		to, err := jid.Parse(dec.To)
		if err != nil {
			r.errorLocked(st, errText(stanza.Modify, stanza.JIDMalformed, "invalid address to decline to"))
			return
		}
		out = append(out, relay{to: to, reason: dec.Reason})
	}
	from := st.From.String()
	for _, rl := range out {
		var w xw
		w.header(router.KindMessage, "", st.ID, r.jidStr)
		if rl.invite {
			body := st.From.Bare().String() + " invites you to the room " + r.jidStr
			if rl.reason != "" {
				body += ": " + rl.reason
			}
			w.elem("body", body)
		}
		w.open("x", "xmlns", NSUser)
		el := "decline"
		if rl.invite {
			el = "invite"
		}
		w.open(el, "from", from)
		if rl.reason != "" {
			w.elem("reason", rl.reason)
		}
		if rl.cont {
			w.empty("continue")
		}
		w.close(el)
		if rl.invite && r.cfg.passwordProtected {
			w.elem("password", r.cfg.password)
		}
		w.close("x")
		w.close("message")
		if rl.invite && r.cfg.membersOnly {
			bare := rl.to.Bare().String()
			if r.affOf(bare) == affNone {
				if err := r.setAffiliationLocked(ctx, bare, affMember, "", o.nick); err != nil {
					r.errorLocked(st, errText(stanza.Wait, stanza.InternalServerError, ""))
					return
				}
			}
		}
		r.enqueueLocked(router.KindMessage, "", st.ID, r.jid, rl.to, rl.to.String(), w.b)
	}
}
