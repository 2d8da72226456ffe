package router

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// ErrRequestTimeout is what a Request's callback gets when no answer came
// in time (the addressee ignored the IQ or went away).
var ErrRequestTimeout = errors.New("router: no answer to the request in time")

// ErrTooManyRequests is returned by Request while maxPending requests wait
// for their answers: a server feature that asks clients (entity
// capabilities) must not pile up state when clients stay silent.
var ErrTooManyRequests = errors.New("router: too many requests waiting for an answer")

// maxPending bounds the requests waiting at once across the server.
const maxPending = 10000

// requestIDPrefix marks the ids of the server's own requests, so that an
// IQ result for the server that is not one of them is dropped without a
// lookup.
const requestIDPrefix = "xmppd-"

// pending is one request waiting for its answer.
type pending struct {
	from  jid.JID // who sent it: the answer must be addressed there
	to    jid.JID // whom it was sent to: the answer must come from there
	fn    func(ctx context.Context, reply *Stanza, err error)
	timer *time.Timer
}

// requests holds the server's own IQ requests until they are answered.
type requests struct {
	mu sync.Mutex
	m  map[string]*pending
}

// Request sends an IQ of type typ (get or set) with payload from the
// server's domain to a JID (a client's full JID, say) and calls fn once
// with the answer: the result or error IQ (err nil), or ErrRequestTimeout
// after timeout. fn runs on the goroutine that routed the answer, or on a
// timer's: it must not block.
//
// An answer counts only if it comes from the JID the request went to: an
// IQ result is matched by id and sender (RFC 6120 §8.2.3), and ids are
// random, so no other client can answer in the addressee's place.
func (r *Router) Request(ctx context.Context, typ string, to jid.JID, payload xml.TokenReader, timeout time.Duration, fn func(ctx context.Context, reply *Stanza, err error)) error {
	return r.RequestFrom(ctx, r.domain, typ, to, payload, timeout, fn)
}

// RequestFrom is Request sent from a local account's bare JID instead of
// the server's domain: the server acting for the account towards another
// entity (XEP-0357's notifications to a push app server come from the
// user's bare JID). The answer must be addressed to from.
func (r *Router) RequestFrom(ctx context.Context, from jid.JID, typ string, to jid.JID, payload xml.TokenReader, timeout time.Duration, fn func(ctx context.Context, reply *Stanza, err error)) error {
	if !from.Equal(r.domain) && (from.Domainpart() != r.domain.Domainpart() || from.Localpart() == "" || from.Resourcepart() != "") {
		return errors.New("router: a request comes from the server's domain or a local bare JID")
	}
	if typ != "get" && typ != "set" {
		return errors.New("router: a request is an iq of type get or set")
	}
	var b [10]byte
	rand.Read(b[:])
	id := requestIDPrefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	st, err := Build(KindIQ, typ, id, from, to, payload)
	if err != nil {
		return err
	}
	p := &pending{from: from, to: to, fn: fn}
	r.req.mu.Lock()
	if len(r.req.m) >= maxPending {
		r.req.mu.Unlock()
		return ErrTooManyRequests
	}
	if r.req.m == nil {
		r.req.m = map[string]*pending{}
	}
	r.req.m[id] = p
	// Armed under the lock, so that the timer's callback finds p in place.
	p.timer = time.AfterFunc(timeout, func() {
		if r.takeRequest(id, nil) != nil {
			fn(context.Background(), nil, ErrRequestTimeout)
		}
	})
	r.req.mu.Unlock()
	r.Route(ctx, st)
	return nil
}

// takeRequest removes the request id and returns it when answer (nil for
// the timer) may answer it: it comes from the addressee of the request
// and is addressed to its sender.
func (r *Router) takeRequest(id string, answer *Stanza) *pending {
	r.req.mu.Lock()
	defer r.req.mu.Unlock()
	p, ok := r.req.m[id]
	if !ok || (answer != nil && (!answer.From.Equal(p.to) || !answer.To.Equal(p.from))) {
		return nil
	}
	delete(r.req.m, id)
	return p
}

// answer hands an IQ result or error addressed to the server (or to a
// local account's bare JID) to the request it answers, if any.
func (r *Router) answer(ctx context.Context, st *Stanza) {
	if len(st.ID) <= len(requestIDPrefix) || st.ID[:len(requestIDPrefix)] != requestIDPrefix {
		return
	}
	p := r.takeRequest(st.ID, st)
	if p == nil {
		return
	}
	p.timer.Stop()
	p.fn(ctx, st, nil)
}
