package pep

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Events are built once as bytes, without a to, and copied per recipient
// with only the to added (router.WithTo), as rooms fan out.

func eventStart(owner jid.JID) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<message type='headline'"...)
	b = xmlenc.AppendAttr(b, "from", owner.String())
	return append(b, "><event xmlns='"+NSEvent+"'>"...)
}

func eventEnd(b []byte) []byte { return append(b, "</event></message>"...) }

func appendItemsStart(b []byte, node string) []byte {
	b = append(b, "<items"...)
	b = xmlenc.AppendAttr(b, "node", node)
	return append(b, '>')
}

// itemEvent is the notification of a published item (XEP-0060 §7.1.2.1).
func itemEvent(owner jid.JID, node, id string, payload []byte) []byte {
	b := appendItemsStart(eventStart(owner), node)
	b = append(b, "<item"...)
	b = xmlenc.AppendAttr(b, "id", id)
	b = append(b, '>')
	b = append(b, payload...)
	b = append(b, "</item></items>"...)
	return eventEnd(b)
}

// retractEvent is the notification of a retracted item (§7.2.2.1).
func retractEvent(owner jid.JID, node, id string) []byte {
	b := appendItemsStart(eventStart(owner), node)
	b = append(b, "<retract"...)
	b = xmlenc.AppendAttr(b, "id", id)
	b = append(b, "/></items>"...)
	return eventEnd(b)
}

// nodeEvent is the notification of a deleted (verb "delete", §8.4.2) or
// purged ("purge", §8.5.2) node.
func nodeEvent(owner jid.JID, verb, node string) []byte {
	b := append(eventStart(owner), '<')
	b = append(b, verb...)
	b = xmlenc.AppendAttr(b, "node", node)
	b = append(b, "/>"...)
	return eventEnd(b)
}

// send routes an event to one full JID. It passes the inbound pipeline as
// any message does, so that a recipient's block list applies.
func (s *Service) send(ctx context.Context, owner, to jid.JID, raw []byte) {
	s.router.Route(context.WithoutCancel(ctx), &router.Stanza{Kind: router.KindMessage, Type: "headline", From: owner, To: to,
		Payload: eventName, Raw: router.WithTo(raw, to)})
}

var eventName = xmlName(NSEvent, "event")

// broadcast sends an event of owner's node n to whoever may and wants to
// receive it (XEP-0163 §4.3): the owner's available resources, and those
// of the contacts that receive the owner's presence (from or both) whom
// the access model allows, each only if interested in the node.
func (s *Service) broadcast(ctx context.Context, owner jid.JID, n storage.PEPNode, raw []byte) {
	for _, full := range s.router.AvailableResources(owner) {
		if s.wants(full, n.Node) {
			s.send(ctx, owner, full, raw)
		}
	}
	if n.AccessModel == AccessWhitelist {
		return
	}
	subs, err := s.roster.Subscribers(ctx, owner)
	if s.failed(err, "subscribers", owner) {
		return
	}
	domain := s.router.Domain().Domainpart()
	var wanting []jid.JID
	for _, c := range subs {
		if c.Domainpart() != domain || c.Equal(owner) {
			continue // no federation yet; the owner (in its own roster) was served above
		}
		wanting = wanting[:0]
		for _, full := range s.router.AvailableResources(c) {
			if s.wants(full, n.Node) {
				wanting = append(wanting, full)
			}
		}
		if len(wanting) == 0 {
			continue
		}
		if n.AccessModel == AccessRoster {
			_, groups, err := s.roster.Relation(ctx, owner, c)
			if s.failed(err, "relation", owner) || !inGroups(groups, n.RosterGroups) {
				continue
			}
		}
		for _, full := range wanting {
			s.send(ctx, owner, full, raw)
		}
	}
}

func inGroups(groups, allowed []string) bool {
	for _, g := range groups {
		if slices.Contains(allowed, g) {
			return true
		}
	}
	return false
}

// CapsKnown sends the resource full the last published item of each node
// it is interested in, of every account whose events it may receive: its
// own, and those whose presence it receives (roster to or both) — XEP-0163
// §6.2, the last item on presence. Whoever learns a resource's
// capabilities calls it (after its initial presence).
func (s *Service) CapsKnown(ctx context.Context, full jid.JID) {
	user := full.Bare()
	subs, err := s.roster.SubscribedTo(ctx, user)
	if s.failed(err, "subscribed to", user) {
		return
	}
	domain := s.router.Domain().Domainpart()
	owners := []string{user.String()}
	for _, o := range subs {
		if o.Domainpart() == domain && !o.Equal(user) {
			owners = append(owners, o.String())
		}
	}
	last, err := s.store.Last(ctx, owners)
	if s.failed(err, "last items", user) {
		return
	}
	// Payloads only of what is sent: a login would otherwise read every
	// contact's every node.
	var send []storage.PEPLast
	var seqs []int64
	for _, l := range last {
		if l.Node.SendLast != sendOnPresence || !s.wants(full, l.Node.Node) {
			continue
		}
		if l.Owner != user.String() {
			switch l.Node.AccessModel {
			case AccessOpen, AccessPresence:
				// The contact receives the owner's presence: both allow it.
			case AccessRoster:
				o, err := jid.Parse(l.Owner)
				if err != nil {
					continue
				}
				_, groups, err := s.roster.Relation(ctx, o, user)
				if s.failed(err, "relation", o) || !inGroups(groups, l.Node.RosterGroups) {
					continue
				}
			default:
				continue
			}
		}
		send = append(send, l)
		seqs = append(seqs, l.Seq)
	}
	if len(send) == 0 {
		return
	}
	payloads, err := s.store.Payloads(ctx, seqs)
	if s.failed(err, "payloads", user) {
		return
	}
	for _, l := range send {
		p, ok := payloads[l.Seq]
		if !ok {
			continue // retracted meanwhile
		}
		o, err := jid.Parse(l.Owner)
		if err != nil {
			continue
		}
		s.send(ctx, o, full, itemEvent(o, l.Node.Node, l.ItemID, p))
	}
}
