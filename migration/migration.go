// Package migration is the portable form of a server's state that imports
// and exports pass through: what a reader (an Openfire database, a XEP-0227
// file, Openfire's User Import/Export plugin file) produces and what a writer
// (xmppd's storage, a XEP-0227 file) consumes. Readers know nothing of
// storage's tables and writers nothing of the source's, so each source and
// each destination is written once.
package migration

import (
	"time"

	"xmppd.dev/xmppd/storage"
)

// Data is everything carried across for one domain.
type Data struct {
	// Domain is the XMPP domain the data belongs to, as found in the
	// source (Openfire's xmpp.domain, the host of a XEP-0227 file), or the
	// domain a reader rewrote every JID to when asked to (openfire's
	// RewriteDomain): the JIDs in Data are always of this domain.
	Domain string
	Users  []User
	// Rooms are the persistent MUC rooms, of every MUC service.
	Rooms []Room
	// SharedGroups are Openfire's shared roster groups.
	SharedGroups []SharedGroup
	// Skipped lists what was found but cannot be carried across, one
	// line each, for the dry run's report.
	Skipped []string
}

// User is one account and what belongs to it.
type User struct {
	// Username is the localpart as the source stores it; writers
	// normalise it (PRECIS) and refuse it when it is not valid.
	Username string
	// Name and Email are the account's display name and address, where
	// the source has them (kept in the vCard when it has none).
	Name  string
	Email string
	// CreatedAt is when the account was created; zero when unknown.
	CreatedAt time.Time

	// Password is the plain password when the source reveals it
	// (plainPassword, a decrypted encryptedPassword, a XEP-0227 password);
	// "" otherwise. Writers derive every SCRAM credential from it.
	Password string
	// Credentials are SCRAM keys carried as they are (Openfire keeps
	// SCRAM-SHA-1's), used where Password is "" and checked against it
	// where both exist.
	Credentials []storage.Credential
	// PasswordProblem says, when neither a password nor any credential
	// could be kept, why not (the user must be given a new password).
	PasswordProblem string

	Roster []storage.RosterItem
	// Offline holds the messages waiting for the user, oldest first;
	// Stanza is the serialised <message/>.
	Offline []storage.OfflineMessage
	// VCard is the serialised <vCard xmlns='vcard-temp'/>, or nil.
	VCard []byte
	// Private is private XML storage (XEP-0049), keyed by namespace,
	// each value a serialised element.
	Private map[string][]byte
}

// Room is a persistent MUC room.
type Room struct {
	storage.MUCRoom
	// Nicks are the reserved nicknames of members, by bare JID
	// (XEP-0045 §7.12; Openfire's ofMucMember).
	Nicks map[string]string
	// Log is the room's message log (Openfire's ofMucConversationLog),
	// oldest first, carried into the room's archive and history.
	Log []storage.MUCMessage
}

// SharedGroup is a group of users that appears in the rosters of the users
// it is shown to, without subscriptions of their own (Openfire's shared
// roster groups, ofGroup and ofGroupProp).
type SharedGroup struct {
	// Name identifies the group (Openfire's groupName).
	Name        string
	Description string
	// DisplayName is the roster group its members appear under.
	DisplayName string
	// Members are bare JIDs.
	Members []string
	// ShowTo says who sees the group in their roster: "everybody" (every
	// user of the domain), "members" (the group's own members), or
	// "groups" (the members of ShowToGroups and, with it, the group's own
	// members: Openfire's onlyGroup sharedRoster.showInRoster), or ""
	// (shown to nobody: carried only because another group's ShowToGroups
	// names it, for its members).
	ShowTo       string
	ShowToGroups []string
}
