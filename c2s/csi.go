package c2s

import "bytes"

// Client State Indication (XEP-0352): while a client says it is inactive
// (<inactive xmlns='urn:xmpp:csi:0'/>), the stanzas it need not see at once
// wait in a csiBuffer, and go out together when something urgent comes,
// when the buffer is full, or when the client is active again. XEP-0352
// leaves what may wait to the server (§3.2 names presence updates, chat
// states and PEP notifications); the rules here are those of Prosody's
// mod_csi_simple (its is_important), with the differences noted at
// csiClassify. Nothing is ever dropped but a presence superseded by a
// later one from the same address (§3.2: "push the latest presence from
// each contact"), and what is kept goes out in the order it came.
//
// This file is the decision only: no I/O and no locking. The session
// calls offer and take with its mutex held.

// Bounds of one session's CSI buffer. When holding a stanza would pass
// either, offer refuses it and the session writes everything (one radio
// wake-up for the batch). Prosody holds 256 stanzas (csi_queue_size);
// 100 is enough for the presences of a roster of 100 contacts, since one
// per contact is kept, and stays a tenth of the default send queue (1000
// stanzas), so that a flush into the queue does not make a slow consumer
// of the session. 64 KiB bounds what an inactive session keeps alive (the
// bytes are mostly shared with other recipients, but not always), and is
// about half a second of a 1 Mbit/s mobile link: a flush stays one short
// burst. A stanza larger than csiMaxBytes is never held.
const (
	csiMaxHeld  = 100
	csiMaxBytes = 64 << 10
)

// csiBuffer holds, while the client says it is inactive, the stanzas it
// need not get at once. The zero value is empty and ready. It is not safe
// for concurrent use: the session's mutex guards it.
type csiBuffer struct {
	items []outItem // held, in the order they came
	keys  []csiKey  // keys[i] is about items[i]
	size  int       // bytes held: the sum of len(items[i].b)
}

// csiKey says whether a held stanza may be superseded, and by what.
type csiKey struct {
	from  span // the from attribute's value in the stanza's bytes
	keyed bool // an available or unavailable presence without a done callback
}

// offer decides for one stanza, it.b, whether it may wait. If it may, the
// buffer keeps it and offer returns true: the caller writes nothing now.
// If it is urgent, or holding it would pass csiMaxHeld or csiMaxBytes,
// offer returns false and changes nothing: the caller must first take()
// the held stanzas (in order) and then write it.b.
//
// it.b must be a whole stanza exactly as it will be written to the client
// (serialised by xmppd: the top element unprefixed, in jabber:client,
// attribute values quoted with ' or "). A presence that supersedes a held
// one from the same from drops that one, unless it has a done callback:
// offer never drops what has an owner waiting, and never calls a
// callback, so nothing runs under the caller's lock.
func (c *csiBuffer) offer(it outItem) (held bool) {
	kind, from := csiClassify(it.b)
	if kind == csiUrgent {
		return false
	}
	old := -1
	if kind == csiPresence {
		old = c.supersededBy(it.b[from.start:from.end])
	}
	n, size := len(c.items)+1, c.size+len(it.b)
	if old >= 0 {
		n, size = n-1, size-len(c.items[old].b)
	}
	if n > csiMaxHeld || size > csiMaxBytes {
		return false
	}
	if old >= 0 {
		// Dropped, not moved: the new one goes last, so that everything
		// still held keeps the order it came in.
		copy(c.items[old:], c.items[old+1:])
		copy(c.keys[old:], c.keys[old+1:])
		c.items[len(c.items)-1] = outItem{}
		c.items = c.items[:len(c.items)-1]
		c.keys = c.keys[:len(c.keys)-1]
	}
	c.items = append(c.items, it)
	c.keys = append(c.keys, csiKey{from: from, keyed: kind == csiPresence && it.done == nil})
	c.size = size
	return true
}

// supersededBy returns the index of the held presence that a presence
// from the address from replaces, or -1. There is at most one: each such
// presence drops the one before it.
func (c *csiBuffer) supersededBy(from []byte) int {
	for i, k := range c.keys {
		if k.keyed && bytes.Equal(c.items[i].b[k.from.start:k.from.end], from) {
			return i
		}
	}
	return -1
}

// take returns the held stanzas in the order they arrived, and empties the
// buffer. The slice is the caller's; it is nil when nothing was held.
func (c *csiBuffer) take() []outItem {
	items := c.items
	c.items, c.keys, c.size = nil, c.keys[:0], 0
	return items
}

// len is the number of stanzas held.
func (c *csiBuffer) len() int { return len(c.items) }

// bytes is the number of bytes held.
func (c *csiBuffer) bytes() int { return c.size }

// csiKind is what csiClassify makes of a stanza.
type csiKind uint8

const (
	csiUrgent   csiKind = iota // write now, after whatever is held
	csiPresence                // may wait; a later one from the same from replaces it
	csiMayWait                 // may wait
)

// Namespaces csiClassify knows.
const (
	csiNSClient      = "jabber:client"
	csiNSChatStates  = "http://jabber.org/protocol/chatstates" // XEP-0085
	csiNSReceipts    = "urn:xmpp:receipts"                     // XEP-0184
	csiNSMarkers     = "urn:xmpp:chat-markers:0"               // XEP-0333
	csiNSDelay       = "urn:xmpp:delay"                        // XEP-0203
	csiNSStanzaID    = "urn:xmpp:sid:0"                        // XEP-0359
	csiNSHints       = "urn:xmpp:hints"                        // XEP-0334
	csiNSPubSubEvent = "http://jabber.org/protocol/pubsub#event"
	csiNSCarbons     = "urn:xmpp:carbons:2" // XEP-0280
	csiNSForward     = "urn:xmpp:forward:0" // XEP-0297
)

// csiClassify says whether the stanza b may wait while the client is
// inactive (csiMayWait, csiPresence) and, for a presence that may, where its from attribute's value
// is in b (empty when it has none). It allocates nothing: it runs for
// every stanza delivered to an inactive client.
//
// May wait (as in Prosody's is_important):
//   - a presence without a type or of type unavailable;
//   - a message, not of type error, with no <body> anywhere in it, whose
//     every child is one of: a chat state (XEP-0085, which XEP-0352 §3.2
//     names), a delivery receipt <received/> (XEP-0184), a chat marker
//     received/displayed/acknowledged (XEP-0333), <delay/> (XEP-0203),
//     <stanza-id/> or <origin-id/> (XEP-0359), a processing hint
//     (XEP-0334), <thread/>, a PEP notification <event/> (XEP-0163, named
//     by XEP-0352 §3.2), or a carbon <received/> (XEP-0280) whose
//     forwarded message is itself made only of those (PEP and carbons not
//     nested).
//
// Everything else is urgent: every iq, presence of any other type
// (subscription requests, errors, probes), a message of type error or
// with a body (in a carbon too), a subject (the last step of a MUC join),
// a sent carbon (the user is busy on another device), and whatever this
// list does not know, such as encryption (<encrypted/>, <encryption/>,
// <openpgp/>), Jingle Message Initiation, MUC and direct invitations, MUC
// status messages, and anything that is not a stanza. Where Prosody
// decides on what it finds and calls the rest unimportant, this lists what
// may wait and calls the rest urgent, so a protocol it does not know is
// never delayed; and it differs in three places: a presence of type error
// is urgent (Prosody holds it), a headline with a body is urgent (Prosody
// holds every headline; one without a body waits here only if made of the
// above), and nothing from csi_important_payloads is configurable.
//
// The bytes are XML as xmppd writes it, so a '<' is always the start of a
// tag: XML forbids it in attribute values and character data (XML 1.0
// §2.4, §3.1), so a client's text or attribute value "<body" reaches here
// as "&lt;body"; comments, processing instructions and CDATA sections are
// never copied into a stanza (the read loop's fast path leaves them to the
// slow one, which drops the first two and escapes the text of the third);
// and element names carry no prefix. A child that breaks these
// assumptions (a prefix, a '<!') makes the stanza urgent.
func csiClassify(b []byte) (kind csiKind, from span) {
	top, ok := csiStartTag(b, 0)
	if !ok || top.xmlns.start >= 0 && string(b[top.xmlns.start:top.xmlns.end]) != csiNSClient {
		return csiUrgent, span{}
	}
	switch string(b[top.name.start:top.name.end]) {
	case "presence":
		if top.typ.start >= 0 && string(b[top.typ.start:top.typ.end]) != "unavailable" {
			return csiUrgent, span{}
		}
		if top.from.start < 0 {
			return csiPresence, span{}
		}
		return csiPresence, top.from
	case "message":
		if top.typ.start >= 0 && string(b[top.typ.start:top.typ.end]) == "error" ||
			bytes.Contains(b, csiBodyTag) {
			return csiUrgent, span{}
		}
		if top.empty || csiChildrenMayWait(b, top.end) {
			return csiMayWait, span{}
		}
	}
	return csiUrgent, span{}
}

// csiBodyTag starts a <body> element (or one whose name starts with body,
// which is then urgent too).
var csiBodyTag = []byte("<body")

// csiContext is where in a message the walk of csiChildrenMayWait is.
type csiContext uint8

const (
	csiInMessage   csiContext = iota // the message's children
	csiInCarbon                      // a carbon <received/>'s children
	csiInForwarded                   // <forwarded/>'s children
	csiInInner                       // the forwarded message's children
)

// csiChildrenMayWait walks the elements of a message from b[i] (just after
// its start tag) to its end tag, and reports whether every child is one
// that may wait (see csiClassify). Within such a child (a chat state, a
// PEP event) nothing is looked at, but the walk goes on to find its end.
func csiChildrenMayWait(b []byte, i int) bool {
	type frame struct {
		ctx csiContext
		ns  span // the namespace in scope; {-1, -1} for jabber:client
	}
	var stack [4]frame // message, carbon, forwarded, inner message: no deeper
	depth := 1
	stack[0] = frame{csiInMessage, span{-1, -1}}
	opaque := 0 // depth within a child whose content is not looked at
	for {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 || i+j+1 >= len(b) {
			return false // cut short
		}
		i += j
		switch b[i+1] {
		case '/':
			k := bytes.IndexByte(b[i:], '>')
			if k < 0 {
				return false
			}
			i += k + 1
			if opaque > 0 {
				opaque--
				continue
			}
			depth--
			if depth == 0 {
				return true // the message's own end tag
			}
			continue
		case '!', '?':
			return false
		}
		t, ok := csiStartTag(b, i)
		if !ok {
			return false
		}
		i = t.end
		if opaque > 0 {
			if !t.empty {
				opaque++
			}
			continue
		}
		parent := stack[depth-1]
		ns := parent.ns
		if t.xmlns.start >= 0 {
			ns = t.xmlns
		}
		space := []byte(csiNSClient)
		if ns.start >= 0 {
			space = b[ns.start:ns.end]
		}
		next, leaf := csiChild(parent.ctx, space, b[t.name.start:t.name.end])
		switch {
		case !leaf && next == csiInMessage:
			return false // urgent
		case next == csiInInner && t.typ.start >= 0 && string(b[t.typ.start:t.typ.end]) == "error":
			return false // a forwarded error
		case t.empty:
		case leaf:
			opaque = 1
		case depth == len(stack):
			return false // cannot happen: csiChild nests no deeper
		default:
			stack[depth] = frame{next, ns}
			depth++
		}
	}
}

// csiChild decides on one child element, named name in namespace space,
// in the context ctx: whether it may wait as a whole (leaf), or may wait
// if its own children may (next, one of the other contexts); or neither
// (next == csiInMessage and !leaf), which makes the stanza urgent.
func csiChild(ctx csiContext, space, name []byte) (next csiContext, leaf bool) {
	// Each switch on string(…) compares without converting.
	switch ctx {
	case csiInMessage, csiInInner:
		switch string(space) {
		case csiNSChatStates:
			switch string(name) {
			case "active", "composing", "paused", "inactive", "gone":
				return 0, true
			}
		case csiNSReceipts:
			return 0, string(name) == "received"
		case csiNSMarkers:
			switch string(name) {
			case "received", "displayed", "acknowledged":
				return 0, true
			}
		case csiNSDelay:
			return 0, string(name) == "delay"
		case csiNSStanzaID:
			switch string(name) {
			case "stanza-id", "origin-id":
				return 0, true
			}
		case csiNSHints:
			switch string(name) {
			case "no-store", "no-permanent-store", "no-copy", "store":
				return 0, true
			}
		case csiNSClient:
			return 0, string(name) == "thread"
		case csiNSPubSubEvent:
			return 0, ctx == csiInMessage && string(name) == "event"
		case csiNSCarbons:
			if ctx == csiInMessage && string(name) == "received" {
				return csiInCarbon, false
			}
		}
	case csiInCarbon:
		if string(space) == csiNSForward && string(name) == "forwarded" {
			return csiInForwarded, false
		}
	case csiInForwarded:
		switch {
		case string(space) == csiNSDelay && string(name) == "delay":
			return 0, true
		case string(space) == csiNSClient && string(name) == "message":
			return csiInInner, false
		}
	}
	return csiInMessage, false
}

// csiTag is what csiStartTag reads of one start tag. A span of an absent
// attribute is {-1, -1}.
type csiTag struct {
	name             span
	typ, from, xmlns span // the values of these attributes
	end              int  // the index just after the tag
	empty            bool // the tag ends with "/>"
}

// csiStartTag reads the start tag at b[i] (a '<'). It reports false when b
// holds no whole start tag there, or one with a prefixed name.
func csiStartTag(b []byte, i int) (t csiTag, ok bool) {
	none := span{-1, -1}
	t.typ, t.from, t.xmlns = none, none, none
	if i >= len(b) || b[i] != '<' {
		return t, false
	}
	j := i + 1
	for j < len(b) && !csiDelim(b[j]) {
		if b[j] == ':' {
			return t, false
		}
		j++
	}
	if j == i+1 {
		return t, false
	}
	t.name = span{i + 1, j}
	for {
		for j < len(b) && csiSpace(b[j]) {
			j++
		}
		if j >= len(b) {
			return t, false
		}
		switch b[j] {
		case '>':
			t.end = j + 1
			return t, true
		case '/':
			if j+1 < len(b) && b[j+1] == '>' {
				t.end, t.empty = j+2, true
				return t, true
			}
			return t, false
		}
		n := j
		for j < len(b) && !csiDelim(b[j]) && b[j] != '=' {
			j++
		}
		attr := b[n:j]
		for j < len(b) && csiSpace(b[j]) {
			j++
		}
		if j >= len(b) || b[j] != '=' || n == j {
			return t, false
		}
		j++
		for j < len(b) && csiSpace(b[j]) {
			j++
		}
		if j >= len(b) || b[j] != '\'' && b[j] != '"' {
			return t, false
		}
		k := bytes.IndexByte(b[j+1:], b[j])
		if k < 0 {
			return t, false
		}
		v := span{j + 1, j + 1 + k}
		j = v.end + 1
		switch string(attr) {
		case "type":
			t.typ = v
		case "from":
			t.from = v
		case "xmlns":
			t.xmlns = v
		}
	}
}

// csiSpace reports whether c is XML white space.
func csiSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// csiDelim reports whether c ends a name in a tag.
func csiDelim(c byte) bool { return csiSpace(c) || c == '/' || c == '>' }
