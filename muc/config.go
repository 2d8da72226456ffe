package muc

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// roomConfig is a room's configuration (XEP-0045 §10.2, muc#roomconfig).
type roomConfig struct {
	name, desc        string
	persistent        bool
	public            bool
	membersOnly       bool
	moderated         bool
	passwordProtected bool
	password          string
	maxUsers          int
	whoisAnyone       bool // non-anonymous; otherwise moderators see JIDs
	historyLength     int
	allowPM           string // "anyone", "participants", "moderators", "none"
	changeSubject     bool   // participants may change the subject
	archive           bool   // archives its messages, when the service has an Archive
}

func (s *Service) defaultConfig() roomConfig {
	return roomConfig{
		public:        true,
		maxUsers:      s.opts.MaxOccupants,
		historyLength: s.opts.HistoryLength,
		allowPM:       "anyone",
	}
}

// Form field names of muc#roomconfig. The history length is XEP-0045's
// muc#maxhistoryfetch; Prosody's muc#roomconfig_historylength is read as
// well.
const (
	fieldName          = "muc#roomconfig_roomname"
	fieldDesc          = "muc#roomconfig_roomdesc"
	fieldPersistent    = "muc#roomconfig_persistentroom"
	fieldPublic        = "muc#roomconfig_publicroom"
	fieldMembersOnly   = "muc#roomconfig_membersonly"
	fieldModerated     = "muc#roomconfig_moderatedroom"
	fieldPasswordProt  = "muc#roomconfig_passwordprotectedroom"
	fieldSecret        = "muc#roomconfig_roomsecret"
	fieldMaxUsers      = "muc#roomconfig_maxusers"
	fieldWhois         = "muc#roomconfig_whois"
	fieldHistory       = "muc#maxhistoryfetch"
	fieldHistoryAlias  = "muc#roomconfig_historylength"
	fieldAllowPM       = "muc#roomconfig_allowpm"
	fieldChangeSubject = "muc#roomconfig_changesubject"
	// fieldArchive is Prosody's name (mod_muc_mam); XEP-0045 has none.
	fieldArchive = "muc#roomconfig_enablearchiving"
)

// formField writes one data form field with its values.
func formField(w *xw, typ, v, label string, values ...string) {
	w.open("field", "var", v, "type", typ, "label", label)
	for _, val := range values {
		w.elem("value", val)
	}
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// configFormLocked writes the muc#roomconfig form with the room's values.
func (r *room) configFormLocked(w *xw) {
	c := &r.cfg
	max := r.svc.opts.MaxOccupants
	w.open("x", "xmlns", NSData, "type", "form")
	w.elem("title", "Configuration of "+r.jidStr)
	field := func(typ, v, label string, values ...string) {
		formField(w, typ, v, label, values...)
		w.close("field")
	}
	field("hidden", "FORM_TYPE", "", "http://jabber.org/protocol/muc#roomconfig")
	field("text-single", fieldName, "Room name", c.name)
	field("text-single", fieldDesc, "Description", c.desc)
	field("boolean", fieldPersistent, "Keep the room when it is empty", boolValue(c.persistent))
	field("boolean", fieldPublic, "List the room in the directory", boolValue(c.public))
	field("boolean", fieldMembersOnly, "Only members may enter", boolValue(c.membersOnly))
	field("boolean", fieldModerated, "Only participants with voice may speak", boolValue(c.moderated))
	field("boolean", fieldPasswordProt, "A password is needed to enter", boolValue(c.passwordProtected))
	field("text-private", fieldSecret, "Password", c.password)

	formField(w, "list-single", fieldMaxUsers, "Most occupants", strconv.Itoa(c.maxUsers))
	opts := []int{10, 20, 30, 50, 100, 200, 500, 1000}
	opts = slices.DeleteFunc(opts, func(n int) bool { return n >= max })
	opts = append(opts, max)
	if !slices.Contains(opts, c.maxUsers) {
		opts = append(opts, c.maxUsers)
		slices.Sort(opts)
	}
	for _, n := range opts {
		w.open("option", "label", strconv.Itoa(n))
		w.elem("value", strconv.Itoa(n))
		w.close("option")
	}
	w.close("field")

	whois := "moderators"
	if c.whoisAnyone {
		whois = "anyone"
	}
	listField(w, fieldWhois, "Who may see real JIDs", whois, "moderators", "Moderators only", "anyone", "Anyone")
	field("text-single", fieldHistory, fmt.Sprintf("Messages of history kept (at most %d)", r.svc.opts.MaxHistoryLength),
		strconv.Itoa(c.historyLength))
	listField(w, fieldAllowPM, "Who may send private messages", c.allowPM,
		"anyone", "Anyone", "participants", "Participants and moderators", "moderators", "Moderators only", "none", "Nobody")
	field("boolean", fieldChangeSubject, "Participants may change the subject", boolValue(c.changeSubject))
	if r.svc.opts.Archive != nil {
		// A new room's form offers archiving on: clients (Gajim) send the
		// whole form back, and one that only turns persistence on must
		// not turn archiving off by echoing a temporary room's value. A
		// temporary room's archive goes with the room.
		field("boolean", fieldArchive, "Archive the messages (XEP-0313)", boolValue(c.archive || r.locked))
	}
	w.close("x")
}

// listField writes a list-single field; opts are value, label pairs.
func listField(w *xw, v, label, value string, opts ...string) {
	formField(w, "list-single", v, label, value)
	for i := 0; i+1 < len(opts); i += 2 {
		w.open("option", "label", opts[i+1])
		w.elem("value", opts[i])
		w.close("option")
	}
	w.close("field")
}

// ownerQuery is a muc#owner query: a submitted form or a destruction.
type ownerQuery struct {
	Form *struct {
		Type   string `xml:"type,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Values []string `xml:"value"`
		} `xml:"field"`
	} `xml:"jabber:x:data x"`
	Destroy *struct {
		JID      string `xml:"jid,attr"`
		Reason   string `xml:"reason"`
		Password string `xml:"password"`
	} `xml:"destroy"`
}

// ownerGetLocked returns the configuration form to an owner.
func (r *room) ownerGetLocked(st *router.Stanza) {
	if r.affOf(st.From.Bare().String()) != affOwner {
		r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only owners may configure the room"))
		return
	}
	var w xw
	w.open("query", "xmlns", NSOwner)
	r.configFormLocked(&w)
	w.close("query")
	r.resultLocked(st, w.b)
}

// ownerSetLocked applies a submitted configuration, cancels the initial
// configuration (which destroys the room) or destroys the room.
func (r *room) ownerSetLocked(ctx context.Context, st *router.Stanza) {
	if r.affOf(st.From.Bare().String()) != affOwner {
		r.errorLocked(st, errText(stanza.Auth, stanza.Forbidden, "only owners may configure or destroy the room"))
		return
	}
	var iq struct {
		Query ownerQuery `xml:"query"`
	}
	if err := st.Decoder().Decode(&iq); err != nil {
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "malformed muc#owner request"))
		return
	}
	q := iq.Query
	switch {
	case q.Destroy != nil:
		d := &destruction{alt: q.Destroy.JID, reason: q.Destroy.Reason, password: q.Destroy.Password}
		if d.alt != "" {
			if _, err := jid.Parse(d.alt); err != nil {
				r.errorLocked(st, errText(stanza.Modify, stanza.JIDMalformed, "invalid alternative venue"))
				return
			}
		}
		if err := r.destroyLocked(ctx, d); err != nil {
			r.errorLocked(st, errText(stanza.Wait, stanza.InternalServerError, ""))
			return
		}
		r.resultLocked(st, nil)
	case q.Form != nil && q.Form.Type == "cancel":
		r.resultLocked(st, nil)
		if r.locked {
			// XEP-0045 §10.1.3: cancelling the initial configuration
			// destroys the room.
			r.destroyLocked(ctx, &destruction{})
		}
	case q.Form != nil && q.Form.Type == "submit":
		fields := map[string][]string{}
		for _, f := range q.Form.Fields {
			fields[f.Var] = f.Values
		}
		cfg, e := r.submitLocked(fields)
		if e != nil {
			r.errorLocked(st, *e)
			return
		}
		r.configureLocked(ctx, st, cfg)
	default:
		r.errorLocked(st, errText(stanza.Modify, stanza.BadRequest, "expected a submitted form or destroy"))
	}
}

// submitLocked reads a submitted form over the current configuration;
// fields left out keep their value.
func (r *room) submitLocked(fields map[string][]string) (roomConfig, *stanza.Error) {
	c := r.cfg
	bad := func(text string) (roomConfig, *stanza.Error) {
		e := errText(stanza.Modify, stanza.NotAcceptable, text)
		return roomConfig{}, &e
	}
	one := func(v string) (string, bool) {
		vals, ok := fields[v]
		if !ok {
			return "", false
		}
		if len(vals) == 0 {
			return "", true
		}
		return vals[0], true
	}
	boolean := func(v string, dst *bool) bool {
		s, ok := one(v)
		if !ok {
			return true
		}
		switch s {
		case "1", "true":
			*dst = true
		case "0", "false", "":
			*dst = false
		default:
			return false
		}
		return true
	}
	for _, b := range []struct {
		v   string
		dst *bool
	}{
		{fieldPersistent, &c.persistent}, {fieldPublic, &c.public}, {fieldMembersOnly, &c.membersOnly},
		{fieldModerated, &c.moderated}, {fieldPasswordProt, &c.passwordProtected}, {fieldChangeSubject, &c.changeSubject},
	} {
		if !boolean(b.v, b.dst) {
			return bad(b.v + " is not a boolean")
		}
	}
	_, archive := fields[fieldArchive]
	switch {
	case archive && r.svc.opts.Archive != nil:
		if !boolean(fieldArchive, &c.archive) {
			return bad(fieldArchive + " is not a boolean")
		}
	case r.locked:
		// A new room archives by default when it is persistent; a room
		// configured before keeps its setting.
		c.archive = c.persistent
	}
	if s, ok := one(fieldName); ok {
		c.name = s
	}
	if s, ok := one(fieldDesc); ok {
		c.desc = s
	}
	if s, ok := one(fieldSecret); ok {
		c.password = s
	}
	if c.passwordProtected && c.password == "" {
		return bad("a password-protected room needs a password")
	}
	if !c.passwordProtected {
		c.password = ""
	}
	if s, ok := one(fieldMaxUsers); ok {
		n, err := strconv.Atoi(s)
		switch {
		case s == "none" || s == "":
			n = r.svc.opts.MaxOccupants
		case err != nil || n < 1:
			return bad(fieldMaxUsers + " is not a number of occupants")
		case n > r.svc.opts.MaxOccupants:
			return bad(fmt.Sprintf("a room may have at most %d occupants", r.svc.opts.MaxOccupants))
		}
		c.maxUsers = n
	}
	if s, ok := one(fieldWhois); ok {
		switch s {
		case "anyone":
			c.whoisAnyone = true
		case "moderators":
			c.whoisAnyone = false
		default:
			return bad(fieldWhois + " is moderators or anyone")
		}
	}
	for _, v := range []string{fieldHistoryAlias, fieldHistory} {
		if s, ok := one(v); ok {
			n, err := strconv.Atoi(s)
			switch {
			case err != nil || n < 0:
				return bad(v + " is not a number of messages")
			case n > r.svc.opts.MaxHistoryLength:
				return bad(fmt.Sprintf("a room may keep at most %d messages of history", r.svc.opts.MaxHistoryLength))
			}
			c.historyLength = n
		}
	}
	if s, ok := one(fieldAllowPM); ok {
		switch s {
		case "anyone", "participants", "moderators", "none":
			c.allowPM = s
		default:
			return bad(fieldAllowPM + " is anyone, participants, moderators or none")
		}
	}
	return c, nil
}

// configureLocked makes cfg the room's configuration: stores it, unlocks
// a new room, tells the occupants what changed (104, 172, 173) and
// removes those a members-only room no longer admits (322).
func (r *room) configureLocked(ctx context.Context, st *router.Stanza, cfg roomConfig) {
	old := r.cfg
	if r.svc.store != nil && (cfg.persistent || old.persistent) {
		sctx, cancel := storeCtx(ctx)
		var err error
		if cfg.persistent {
			err = r.svc.store.SaveRoom(sctx, r.recordLocked(cfg))
		} else {
			err = r.svc.store.DeleteRoom(sctx, r.jidStr)
		}
		cancel()
		if err != nil {
			r.svc.log.Error("could not store room configuration", "room", r.jidStr, "err", err)
			r.errorLocked(st, errText(stanza.Wait, stanza.InternalServerError, ""))
			return
		}
	}
	r.cfg = cfg
	r.hist.resize(cfg.historyLength)
	wasLocked := r.locked
	r.locked = false
	r.resultLocked(st, nil)
	if wasLocked {
		return
	}
	codes := []int{104}
	switch {
	case cfg.whoisAnyone && !old.whoisAnyone:
		codes = append(codes, 172)
	case !cfg.whoisAnyone && old.whoisAnyone:
		codes = append(codes, 173)
	}
	if r.svc.opts.Archive != nil && cfg.archive != old.archive {
		// XEP-0045 §10.2.1: room logging enabled or disabled.
		if cfg.archive {
			codes = append(codes, 170)
		} else {
			codes = append(codes, 171)
		}
	}
	var w xw
	w.header(router.KindMessage, "groupchat", "", r.jidStr)
	w.open("x", "xmlns", NSUser)
	for _, c := range codes {
		w.status(c)
	}
	w.close("x")
	w.close("message")
	for _, q := range r.occupants {
		r.sendLocked(q, router.KindMessage, "groupchat", "", r.jid, w.b)
	}
	if cfg.membersOnly && !old.membersOnly {
		for _, q := range slices.Clone(r.occupants) {
			if a := r.affOf(q.bare); a < affMember {
				r.removeWithLocked(q, presInfo{aff: a, codes: []int{322}})
			}
		}
	}
}

// destroyLocked destroys the room (XEP-0045 §10.9): every occupant gets
// its own unavailable presence with the destroy element, and a stored
// room is deleted, with its archive.
func (r *room) destroyLocked(ctx context.Context, d *destruction) error {
	if r.cfg.persistent && r.svc.store != nil {
		sctx, cancel := storeCtx(ctx)
		err := r.svc.store.DeleteRoom(sctx, r.jidStr)
		cancel()
		if err != nil {
			r.svc.log.Error("could not delete room", "room", r.jidStr, "err", err)
			return err
		}
	}
	r.forgetLocked(ctx)
	for _, o := range r.occupants {
		o.payload = nil
		p := presInfo{typ: "unavailable", destroy: d}
		r.sendLocked(o, router.KindPresence, "unavailable", "", o.jid, r.presenceLocked(o, &p, true, []int{110}))
	}
	r.clearLocked()
	r.destroyed = true
	return nil
}

// recordLocked is the room as stored, with configuration cfg.
func (r *room) recordLocked(cfg roomConfig) storage.MUCRoom {
	whois := "moderators"
	if cfg.whoisAnyone {
		whois = "anyone"
	}
	password := ""
	if cfg.passwordProtected {
		password = cfg.password
	}
	rec := storage.MUCRoom{
		JID: r.jidStr, Service: r.svc.domainStr, Creator: r.creator, CreatedAt: r.created,
		Name: cfg.name, Description: cfg.desc, Public: cfg.public, MembersOnly: cfg.membersOnly,
		Moderated: cfg.moderated, Password: password, MaxUsers: cfg.maxUsers, Whois: whois,
		HistoryLength: cfg.historyLength, AllowPM: cfg.allowPM, ChangeSubject: cfg.changeSubject, Archive: cfg.archive,
		Subject: r.subject, SubjectNick: r.subjNick,
	}
	for j, e := range r.affs {
		if e.aff != affNone {
			rec.Affiliations = append(rec.Affiliations, storage.MUCAffiliation{JID: j, Affiliation: e.aff.String(), Reason: e.reason, Nick: e.nick})
		}
	}
	return rec
}

// roomFromRecord rebuilds a stored room.
func (s *Service) roomFromRecord(sr storage.MUCRoom) (*room, error) {
	j, err := jid.Parse(sr.JID)
	if err != nil || j.Localpart() == "" || j.Domainpart() != s.domain.Domainpart() {
		return nil, fmt.Errorf("muc: stored room %q is not a room of %s", sr.JID, s.domainStr)
	}
	r := s.newRoom(j.Bare(), sr.Creator, sr.CreatedAt)
	r.cfg = roomConfig{
		name: sr.Name, desc: sr.Description, persistent: true, public: sr.Public, membersOnly: sr.MembersOnly,
		moderated: sr.Moderated, passwordProtected: sr.Password != "", password: sr.Password,
		maxUsers:    min(max(sr.MaxUsers, 1), s.opts.MaxOccupants),
		whoisAnyone: sr.Whois == "anyone", historyLength: min(max(sr.HistoryLength, 0), s.opts.MaxHistoryLength),
		allowPM: sr.AllowPM, changeSubject: sr.ChangeSubject, archive: sr.Archive,
	}
	// It may have archived before the restart.
	r.archived = true
	switch r.cfg.allowPM {
	case "anyone", "participants", "moderators", "none":
	default:
		r.cfg.allowPM = "anyone"
	}
	r.subject, r.subjNick = sr.Subject, sr.SubjectNick
	for _, a := range sr.Affiliations {
		if aff, ok := parseAffiliation(a.Affiliation); ok && aff != affNone {
			r.affs[a.JID] = affEntry{aff: aff, reason: a.Reason, nick: a.Nick}
		}
	}
	r.hist.resize(r.cfg.historyLength)
	r.loadHistory(sr.History)
	return r, nil
}
