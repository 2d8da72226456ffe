// Package mam keeps the message archives (XEP-0313 Message Archive
// Management, urn:xmpp:mam:2 and its #extended features) and hands out
// the stanza ids (XEP-0359) that name archived messages.
//
// Every account has an archive of its 1:1 messages, both directions: the
// router's outbound pipeline archives what a user sends, the inbound one
// what arrives for a user (including messages offline storage takes), and
// the copy the recipient's sessions get carries <stanza-id by='user@domain'/>.
// A stanza-id claiming to be by the recipient is removed from every message
// first. What is archivable follows XEP-0313 §7: chat and normal messages
// with a body, or with a XEP-0334 <store/> hint; never <no-store/> or
// <no-permanent-store/>.
//
// Rows are written off the delivery path, in batches, by one writer
// goroutine (see writer); queries, metadata and preferences are IQs to the
// user's own bare JID. Rooms that archive use the same archive through
// [Service.Rooms], which implements muc.Archive; the MUC service decides
// which rooms archive and who may read them.
package mam
