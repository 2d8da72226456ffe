package mam

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Rooms is the archive of the rooms that keep one (XEP-0313 §6 on the
// room's JID). The MUC service calls it: it decides which rooms archive
// and who may read them; Rooms stores and answers.
type Rooms struct{ s *Service }

// Rooms returns the room archive.
func (s *Service) Rooms() *Rooms { return &Rooms{s} }

// Append archives a groupchat message the room broadcasts (from
// room/nick, no to) and returns the stanza id every copy carries. It
// never waits for storage.
func (r *Rooms) Append(room jid.JID, nick string, msg []byte) string {
	seq := r.s.clock.next()
	id := newID(seq)
	r.s.w.add(storage.ArchivedMessage{
		Owner: room.String(), Seq: seq, ID: id,
		With: room.String(), WithResource: nick, Stanza: msg,
	})
	return id
}

// Query answers a MAM IQ to the room from someone the room lets read
// its archive.
func (r *Rooms) Query(ctx context.Context, room jid.JID, iq *router.Stanza) (xml.TokenReader, error) {
	ref := archiveRef{owner: room.Bare()}
	switch {
	case iq.Payload == xml.Name{Space: NS, Local: "query"} && iq.Type == string(stanza.SetIQ):
		return r.s.run(ctx, ref, iq)
	case iq.Payload == xml.Name{Space: NS, Local: "query"}:
		return formPayload(), nil
	case iq.Payload == xml.Name{Space: NS, Local: "metadata"}:
		return r.s.metadataOf(ctx, ref.owner)
	}
	return nil, router.ErrorText(stanza.Cancel, stanza.ServiceUnavailable, "")
}

// Forget deletes a destroyed room's archive, once what waits in memory
// is written (or it would come back).
func (r *Rooms) Forget(ctx context.Context, room jid.JID) {
	r.s.w.sync(syncWait)
	if _, err := r.s.store.Delete(ctx, room.Bare().String(), 0); err != nil {
		r.s.log.Warn("mam: could not delete a destroyed room's archive", "room", room.String(), "err", err)
	}
}
