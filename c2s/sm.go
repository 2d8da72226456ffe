package c2s

import (
	"encoding/xml"
	"fmt"
	"strconv"

	"mellium.im/xmpp/stream"
)

// Namespaces of stream management (XEP-0198) and client state indication
// (XEP-0352).
const (
	nsSM  = "urn:xmpp:sm:3"
	nsCSI = "urn:xmpp:csi:0"
)

// smAskAt is how many unacknowledged stanzas make the server ask for an
// acknowledgement (<r/>), when it has not asked since the last one. The
// request rides in the same write as the stanza that triggered it.
const smAskAt = 5

// Stream management elements the server sends.
var (
	smRequest = []byte("<r xmlns='" + nsSM + "'/>")
)

// smState is the stream management of one session: created when the client
// enables it, then guarded by Session.mu.
type smState struct {
	id        string // resumption id; "" when not resumable
	resumable bool

	// sent counts the stanzas queued for the client (XEP-0198's h of the
	// server's side), modulo 2^32; acked is the client's last h.
	sent, acked uint32
	// unacked holds the stanzas from acked+1 to sent, oldest first, with
	// their DeliverThen callbacks, which are called only once the client
	// acknowledges them (or they are given up).
	unacked      []outItem
	unackedBytes int
	asked        bool // an <r/> went out since the last <a/>
}

// smElement is a stream management or client state element the client
// sent, parsed by the read loop's slow path; it travels as an error so that
// the loop's stanza path stays as it is.
type smElement struct {
	local  string // enable, r, a, resume, active, inactive
	space  string
	h      uint32
	hasH   bool
	resume bool   // enable: resume='true'
	max    int    // enable: the client's preferred resumption time, seconds; 0: none
	previd string // resume
}

func (e *smElement) Error() string { return "c2s: " + e.local + " element" }

// parseSMElement reads a stream management or client state element whose
// start tag is start. Unknown elements of those namespaces are an error.
func parseSMElement(d *xml.Decoder, start xml.StartElement) (*smElement, error) {
	e := &smElement{local: start.Name.Local, space: start.Name.Space}
	known := false
	switch start.Name.Space {
	case nsSM:
		switch e.local {
		case "enable", "r", "a", "resume":
			known = true
		}
	case nsCSI:
		known = e.local == "active" || e.local == "inactive"
	}
	if !known {
		return nil, withText(stream.UnsupportedStanzaType, "<"+e.local+" xmlns='"+start.Name.Space+"'/> is not supported")
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "h":
			if e.local != "a" && e.local != "resume" {
				continue
			}
			n, err := strconv.ParseUint(a.Value, 10, 32)
			if err != nil {
				return nil, withText(stream.BadFormat, "h must be an unsigned 32-bit integer")
			}
			e.h, e.hasH = uint32(n), true
		case "resume":
			e.resume = a.Value == "true" || a.Value == "1"
		case "max":
			if n, err := strconv.ParseUint(a.Value, 10, 31); err == nil {
				e.max = int(n)
			}
		case "previd":
			e.previd = a.Value
		}
	}
	if (e.local == "a" || e.local == "resume") && !e.hasH {
		return nil, withText(stream.BadFormat, "<"+e.local+"/> needs an h attribute")
	}
	if err := d.Skip(); err != nil {
		return nil, err
	}
	return e, nil
}

// appendAck appends <a h='h'/>.
func appendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+nsSM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// smFailed is <failed/> with a stanza error condition and, when known, the
// count of stanzas the server handled (XEP-0198 §4, §5).
func smFailed(cond string, h uint32, withH bool) []byte {
	b := []byte("<failed xmlns='" + nsSM + "'")
	if withH {
		b = append(b, " h='"...)
		b = strconv.AppendUint(b, uint64(h), 10)
		b = append(b, '\'')
	}
	return append(b, "><"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"...)
}

// push records a stanza queued for the client; called with Session.mu
// held. It reports whether the server should ask for an acknowledgement
// now.
func (m *smState) push(it outItem) (ask bool) {
	m.sent++
	m.unacked = append(m.unacked, it)
	m.unackedBytes += len(it.b)
	if !m.asked && len(m.unacked) >= smAskAt {
		m.asked = true
		return true
	}
	return false
}

// ack takes the client's h: the stanzas it acknowledges leave unacked and
// are returned, for their callbacks. ok is false for an h that
// acknowledges more than was sent (XEP-0198 §4: handled-count-too-high).
func (m *smState) ack(h uint32) (done []outItem, ok bool) {
	n := h - m.acked // modulo 2^32
	if int64(n) > int64(len(m.unacked)) {
		return nil, false
	}
	done = make([]outItem, n)
	copy(done, m.unacked[:n])
	for i := range m.unacked[:n] {
		m.unackedBytes -= len(m.unacked[i].b)
		m.unacked[i] = outItem{}
	}
	m.unacked = m.unacked[n:]
	if len(m.unacked) == 0 {
		m.unacked = nil // let a burst's array go
	}
	m.acked = h
	m.asked = false
	return done, true
}

// handledTooHigh is the stream error for an acknowledgement of stanzas
// never sent, with XEP-0198's application-specific condition.
func handledTooHigh(h, sent uint32) []byte {
	b := []byte("<stream:error><undefined-condition xmlns='" + nsStreams + "'/><text xmlns='" + nsStreams +
		"' xml:lang='en'>you acknowledged more stanzas than were sent</text>")
	b = fmt.Appendf(b, "<handled-count-too-high xmlns='%s' h='%d' send-count='%d'/>", nsSM, h, sent)
	return append(b, "</stream:error></stream:stream>"...)
}

// since returns the unacknowledged stanzas after the client's h, for a
// resumption, or ok false when h is not within what was sent.
func (m *smState) since(h uint32) (items []outItem, ok bool) {
	n := h - m.acked
	if int64(n) > int64(len(m.unacked)) {
		return nil, false
	}
	return m.unacked[n:], true
}

// takeUnackedLocked takes the stanzas the client has not acknowledged,
// for settling as undelivered; called with Session.mu held.
func (s *Session) takeUnackedLocked() []outItem {
	m := s.sm
	if m == nil || len(m.unacked) == 0 {
		return nil
	}
	items := m.unacked
	m.acked += uint32(len(items)) // the client cannot acknowledge them any more
	m.unacked, m.unackedBytes = nil, 0
	return items
}

// handleSM acts on a stream management or client state element from the
// read loop. A non-nil result is the stream error that ends the session.
func (s *Session) handleSM(e *smElement) (final []byte) {
	switch e.space + " " + e.local {
	case nsSM + " enable":
		s.mu.Lock()
		if s.sm != nil {
			s.sendNonzaLocked(smFailed("unexpected-request", 0, false))
		} else {
			s.sm = &smState{}
			s.handled = 0
			s.sendNonzaLocked([]byte("<enabled xmlns='" + nsSM + "'/>"))
		}
		inline := s.kickLocked(true)
		s.mu.Unlock()
		if inline {
			s.flushOnce()
		}
	case nsSM + " r":
		s.mu.Lock()
		on := s.sm != nil
		s.mu.Unlock()
		if on {
			s.sendNonza(appendAck(nil, s.handled))
		}
	case nsSM + " a":
		s.mu.Lock()
		m := s.sm
		if m == nil || s.closing {
			s.mu.Unlock()
			return nil // nothing to acknowledge, or settled already: ignored
		}
		done, ok := m.ack(e.h)
		sent := m.sent
		s.mu.Unlock()
		if !ok {
			s.logger().Warn("client acknowledged stanzas never sent", "h", e.h, "sent", sent)
			return handledTooHigh(e.h, sent)
		}
		for _, it := range done {
			if it.done != nil {
				it.done(true)
			}
		}
	case nsSM + " resume":
		// Only instead of binding, on a new stream (negotiation.go).
		s.sendNonza(smFailed("unexpected-request", 0, false))
	}
	return nil
}
