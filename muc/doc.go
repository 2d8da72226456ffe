// Package muc implements XEP-0045: Multi-User Chat, a group chat service
// on its own domain (conference.<domain> by default), with XEP-0410
// self-ping answered by the service and the rooms' side of XEP-0249
// direct invitations left to the router (they are plain messages between
// users).
//
// # What it registers
//
// [Service.Register] makes the service the router's component for its
// domain (router.Registry.Domain): every stanza to the domain or a JID at
// it reaches [Service.HandleStanza]. It also lists the service in the
// server's disco#items. The service answers disco#info and disco#items
// itself, for the service (identity conference/text; its items are the
// public rooms) and for each room (its muc_* features and a
// muc#roominfo form).
//
// # Rooms
//
// A room is created by the first presence to room@service/nick; with
// <x xmlns='http://jabber.org/protocol/muc'/> it stays locked (status 201)
// until its owner submits the muc#roomconfig form, an empty one making an
// instant room; without it (groupchat 1.0) it is open at once. Joining,
// presence updates, nick changes (303), exits, kicks (307), bans (301),
// affiliation (321) and members-only (322) removals, service shutdown
// (332) and removals after delivery errors (333) produce the presence
// XEP-0045 §7 and §8 prescribe, with 110 on the occupant's own and the
// real JID shown to those allowed to see it (moderators, or everyone in a
// non-anonymous room: 100). Group chat messages are reflected to every
// occupant, the sender included, with the same id; private messages go
// between occupant JIDs with a muc#user element; mediated invitations and
// declines are relayed from the room; IQs between occupants are relayed
// without changing their id. The room sends discussion history on entry
// (maxchars, maxstanzas, seconds, since; XEP-0203 delay from the room)
// and then the subject. The affiliation and role rules are those of
// XEP-0045 §5 (admins and owners act on affiliations, moderators on
// roles; only owners touch admins and owners; a room keeps an owner).
//
// A room's state is guarded by its own mutex; the service's map of rooms
// by another, never held while a room's is wanted. Every stanza a room
// sends is queued under its mutex and routed once the mutex is released,
// in order, by the goroutine that found the queue idle: an error the
// router bounces back into the room while delivering cannot deadlock. A
// group chat message is serialised once; each recipient's copy only adds
// its to, and the copies of one fan-out share one allocation. There is no
// goroutine per room or per message.
//
// # Archives
//
// With an [Archive] in [Options] (package mam's), a room whose
// muc#roomconfig_enablearchiving is on (the default of a room persistent
// from its first configuration; off for a temporary one) archives its
// group chat messages with a body: each goes to Archive.Append once, as
// the room broadcasts it, and every copy, the sender's included, and the
// history carry the XEP-0359 <stanza-id/> by the room that Append gave
// (XEP-0313 §6). Whether or not the room archives, a <stanza-id/> an
// occupant sends claiming to be the room's is removed. XEP-0313 queries
// (and the search form and metadata) to the room's bare JID are checked by
// the room — an outcast may never read, in a members-only room only
// members, admins and owners may, in another anyone may — and answered by
// Archive.Query without the room's mutex held; a room that does not
// archive answers them with service-unavailable. Its disco#info then
// lists urn:xmpp:mam:2, urn:xmpp:mam:2#extended and urn:xmpp:sid:0. A
// room destroyed by its owner, or a temporary room that archived when it
// empties, has its archive deleted (Archive.Forget).
//
// # Storage
//
// Persistent rooms are written through to a [Store] (package storage's
// MUC repository): their configuration, affiliations and subject, kept
// under the room's mutex so that writes land in order, and their last
// history messages. [Service.Load] reads them at start. The archive is
// not kept here, only whether a room archives. Occupants are never
// stored: after a restart a persistent room is there, empty.
// Temporary rooms live in memory and go when their last occupant leaves.
//
// # Limits
//
// [Options] bounds the rooms one user may have created that still exist
// (not-allowed), the occupants of a room (service-unavailable; admins and
// owners may still join; a room's maxusers cannot exceed it), the history
// a room keeps and the most an owner may configure, and the rate of
// messages an occupant sends (a token bucket per occupant;
// resource-constraint when it is empty).
//
// # What it does not do
//
// No reserved nicknames or room registration (jabber:iq:register), no
// voice requests, no archive of its own (without an Archive, nothing is
// archived and no stanza-id is added), no status 170 on entering a room
// that archives (XEP-0045 §7.2.12 is about public logs), no
// multi-session nicks (one session per nick: another session
// asking for a nick in use gets conflict), and no roomowners/roomadmins
// fields in the configuration form (use muc#admin).
package muc
