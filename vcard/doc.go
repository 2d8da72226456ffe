// Package vcard implements XEP-0054: vcard-temp, with XEP-0153 photo
// hashes in presence and, once a PEP service is wired, XEP-0398 (the
// vCard photo and the XEP-0084 avatar kept in step) and XEP-0172 (the vCard
// NICKNAME and the PEP nickname kept in step).
//
// It registers with the router: vCard get and set on behalf of the account
// (IQ without to, or to the owner's bare JID); vCard get to another local
// account's bare JID, answered by the server (set there is forbidden);
// vcard-temp among the server's and the accounts' disco#info features
// (urn:xmpp:pep-vcard-conversion:0 too when a PEP is wired); a
// BroadcastPresence hook that puts the photo hash into every available
// broadcast presence; OnUnavailable and OnUnbind, to forget the hash of an
// account that has gone offline.
//
// A vCard is stored through Store (storage's vcards table) as the owner
// set it (serialised again, its namespace declared on it), at most
// Options.MaxBytes; a larger one is refused with modify/not-acceptable. The
// value presence advertises is stored beside it and kept in memory while
// the account has an available resource: read at its first presence,
// replaced by every set, so that presence never reads the vCard.
//
// Answers: the owner asking for a vCard never set gets an empty
// <vCard xmlns='vcard-temp'/> (XEP-0054 §3.1 allows it, ejabberd and
// Prosody's mod_vcard_legacy do it, and a client must download its own
// vCard before advertising a photo, XEP-0153 §4.2); anyone else gets
// cancel/service-unavailable, as for an account that does not exist
// (XEP-0054 §3.3, version 1.3: the same error for both, against directory
// harvesting).
//
// Presence (XEP-0153 §4.1, XEP-0398 §4): the server puts
// <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x> (or <photo/> when
// the vCard has no photo, or there is no vCard) into the presence, replacing
// the client's own element, including an empty <x/> ("not ready") and a
// wrong hash. A presence whose <x/> holds an empty <photo/> is left alone
// (XEP-0398 §4: a resource that has just emptied the photo says so), as is
// everything when the photo is only an EXTVAL URL (no hash to compute) or
// storage failed to say what the photo is. A presence that already carries
// the right element is passed on as it is, not copied. When a set changes
// the photo, the account's available resources' presence is broadcast
// again with the new hash (as ejabberd's mod_vcard_xupdate does with
// force_update_presence), so that contacts learn of it even from resources
// that do not handle vCard avatars. Directed presence (a MUC join) is not
// rewritten: the router has no rewriting hook for it yet.
//
// PEP (Options.PEP): a set whose photo or
// nickname changed publishes the avatar (data, then metadata, as XEP-0398
// §3.2 orders) and the nickname, with pubsub#access_model open as the
// configuration of a node the publish creates (as Prosody's
// mod_vcard_legacy: the vCard is anyone's to read, and Conversations
// publishes avatars with access_model=open); a node the owner configured
// otherwise keeps its configuration. SyncFromPEP, which the PEP service calls
// when the avatar metadata or nickname node of an account changes, copies
// them into the stored vCard. Writes that SyncFromPEP makes are never
// published back, the publishes a set makes do not come back through
// SyncFromPEP, and a sync that changes nothing writes nothing: no echo.
//
// It does not keep vCards of the server or of rooms, search them
// (XEP-0055), or convert to vCard4 (XEP-0292).
package vcard
