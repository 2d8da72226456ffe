package muc

import (
	"context"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// handleIQ: queries to a room, and IQs between occupants.
func (s *Service) handleIQ(ctx context.Context, st *router.Stanza) {
	request := st.Type == "get" || st.Type == "set"
	r := s.lookup(st.To.Localpart())
	if r == nil {
		if request {
			s.reply(ctx, st, errText(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		}
		return
	}
	r.mu.Lock()
	archive := false
	switch {
	case r.destroyed:
		if request {
			r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		}
	case st.To.Resourcepart() != "":
		r.occupantIQLocked(st)
	case request:
		archive = r.roomIQLocked(ctx, st)
	}
	r.unlockFlushAndReap(ctx)
	if archive {
		// The archive reads storage: not with the room's mutex held.
		s.queryArchive(ctx, r.jid, st)
	}
}

// roomIQLocked answers an IQ request to the room's bare JID, except an
// archive query the sender may make: then it returns true, and the
// caller has the archive answer once the room's mutex is released.
func (r *room) roomIQLocked(ctx context.Context, st *router.Stanza) (archive bool) {
	get := st.Type == "get"
	switch p := st.Payload; {
	case r.svc.opts.Archive != nil && isArchiveQuery(st):
		if e := r.archiveAccessLocked(st); e != nil {
			r.errorLocked(st, *e)
			return false
		}
		return true
	case get && p.Space == NSInfo && p.Local == "query":
		r.infoLocked(st)
	case get && p.Space == NSItems && p.Local == "query":
		r.resultLocked(st, []byte("<query xmlns='"+NSItems+"'/>"))
	case p.Space == NSAdmin && p.Local == "query":
		if get {
			r.adminGetLocked(st)
		} else {
			r.adminSetLocked(ctx, st)
		}
	case p.Space == NSOwner && p.Local == "query":
		if get {
			r.ownerGetLocked(st)
		} else {
			r.ownerSetLocked(ctx, st)
		}
	case get && p.Space == NSPing && p.Local == "ping":
		r.resultLocked(st, nil)
	default:
		r.errorLocked(st, errText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	}
	return false
}

// occupantIQLocked handles an IQ to an occupant JID. The service answers
// an occupant's ping to its own occupant JID (XEP-0410), and refuses one
// from a session that is not joined with not-acceptable. Other requests
// between occupants are relayed from the sender's occupant JID to the
// addressee's real JID, and the answers back the same way, with the id
// unchanged: the answer's to names the asker's occupant JID.
func (r *room) occupantIQLocked(st *router.Stanza) {
	o := r.byReal[st.From.String()]
	to := r.byNick[st.To.Resourcepart()]
	if st.Type == "result" || st.Type == "error" {
		if o != nil && to != nil {
			r.relayIQLocked(st, o, to)
		}
		return
	}
	switch {
	case o == nil:
		r.errorLocked(st, errText(stanza.Cancel, stanza.NotAcceptable, "you are not in this room"))
	case to == o && st.Type == "get" && st.Payload.Space == NSPing && st.Payload.Local == "ping":
		r.resultLocked(st, nil)
	case to == nil:
		r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "no such occupant"))
	default:
		r.relayIQLocked(st, o, to)
	}
}

// relayIQLocked forwards an IQ of o to the occupant to.
func (r *room) relayIQLocked(st *router.Stanza, o, to *occupant) {
	in := inner(st.Raw)
	w := xw{b: make([]byte, 0, 96+len(in))}
	w.header(router.KindIQ, st.Type, st.ID, o.from)
	w.b = append(w.b, in...)
	w.close("iq")
	r.sendLocked(to, router.KindIQ, st.Type, st.ID, o.jid, w.b)
}
