package router

import (
	"context"
	"slices"
)

// Remote takes the stanzas the router has no local destination for: those
// addressed to a domain that is neither the router's nor one registered
// with Domain. Federation (package s2s) is the first Remote; a cluster's
// other nodes would be another. Route must not block on the network: a
// Remote queues, and answers the sender itself (through the router) when
// the stanza cannot be delivered, with remote-server-not-found or
// remote-server-timeout (RFC 6120 §8.3.3.15, §8.3.3.16).
type Remote interface {
	Route(ctx context.Context, st *Stanza)
}

// Remote registers the remote route; without one, stanzas for other
// domains are answered with remote-server-not-found.
func (r *Registry) Remote(rem Remote) {
	if rem == nil {
		panic("router: nil remote route")
	}
	if r.remote != nil {
		panic("router: multiple registrations for the remote route")
	}
	r.remote = rem
}

// Serves reports whether domain is routed here: the router's own domain or
// one registered with Domain (a MUC service, the upload service, a
// component). Stanzas arriving from other servers must be addressed to
// one of these.
func (r *Router) Serves(domain string) bool {
	if domain == r.domain.Domainpart() {
		return true
	}
	_, ok := r.reg.domains[domain]
	return ok
}

// Domains returns the domains routed here, the router's own first and the
// rest sorted (for certificates and logs).
func (r *Router) Domains() []string {
	var rest []string
	for d := range r.reg.domains {
		rest = append(rest, d)
	}
	slices.Sort(rest)
	return append([]string{r.domain.Domainpart()}, rest...)
}
