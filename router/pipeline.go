package router

import (
	"context"
	"slices"
)

// Phase orders the hooks of a message pipeline: hooks run by phase, and in
// registration order within a phase.
type Phase uint8

// Pipeline phases, in the order they run.
const (
	// PhaseFilter hooks refuse or drop (blocking).
	PhaseFilter Phase = iota + 1
	// PhaseRewrite hooks change the stanza (a stanza id, stripping a
	// hint) or store it (the archive).
	PhaseRewrite
	// PhaseCopy hooks see the stanza as it will be routed and send copies
	// of it (carbons).
	PhaseCopy
)

func (p Phase) String() string {
	switch p {
	case PhaseFilter:
		return "filter"
	case PhaseRewrite:
		return "rewrite"
	case PhaseCopy:
		return "copy"
	}
	return "unknown"
}

// MessageHook sees a message on a pipeline. It returns the message to go
// on with — m itself, or a new *Stanza it built when it changes the message
// (a stanza's bytes are never modified) — and Continue; or Handled (the hook
// dropped or answered the message) or Failed (see [Failed]) to stop the
// pipeline. A hook that has nothing to do for this user must return at
// once: every message pays for it.
type MessageHook func(ctx context.Context, m *Stanza) (*Stanza, Result)

// DeliveredHook is told where a message for a local account went, after
// the router delivered it (see [Delivery]). It cannot stop or change the
// delivery; it may send further stanzas (carbons copies).
type DeliveredHook func(ctx context.Context, d Delivery)

// Delivery is what a DeliveredHook learns of a message to a local account.
// It is passed by value so that routing does not allocate.
type Delivery struct {
	// Arrived is the message as it entered the inbound pipeline, before
	// any hook changed it.
	Arrived *Stanza
	// Message is the message as the sessions got it.
	Message *Stanza
	// Sessions are the account's sessions that took the message: none
	// when it went to the undeliverable path.
	Sessions SessionSet
}

// SessionSet is a small set of sessions kept without allocating for up to
// eight.
type SessionSet struct {
	n     int
	first [8]Session
	rest  []Session
}

// Len is the number of sessions in the set.
func (s *SessionSet) Len() int { return s.n }

// At returns the i-th session, 0 ≤ i < Len().
func (s *SessionSet) At(i int) Session {
	if i < len(s.first) {
		return s.first[i]
	}
	return s.rest[i-len(s.first)]
}

// Contains reports whether sess is in the set.
func (s *SessionSet) Contains(sess Session) bool {
	for i := range s.n {
		if s.At(i) == sess {
			return true
		}
	}
	return false
}

// Add puts sess in the set.
func (s *SessionSet) Add(sess Session) {
	if s.n < len(s.first) {
		s.first[s.n] = sess
	} else {
		s.rest = append(s.rest, sess)
	}
	s.n++
}

// phased is a hook with its phase, kept sorted by phase (stable).
type phased struct {
	phase Phase
	hook  MessageHook
}

func addPhased(list []phased, p Phase, h MessageHook, what string) []phased {
	if h == nil {
		panic("router: nil " + what + " hook")
	}
	if p < PhaseFilter || p > PhaseCopy {
		panic("router: " + what + " hook with unknown phase " + p.String())
	}
	list = append(list, phased{p, h})
	slices.SortStableFunc(list, func(a, b phased) int { return int(a.phase) - int(b.phase) })
	return list
}

// OutboundMessage adds a hook for messages a local client sends, before
// they are routed (Router.FromClient): blocking refuses here, carbons
// sends its sent copies. Failed answers the sender with
// wait/internal-server-error.
func (r *Registry) OutboundMessage(p Phase, h MessageHook) {
	r.outMessage = addPhased(r.outMessage, p, h, "outbound message")
}

// InboundMessage adds a hook for messages addressed to a local account
// (its bare or a full JID, or no to), before the router picks the
// sessions that get it: blocking drops here, the archive stores. A chat
// or normal message reaches the hooks only when the account exists (one
// with a session does; otherwise the router asked, and bounced the
// message for an unknown name).
// Failed answers the sender with wait/internal-server-error.
func (r *Registry) InboundMessage(p Phase, h MessageHook) {
	r.inMessage = addPhased(r.inMessage, p, h, "inbound message")
}

// Delivered adds a hook run after a message for a local account with at
// least one bound session was delivered, with the sessions that took it
// (carbons copies it to the others).
func (r *Registry) Delivered(h DeliveredHook) {
	if h == nil {
		panic("router: nil delivered hook")
	}
	r.delivered = append(r.delivered, h)
}

// BroadcastPresence adds a hook for the available presence a local
// session broadcasts (initial or changed; no to), before the router
// records it and sends it to the account's resources and subscribers.
// A hook may read it (entity capabilities) or return a changed presence
// (a XEP-0153 photo hash added), which is then what everyone gets and
// what probes are answered with. Hooks run in registration order;
// Handled drops the presence, Failed answers it with a wait error.
func (r *Registry) BroadcastPresence(h MessageHook) {
	if h == nil {
		panic("router: nil broadcast presence hook")
	}
	r.broadcast = append(r.broadcast, phased{phase: PhaseRewrite, hook: h})
}

// DirectedPresence adds a hook for the available presence a local session
// sends to one JID (a MUC join, a directed presence), before the
// OutboundPresence hooks and routing. Like a BroadcastPresence hook it may
// return a changed presence (the XEP-0153 photo hash a room's occupants
// use for avatars), which is what the addressee gets.
func (r *Registry) DirectedPresence(h MessageHook) {
	if h == nil {
		panic("router: nil directed presence hook")
	}
	r.directed = append(r.directed, phased{phase: PhaseRewrite, hook: h})
}

// OutboundIQ adds a hook for IQs a local client sends, before they are
// routed; Handled and Failed mean what they mean for OutboundPresence.
func (r *Registry) OutboundIQ(h StanzaHook) {
	if h == nil {
		panic("router: nil outbound iq hook")
	}
	r.outIQ = append(r.outIQ, h)
}

// InboundIQ adds a hook for IQs addressed to a local account's bare or
// full JID by anyone but the account itself, before they are handled or
// delivered.
func (r *Registry) InboundIQ(h StanzaHook) {
	if h == nil {
		panic("router: nil inbound iq hook")
	}
	r.inIQ = append(r.inIQ, h)
}

// runMessageHooks runs a message pipeline. It returns the message to go on
// with, or nil when a hook stopped the pipeline (for Failed, the sender is
// told to try again).
func (r *Router) runMessageHooks(ctx context.Context, hooks []phased, m *Stanza) *Stanza {
	for _, h := range hooks {
		next, res := h.hook(ctx, m)
		switch res {
		case Handled:
			return nil
		case Failed:
			r.bounce(ctx, m, storageFailure())
			return nil
		}
		if next != nil {
			m = next
		}
	}
	return m
}
