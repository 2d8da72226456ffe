package migration

import "strings"

// RewriteDomain moves d to the domain to: d.Domain becomes to, and every
// JID at the old domain or one of its subdomains (conference.old becomes
// conference.to) is rewritten alike, in rosters, rooms (their JIDs,
// services, creators, affiliations, reserved nicks and log senders) and
// shared groups. Stored stanzas (offline messages, room logs) are left as
// they were sent.
func (d *Data) RewriteDomain(to string) {
	from := d.Domain
	if from == to || from == "" {
		return
	}
	rw := func(j string) string { return rewriteJID(j, from, to) }
	d.Domain = to
	for i := range d.Users {
		u := &d.Users[i]
		for k := range u.Roster {
			u.Roster[k].Contact = rw(u.Roster[k].Contact)
		}
	}
	for i := range d.Rooms {
		r := &d.Rooms[i]
		r.JID, r.Service, r.Creator = rw(r.JID), rewriteDomain(r.Service, from, to), rw(r.Creator)
		for k := range r.Affiliations {
			r.Affiliations[k].JID = rw(r.Affiliations[k].JID)
		}
		if r.Nicks != nil {
			nicks := make(map[string]string, len(r.Nicks))
			for j, n := range r.Nicks {
				nicks[rw(j)] = n
			}
			r.Nicks = nicks
		}
		for k := range r.Log {
			r.Log[k].Sender = rw(r.Log[k].Sender)
		}
	}
	for i := range d.SharedGroups {
		g := &d.SharedGroups[i]
		for k := range g.Members {
			g.Members[k] = rw(g.Members[k])
		}
	}
}

// rewriteJID rewrites the domain of j (local@domain/resource, any part but
// the domain optional) from from (or a subdomain of it) to to.
func rewriteJID(j, from, to string) string {
	local, rest := "", j
	if i := strings.IndexAny(j, "@/"); i >= 0 && j[i] == '@' {
		local, rest = j[:i+1], j[i+1:]
	}
	domain, res := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		domain, res = rest[:i], rest[i:]
	}
	return local + rewriteDomain(domain, from, to) + res
}

func rewriteDomain(domain, from, to string) string {
	switch {
	case strings.EqualFold(domain, from):
		return to
	case len(domain) > len(from) && strings.EqualFold(domain[len(domain)-len(from):], from) && domain[len(domain)-len(from)-1] == '.':
		return domain[:len(domain)-len(from)] + to
	}
	return domain
}
