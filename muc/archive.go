package muc

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces of room archives.
const (
	// NSMAM is XEP-0313 Message Archive Management.
	NSMAM = "urn:xmpp:mam:2"
	// NSMAMExtended is XEP-0313's extended queries (before-id, after-id,
	// ids, flip-page), answered by the Archive.
	NSMAMExtended = "urn:xmpp:mam:2#extended"
	// NSSID is XEP-0359 Unique and Stable Stanza IDs.
	NSSID = "urn:xmpp:sid:0"
)

// Archive keeps rooms' message archives (XEP-0313 on the room JID,
// XEP-0359 stanza ids). Package mam implements it.
type Archive interface {
	// Append archives a groupchat message the room is about to broadcast:
	// msg is the stanza as the room broadcasts it (from room@service/nick,
	// no to attribute, jabber:client default namespace), nick the sender's
	// nick. It returns the stanza id to stamp on every copy. It must not
	// block on storage (mam batches writes).
	//
	// The room calls it with its mutex held, in the order it broadcasts,
	// and never modifies msg afterwards (msg's capacity ends at its
	// length). An empty id means the message was not archived: the copies
	// then carry no stanza-id.
	Append(room jid.JID, nick string, msg []byte) (id string)
	// Query answers a MAM IQ addressed to the room — a set with <query
	// xmlns='urn:xmpp:mam:2'/>, or a get of <query/> (the search form) or
	// <metadata xmlns='urn:xmpp:mam:2'/> — for a requester the room has
	// already allowed to read. It sends the result <message/>s to iq.From
	// itself and returns the IQ result payload (or a stanza.Error, wrapped
	// or not, as router IQ handlers do).
	//
	// The room calls it without holding its mutex; the room sends the IQ
	// result (or error) once it returns.
	Query(ctx context.Context, room jid.JID, iq *router.Stanza) (xml.TokenReader, error)
	// Forget deletes a destroyed room's archive.
	//
	// The room calls it with its mutex held, so that a room of the same
	// name is created only after it returns; an Append of the room not
	// yet written must not outlive it.
	Forget(ctx context.Context, room jid.JID)
}

// archivesLocked reports whether the room archives its group chat
// messages now.
func (r *room) archivesLocked() bool { return r.svc.opts.Archive != nil && r.cfg.archive }

// archiveLocked passes msg, the group chat message of o about to be
// broadcast, to the archive and returns the stanza id it gave.
func (r *room) archiveLocked(o *occupant, msg []byte) string {
	id := r.svc.opts.Archive.Append(r.jid, o.nick, msg[:len(msg):len(msg)])
	if id != "" {
		r.archived = true
	}
	return id
}

// forgetLocked deletes the room's archive; the room is being destroyed.
func (r *room) forgetLocked(ctx context.Context) {
	if r.svc.opts.Archive == nil {
		return
	}
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	r.svc.opts.Archive.Forget(sctx, r.jid)
	r.archived = false
}

// isOwnStanzaID reports whether start is a XEP-0359 <stanza-id/> claiming
// to be the room's, which only the room may add (XEP-0359 §3.1).
func (r *room) isOwnStanzaID(start xml.StartElement) bool {
	if start.Name.Space != NSSID || start.Name.Local != "stanza-id" {
		return false
	}
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "by" {
			by, err := jid.Parse(a.Value)
			return err == nil && by.Equal(r.jid)
		}
	}
	return false
}

// withoutOwnStanzaIDs returns the children of st without the
// <stanza-id/>s claiming to be the room's.
func (r *room) withoutOwnStanzaIDs(st *router.Stanza) ([]byte, error) {
	enc := xmlenc.Encoder{Default: stanza.NSClient}
	err := children(st, func(d *xml.Decoder, start xml.StartElement) error {
		if r.isOwnStanzaID(start) {
			return d.Skip()
		}
		return copyElement(&enc, d, start)
	})
	return enc.Buf, err
}

// isArchiveQuery reports whether st, an IQ request to the room's bare
// JID, is one for its archive (XEP-0313 §4, §5.1, §6.1 and metadata).
func isArchiveQuery(st *router.Stanza) bool {
	p := st.Payload
	if p.Space != NSMAM {
		return false
	}
	return p.Local == "query" || (p.Local == "metadata" && st.Type == "get")
}

// archiveAccessLocked decides whether the sender of st, a request for
// the room's archive, may read it: nil when the archive is to answer.
// Nobody may when the room does not archive; an outcast never may; in a
// members-only room, only members, admins and owners may; in a
// password-protected one, they and its occupants (who gave the password);
// in another, anyone.
func (r *room) archiveAccessLocked(st *router.Stanza) *stanza.Error {
	aff := r.affOf(st.From.Bare().String())
	var e stanza.Error
	switch {
	case r.locked && aff != affOwner:
		e = errText(stanza.Cancel, stanza.ItemNotFound, "no such room")
	case !r.archivesLocked():
		// As for any payload the room does not serve: its disco#info
		// lists no urn:xmpp:mam:2 now.
		e = errText(stanza.Cancel, stanza.ServiceUnavailable, "this room keeps no archive")
	case aff == affOutcast:
		e = errText(stanza.Auth, stanza.Forbidden, "you are banned from this room")
	case r.cfg.membersOnly && aff < affMember:
		e = errText(stanza.Cancel, stanza.Forbidden, "only members may read the archive of this members-only room")
	case r.cfg.passwordProtected && aff < affMember && !r.joinedLocked(st.From.Bare().String()):
		e = errText(stanza.Auth, stanza.NotAuthorized, "enter the room with its password to read its archive")
	default:
		return nil
	}
	return &e
}

// joinedLocked reports whether the account bare has a session in the room.
func (r *room) joinedLocked(bare string) bool {
	for _, o := range r.occupants {
		if o.bare == bare {
			return true
		}
	}
	return false
}

// queryArchive has the archive answer st, which the room has allowed,
// and sends the IQ result or error. Called without the room's mutex.
func (s *Service) queryArchive(ctx context.Context, room jid.JID, st *router.Stanza) {
	payload, err := s.opts.Archive.Query(ctx, room, st)
	if err != nil {
		var se stanza.Error
		if !errors.As(err, &se) {
			s.log.Error("archive query failed", "room", room.String(), "from", st.From.String(), "err", err)
			se = errText(stanza.Wait, stanza.InternalServerError, "")
		}
		s.reply(ctx, st, se)
		return
	}
	if payload == nil {
		s.answer(ctx, st, nil)
		return
	}
	reply, err := router.Build(router.KindIQ, "result", st.ID, st.To, st.From, payload)
	if err != nil {
		s.log.Error("archive query result failed to encode", "room", room.String(), "err", err)
		s.reply(ctx, st, errText(stanza.Wait, stanza.InternalServerError, ""))
		return
	}
	s.route(ctx, reply)
}
