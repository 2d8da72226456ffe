// Package pep implements XEP-0163 Personal Eventing Protocol: a XEP-0060
// publish-subscribe service on every local account's bare JID, which
// OMEMO (XEP-0384 device lists and bundles), avatars (XEP-0084), nicknames
// and bookmarks (XEP-0402, XEP-0223) use.
//
// It registers with the router: pubsub and pubsub#owner IQs to an
// account (router classes ToSelf for the owner, ToBare for others); the
// pubsub/pep identity and the pubsub features of the account's
// disco#info; the disco#info of a node and the account's disco#items
// (Registry.SetAccountNodes). The last items go out when the Interest's
// owner (entity capabilities) calls CapsKnown.
//
// The owner publishes (nodes are created on first publish, with
// publish-options as their configuration; on an existing node they are
// preconditions), retracts, creates, configures, deletes and purges.
// Anyone the node's access model allows (open, presence, roster,
// whitelist; rosters through the Roster interface) reads items and sees
// the node in disco. Events go to the owner's available resources and to
// those of contacts with a presence subscription the model allows, each
// only if the Interest says it announced node+notify (entity
// capabilities); CapsKnown sends a resource the last published items.
//
// Nodes and items are stored (Store: storage's PEP); limits bound the
// nodes per account (not-allowed + max-nodes-exceeded), the items a node
// keeps (max_items at most MaxItems: not-acceptable beyond; publishing
// past it drops the oldest) and an item's payload (not-acceptable +
// payload-too-big).
//
// It deliberately does not do XEP-0060 subscriptions (subscribe is
// feature-not-implemented: PEP's interest is presence and +notify),
// affiliations, the authorize access model, collection nodes or pubsub
// services of their own; events to remote contacts wait for federation.
package pep
