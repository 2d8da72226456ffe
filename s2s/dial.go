package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Resolver is the part of net.Resolver the connector uses (a fake in
// tests).
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// target is one address to try for a peer domain.
type target struct {
	addr      string
	directTLS bool // XEP-0368: TLS from the first byte
}

// errNoService is a domain whose SRV record says it offers no
// server-to-server service (target ".", RFC 2782).
var errNoService = errors.New("s2s: the domain's SRV record says it takes no server connections")

// targets returns the addresses to try for domain, in order: a configured
// route; else the SRV records of _xmpps-server._tcp (direct TLS) and
// _xmpp-server._tcp, by priority (direct TLS first at equal priority,
// XEP-0368 §3) and, within a priority, in the weighted random order
// net.LookupSRV gives (RFC 2782); else the domain itself on port 5269.
func targets(ctx context.Context, res Resolver, routes map[string]string, domain string) ([]target, error) {
	if a, ok := routes[domain]; ok {
		return []target{{addr: a}}, nil
	}
	type prio struct {
		t target
		p uint16
	}
	var all []prio
	var lookupErr error
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := res.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			var de *net.DNSError
			if !errors.As(err, &de) || !de.IsNotFound {
				lookupErr = err
			}
			continue
		}
		if len(srvs) == 1 && (srvs[0].Target == "." || srvs[0].Target == "") {
			if !svc.direct {
				return nil, errNoService
			}
			continue
		}
		for _, s := range srvs {
			host := strings.TrimSuffix(s.Target, ".")
			all = append(all, prio{target{net.JoinHostPort(host, strconv.Itoa(int(s.Port))), svc.direct}, s.Priority})
		}
	}
	if len(all) == 0 {
		if lookupErr != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("s2s: look up %s: %w", domain, lookupErr)
		}
		// No SRV records: the domain itself (RFC 6120 §3.2.2).
		return []target{{addr: net.JoinHostPort(domain, "5269")}}, nil
	}
	slices.SortStableFunc(all, func(a, b prio) int {
		if a.p != b.p {
			return int(a.p) - int(b.p)
		}
		switch {
		case a.t.directTLS && !b.t.directTLS:
			return -1
		case b.t.directTLS && !a.t.directTLS:
			return 1
		}
		return 0
	})
	out := make([]target, len(all))
	for i, p := range all {
		out[i] = p.t
	}
	return out, nil
}
