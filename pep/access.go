package pep

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/storage"
)

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

// access checks that requester may read owner's node n (XEP-0060 §6.5.9's
// errors for each access model): nil, a stanza error, or a storage
// failure.
func (s *Service) access(ctx context.Context, owner, requester jid.JID, n storage.PEPNode) error {
	if requester.Equal(owner) || n.AccessModel == AccessOpen {
		return nil
	}
	switch n.AccessModel {
	case AccessPresence:
		sub, _, err := s.roster.Relation(ctx, owner, requester)
		if err != nil {
			return err
		}
		if sub == "from" || sub == "both" {
			return nil
		}
		return appError(stanza.Auth, stanza.NotAuthorized, "presence-subscription-required", "")
	case AccessRoster:
		_, groups, err := s.roster.Relation(ctx, owner, requester)
		if err != nil {
			return err
		}
		if inGroups(groups, n.RosterGroups) {
			return nil
		}
		return appError(stanza.Auth, stanza.NotAuthorized, "not-in-roster-group", "")
	}
	return appError(stanza.Cancel, stanza.NotAllowed, "closed-node", "")
}
