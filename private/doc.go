// Package private implements XEP-0049: Private XML Storage
// (jabber:iq:private), and the conversions that keep bookmarks in step
// between it and PEP: XEP-0402 (urn:xmpp:bookmarks:1, "#compat") and
// XEP-0048's PEP node (storage:bookmarks, "#compat-pep").
//
// It registers with the router: private XML get and set on behalf of the
// account (IQ without to, or to the owner's bare JID); the same to another
// account's bare JID, refused with auth/forbidden (XEP-0049 §2.3 prefers
// it to service-unavailable); jabber:iq:private among the server's and the
// accounts' disco#info features, and urn:xmpp:bookmarks:1#compat and
// #compat-pep among the accounts' once a PEP is wired.
//
// What a set holds is stored per (account, namespace) through Store
// (storage's private_xml table): the set's elements of that namespace,
// serialised again with their namespace declared, replacing what was
// stored; a get answers them, or the element it asked for, empty, when
// nothing is stored (§2.3). Limits: Options.MaxBytes per namespace
// (modify/not-acceptable with a text) and Options.MaxItems namespaces per
// account (cancel/not-allowed). A query without a child element, or one in
// jabber:client, jabber:server or jabber:iq:private itself, is refused
// with modify/not-acceptable (§2.3: the reserved namespaces a server may
// refuse; the rest of jabber:* and vcard-temp are allowed, since clients
// have stored such elements).
//
// Bookmarks (when a PEP is wired: Options.PEP): a set of
// storage:bookmarks is stored here and also published to PEP — the
// XEP-0402 items that changed (one per room, id the room's JID, with the
// publish-options XEP-0402 §3.3 asks for), retractions of the rooms that
// went, and the whole <storage/> as item "current" of the XEP-0048 node
// when it differs. A get of storage:bookmarks answers from the XEP-0402
// node when it has items, keeping the <url/> elements of the stored copy.
// SyncFromPEP, which the PEP service calls when either bookmark node of an
// account changes, brings the private copy and the other node into step.
// Writes to PEP from here do not come back through SyncFromPEP (the
// account is marked while they run), and a sync that finds nothing to
// change writes nothing, so changes never echo.
package private
