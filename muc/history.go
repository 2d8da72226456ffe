package muc

import (
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// histEntry is one message of a room's discussion history.
type histEntry struct {
	seq     int64
	id      string
	from    jid.JID // the sender's occupant JID when it was sent
	nick    string
	sender  string // the sender's real full JID
	stamp   time.Time
	payload []byte // the message's children; never modified
}

// history is a ring of a room's last messages. Guarded by the room's
// mutex.
type history struct {
	buf   []histEntry // len(buf) is the room's history length
	start int         // index of the oldest entry
	n     int         // entries held
	seq   int64       // the last seq handed out
}

// resize keeps the newest max entries in a ring of size max.
func (h *history) resize(max int) {
	if max == len(h.buf) {
		return
	}
	kept := h.entries()
	if len(kept) > max {
		kept = kept[len(kept)-max:]
	}
	h.buf = make([]histEntry, max)
	copy(h.buf, kept)
	h.start, h.n = 0, len(kept)
}

// entries returns the entries, oldest first.
func (h *history) entries() []histEntry {
	out := make([]histEntry, 0, h.n)
	for i := range h.n {
		out = append(out, h.buf[(h.start+i)%len(h.buf)])
	}
	return out
}

// at returns the i-th entry, oldest first.
func (h *history) at(i int) *histEntry { return &h.buf[(h.start+i)%len(h.buf)] }

// add appends e with the next seq, dropping the oldest entry when the
// ring is full, and returns it. With a length of 0 nothing is kept.
func (h *history) add(e histEntry) histEntry {
	h.seq++
	e.seq = h.seq
	if len(h.buf) == 0 {
		return e
	}
	if h.n < len(h.buf) {
		h.buf[(h.start+h.n)%len(h.buf)] = e
		h.n++
		return e
	}
	h.buf[h.start] = e
	h.start = (h.start + 1) % len(h.buf)
	return e
}

// histRequest is a joining user's <history/> (XEP-0045 §7.2.13); -1 and
// the zero time mean a limit is absent.
type histRequest struct {
	maxChars, maxStanzas, seconds int
	since                         time.Time
}

var noHistRequest = histRequest{maxChars: -1, maxStanzas: -1, seconds: -1}

// historyTmplLocked serialises e as history is sent (without to): from
// the sender's occupant JID, with an XEP-0203 delay from the room.
func (r *room) historyTmplLocked(e *histEntry) []byte {
	w := xw{b: make([]byte, 0, 160+len(e.payload)+len(r.jidStr)*2)}
	w.header(router.KindMessage, "groupchat", e.id, e.from.String())
	w.b = append(w.b, e.payload...)
	w.empty("delay", "xmlns", NSDelay, "from", r.jidStr, "stamp", stamp(e.stamp))
	w.close("message")
	return w.b
}

// sendHistoryLocked sends o the history its request asks for, oldest
// first: the newest messages within every limit given.
func (r *room) sendHistoryLocked(o *occupant, req histRequest) {
	if req.maxChars == 0 || req.maxStanzas == 0 || r.hist.n == 0 {
		return
	}
	now := r.svc.now()
	var picked [][]byte
	var from []*histEntry
	chars := 0
	for i := r.hist.n - 1; i >= 0; i-- {
		e := r.hist.at(i)
		if req.seconds >= 0 && now.Sub(e.stamp) > time.Duration(req.seconds)*time.Second {
			break
		}
		if !req.since.IsZero() && e.stamp.Before(req.since) {
			break
		}
		if req.maxStanzas >= 0 && len(picked) >= req.maxStanzas {
			break
		}
		tmpl := r.historyTmplLocked(e)
		if req.maxChars >= 0 {
			// The stanza as the user receives it, to included.
			if chars += len(tmpl) + len(o.realStr) + 6; chars > req.maxChars {
				break
			}
		}
		picked = append(picked, tmpl)
		from = append(from, e)
	}
	slices.Reverse(picked)
	slices.Reverse(from)
	for i, tmpl := range picked {
		r.sendLocked(o, router.KindMessage, "groupchat", from[i].id, from[i].from, tmpl)
	}
}

// sendSubjectLocked sends o the room's subject: from whoever set it, or
// an empty <subject/> from the room when there is none (XEP-0045 §7.2.15).
func (r *room) sendSubjectLocked(o *occupant) {
	from, fromJID := r.jidStr, r.jid
	if r.subject != "" && r.subjNick != "" {
		if j, err := r.jid.WithResource(r.subjNick); err == nil {
			from, fromJID = j.String(), j
		}
	}
	var w xw
	w.header(router.KindMessage, "groupchat", "", from)
	if r.subject == "" {
		w.empty("subject")
	} else {
		w.elem("subject", r.subject)
	}
	w.close("message")
	r.sendLocked(o, router.KindMessage, "groupchat", "", fromJID, w.b)
}

// loadHistory fills the ring from stored messages, oldest first.
func (r *room) loadHistory(msgs []storage.MUCMessage) {
	for _, m := range msgs {
		from, err := r.jid.WithResource(m.Nick)
		if err != nil {
			continue
		}
		r.hist.add(histEntry{id: m.ID, from: from, nick: m.Nick, sender: m.Sender, stamp: m.Stamp, payload: m.Payload})
		r.hist.seq = max(r.hist.seq, m.Seq)
	}
}
