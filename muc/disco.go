package muc

import (
	"encoding/xml"
	"strconv"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// queryNode returns the node attribute of an IQ's query.
func queryNode(st *router.Stanza) string {
	node := ""
	children(st, func(d *xml.Decoder, start xml.StartElement) error {
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "node" {
				node = a.Value
			}
		}
		return d.Skip()
	})
	return node
}

// serviceInfo is the service's disco#info (XEP-0045 §6.1).
func (s *Service) serviceInfo(st *router.Stanza, w *xw) error {
	if queryNode(st) != "" {
		return errText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	w.open("query", "xmlns", NSInfo)
	w.empty("identity", "category", "conference", "type", "text", "name", "Chatrooms")
	for _, f := range []string{NSInfo, NSItems, NS, NSPing, NSSelfPing} {
		w.empty("feature", "var", f)
	}
	w.close("query")
	return nil
}

// serviceItems lists the public rooms (XEP-0045 §6.2).
func (s *Service) serviceItems(st *router.Stanza, w *xw) error {
	if queryNode(st) != "" {
		return errText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	w.open("query", "xmlns", NSItems)
	for _, r := range s.publicRooms() {
		r.mu.Lock()
		name := r.cfg.name
		r.mu.Unlock()
		if name == "" {
			name = r.name
		}
		w.empty("item", "jid", r.jidStr, "name", name)
	}
	w.close("query")
	return nil
}

// infoLocked answers a room's disco#info (XEP-0045 §6.3) with its
// features and a muc#roominfo form. A locked room is not there yet for
// anyone but its owners.
func (r *room) infoLocked(st *router.Stanza) {
	if r.locked && r.affOf(st.From.Bare().String()) != affOwner {
		r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		return
	}
	switch queryNode(st) {
	case "":
	case "x-roomuser-item":
		// XEP-0045 §7.12: the requester's reserved nick, if any.
		var w xw
		w.open("query", "xmlns", NSInfo, "node", "x-roomuser-item")
		if nick := r.affs[st.From.Bare().String()].nick; nick != "" {
			w.empty("identity", "category", "conference", "name", nick, "type", "text")
		}
		w.close("query")
		r.resultLocked(st, w.b)
		return
	default:
		r.errorLocked(st, errText(stanza.Cancel, stanza.ItemNotFound, "no such node"))
		return
	}
	c := &r.cfg
	name := c.name
	if name == "" {
		name = r.name
	}
	pick := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	var w xw
	w.open("query", "xmlns", NSInfo)
	w.empty("identity", "category", "conference", "type", "text", "name", name)
	for _, f := range []string{
		NSInfo, NS, NSSelfPing,
		pick(c.persistent, "muc_persistent", "muc_temporary"),
		pick(c.membersOnly, "muc_membersonly", "muc_open"),
		pick(c.passwordProtected, "muc_passwordprotected", "muc_unsecured"),
		pick(c.moderated, "muc_moderated", "muc_unmoderated"),
		pick(c.public, "muc_public", "muc_hidden"),
		pick(c.whoisAnyone, "muc_nonanonymous", "muc_semianonymous"),
	} {
		w.empty("feature", "var", f)
	}
	if r.archivesLocked() {
		for _, f := range []string{NSMAM, NSMAMExtended, NSSID} {
			w.empty("feature", "var", f)
		}
	}
	w.open("x", "xmlns", NSData, "type", "result")
	field := func(v, label string, values ...string) {
		formField(&w, "", v, label, values...)
		w.close("field")
	}
	formField(&w, "hidden", "FORM_TYPE", "", "http://jabber.org/protocol/muc#roominfo")
	w.close("field")
	field(fieldName, "Name", name)
	field("muc#roominfo_description", "Description", c.desc)
	field("muc#roominfo_occupants", "Number of occupants", strconv.Itoa(len(r.occupants)))
	field("muc#roominfo_subject", "Subject", r.subject)
	field("muc#roominfo_subjectmod", "Occupants may change the subject", boolValue(c.changeSubject))
	field(fieldHistory, "Messages of history sent on entering", strconv.Itoa(c.historyLength))
	field(fieldMaxUsers, "Most occupants", strconv.Itoa(r.maxUsersLocked()))
	w.close("x")
	w.close("query")
	r.resultLocked(st, w.b)
}
