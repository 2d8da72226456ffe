package migration

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/mam"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/vcard"
)

// WriteOptions say how [Write] writes.
type WriteOptions struct {
	// DryRun has Write check and count everything and write nothing.
	DryRun bool
	// Progress, when not nil, is called as users and rooms are done
	// (written, or checked in a dry run), from one goroutine at a time.
	Progress func(done, total int)
	// Iterations is the PBKDF2 iteration count of the credentials derived
	// from passwords: the server's auth.scram_iterations. Lower values
	// (0 included) are raised to auth.MinIterations.
	Iterations int
	// MUCService, when not "", is the server's group chat domain: rooms
	// of other services are reported and left out, since the server would
	// never load them.
	MUCService string
	// Workers is how many users are prepared and written at once; 0 means
	// twice GOMAXPROCS (at least 4; 8 on PostgreSQL). Deriving keys from
	// passwords is most of the work when the source reveals them.
	Workers int
	// OfflineMaxAge is the server's offline.max_age: offline messages
	// older than it are reported and left out, since the server would
	// delete them unread when it starts. 0 keeps them all.
	OfflineMaxAge time.Duration
}

// MaxVCardBytes bounds an imported vCard, serialised; larger ones are
// reported and left out. It is generous: a photo of a few hundred KiB.
const MaxVCardBytes = 1 << 20

// Problem is something about one user (or room) that the report names.
type Problem struct {
	Who    string // the username or JID as found in the source
	Reason string
}

func (p Problem) String() string { return p.Who + ": " + p.Reason }

// Report says what Write wrote, or would write in a dry run.
type Report struct {
	Users           int
	RosterItems     int
	OfflineMessages int
	VCards          int
	PrivateXML      int // namespaces
	Rooms           int
	Affiliations    int
	ReservedNicks   int
	RoomMessages    int
	SharedGroups    int
	// SharedGroupMembers counts memberships.
	SharedGroupMembers int

	// DerivedFromPassword counts the users whose SCRAM-SHA-1 and
	// SCRAM-SHA-256 credentials are derived from their password.
	DerivedFromPassword int
	// SHA1Only are the users (bare JIDs) imported with SCRAM-SHA-1 keys
	// only: they log in with SCRAM-SHA-1 or PLAIN, not SCRAM-SHA-256.
	SHA1Only []string
	// NoPassword are the users imported without any credential, and why:
	// they cannot log in until given a password (xmppd user passwd).
	NoPassword []Problem
	// PasswordMismatch are the users whose password does not match their
	// SCRAM-SHA-1 keys; the keys are kept, the password is not used.
	PasswordMismatch []Problem
	// Invalid are the users not imported: a username that is not a valid
	// localpart, or one that normalises to another user's.
	Invalid []Problem
	// Skipped lists what was found but not carried across, one line each
	// (the reader's, then the writer's: invalid roster items, rooms, …).
	Skipped []string
}

// Write writes d into db: each user in one transaction (account,
// credentials, roster, offline messages, vCard, private XML), then each
// room in one transaction. Users are at d.Domain. Running it twice with
// the same d duplicates nothing (see storage.DB.ImportUser and ImportRoom).
//
// It stops at the first storage error and returns it with the report of
// what was found; the users written before it stay written, the one it
// failed on is not written at all. Shared groups are written last, each
// replacing the group of its name.
func Write(ctx context.Context, db *storage.DB, d *Data, opts WriteOptions) (Report, error) {
	var rep Report
	rep.Skipped = slices.Clone(d.Skipped)
	domain, err := jid.Parse(d.Domain)
	if err != nil || domain.Localpart() != "" || domain.Resourcepart() != "" {
		return rep, fmt.Errorf("migration: invalid domain %q", d.Domain)
	}

	users := make([]prepared, 0, len(d.Users))
	seen := make(map[string]string, len(d.Users))
	for i := range d.Users {
		u := &d.Users[i]
		p, problems, err := prepareUser(domain.String(), u, opts.OfflineMaxAge)
		rep.Skipped = append(rep.Skipped, problems...)
		if err != nil {
			rep.Invalid = append(rep.Invalid, Problem{u.Username, err.Error()})
			continue
		}
		if other, dup := seen[p.JID]; dup {
			rep.Invalid = append(rep.Invalid, Problem{u.Username, fmt.Sprintf("normalises to %s, as %q does", p.JID, other)})
			continue
		}
		seen[p.JID] = u.Username
		users = append(users, p)
	}
	rooms := make([]storage.ImportedRoom, 0, len(d.Rooms))
	for i := range d.Rooms {
		r, problems, err := prepareRoom(&d.Rooms[i])
		rep.Skipped = append(rep.Skipped, problems...)
		if err == nil && opts.MUCService != "" && r.Room.Service != opts.MUCService {
			err = fmt.Errorf("its service is %s, not this server's group chat domain %s", r.Room.Service, opts.MUCService)
		}
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("room %s: %v", d.Rooms[i].JID, err))
			continue
		}
		rooms = append(rooms, r)
	}
	groups := make([]storage.SharedGroup, 0, len(d.SharedGroups))
	for _, g := range d.SharedGroups {
		sg, problems := prepareGroup(domain.String(), g, seen)
		rep.Skipped = append(rep.Skipped, problems...)
		groups = append(groups, sg)
	}

	total := len(users) + len(rooms) + len(groups)
	var done atomic.Int64
	var progressMu sync.Mutex
	tick := func() {
		n := int(done.Add(1))
		if opts.Progress != nil {
			progressMu.Lock()
			opts.Progress(n, total)
			progressMu.Unlock()
		}
	}

	// Users, in parallel: each worker derives and writes whole users.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	iterations := max(opts.Iterations, auth.MinIterations)
	workers := opts.Workers
	if workers <= 0 {
		// Twice the cores: while one user is written (on SQLite, one
		// at a time), others' keys are derived.
		workers = max(4, 2*runtime.GOMAXPROCS(0))
		if db != nil && db.Driver() == storage.DriverPostgres {
			// Each user's commit waits for PostgreSQL's WAL flush;
			// more users in flight share flushes (10,000 users with 50
			// roster items: 48 s with 2 workers; see docs).
			workers = max(8, workers)
		}
	}
	// SQLite has one writer at a time: workers waiting on its lock
	// sleep in its busy handler, so they take turns here instead
	// instead, still deriving keys in parallel.
	var writeMu *sync.Mutex
	if db != nil && db.Driver() == storage.DriverSQLite {
		writeMu = &sync.Mutex{}
	}
	outcomes := make([]outcome, len(users))
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(workers, max(len(users), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(users) || ctx.Err() != nil {
					return
				}
				oc, err := writeUser(ctx, db, writeMu, &users[i], iterations, opts.DryRun)
				outcomes[i] = oc
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				tick()
			}
		}()
	}
	wg.Wait()
	for i, oc := range outcomes {
		p := &users[i]
		if !oc.done {
			continue
		}
		rep.Users++
		rep.RosterItems += len(p.Roster)
		rep.OfflineMessages += len(p.Offline)
		if p.VCard != nil {
			rep.VCards++
		}
		rep.PrivateXML += len(p.Private)
		switch {
		case oc.derived:
			rep.DerivedFromPassword++
		case oc.sha1Only:
			rep.SHA1Only = append(rep.SHA1Only, p.JID)
		}
		if oc.noPassword != "" {
			rep.NoPassword = append(rep.NoPassword, Problem{p.JID, oc.noPassword})
		}
		if oc.mismatch {
			rep.PasswordMismatch = append(rep.PasswordMismatch, Problem{p.JID, "the password does not match the SCRAM-SHA-1 keys; the keys are kept"})
		}
	}
	if firstErr != nil {
		return rep, firstErr
	}

	for _, r := range rooms {
		if !opts.DryRun {
			if err := db.ImportRoom(ctx, r); err != nil {
				return rep, fmt.Errorf("migration: %w", err)
			}
		}
		rep.Rooms++
		rep.Affiliations += len(r.Room.Affiliations)
		for _, a := range r.Room.Affiliations {
			if a.Nick != "" {
				rep.ReservedNicks++
			}
		}
		rep.RoomMessages += len(r.Log)
		tick()
	}

	// Shared groups last: their members must be accounts.
	for _, g := range groups {
		if !opts.DryRun {
			if err := db.SharedGroups().Put(ctx, g); err != nil {
				return rep, fmt.Errorf("migration: %w", err)
			}
		}
		rep.SharedGroups++
		rep.SharedGroupMembers += len(g.Members)
		tick()
	}
	return rep, nil
}

// prepareGroup turns a shared group into what storage keeps: members
// normalised and limited to the accounts imported (users maps each
// account's JID to its source username), a group shown to nobody kept for
// its members (another group may be shown to it).
func prepareGroup(domain string, g SharedGroup, users map[string]string) (storage.SharedGroup, []string) {
	var problems []string
	sg := storage.SharedGroup{
		Name: g.Name, DisplayName: cmp.Or(g.DisplayName, g.Name), Description: g.Description,
		ShowTo: cmp.Or(g.ShowTo, "nobody"), ShowToGroups: g.ShowToGroups,
	}
	for _, m := range g.Members {
		j, err := jid.Parse(m)
		if err == nil {
			j = j.Bare()
		}
		if _, ok := users[j.String()]; err != nil || j.Domainpart() != domain || !ok {
			problems = append(problems, fmt.Sprintf("shared group %q: member %s left out: not an imported account", g.Name, m))
			continue
		}
		if !slices.Contains(sg.Members, j.String()) {
			sg.Members = append(sg.Members, j.String())
		}
	}
	slices.Sort(sg.Members)
	return sg, problems
}

// prepared is a user ready to write, but for its credentials.
type prepared struct {
	storage.ImportedUser
	src     *User
	carried []storage.Credential // src.Credentials that storage accepts
}

// outcome is what writing one user came to.
type outcome struct {
	done       bool
	derived    bool   // credentials derived from the password
	sha1Only   bool   // carried SCRAM-SHA-1 keys only
	mismatch   bool   // password and SHA-1 keys disagree
	noPassword string // why no credential was kept, or ""
}

// prepareUser normalises u and checks what it holds. problems are lines
// for Report.Skipped (parts of u left out); err refuses u altogether.
func prepareUser(domain string, u *User, offlineMaxAge time.Duration) (p prepared, problems []string, err error) {
	j, err := auth.NormalizeJID(u.Username + "@" + domain)
	if err != nil {
		return p, nil, errors.New(strings.TrimPrefix(err.Error(), auth.ErrInvalidJID.Error()+" "))
	}
	p.src = u
	p.JID = j.String()
	// Credentials storage would refuse are left out here, so that one
	// user's bad keys do not stop the import.
	var creds []storage.Credential
	for _, c := range u.Credentials {
		switch {
		case c.Mechanism != auth.SCRAMSHA1 && c.Mechanism != auth.SCRAMSHA256:
			problems = append(problems, fmt.Sprintf("user %s: %q credential left out: unknown mechanism", p.JID, c.Mechanism))
		case len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 || c.Iterations <= 0:
			problems = append(problems, fmt.Sprintf("user %s: %s credential left out: no salt, keys or iterations", p.JID, c.Mechanism))
		case slices.ContainsFunc(creds, func(x storage.Credential) bool { return x.Mechanism == c.Mechanism }):
			problems = append(problems, fmt.Sprintf("user %s: a second %s credential left out", p.JID, c.Mechanism))
		default:
			creds = append(creds, c)
		}
	}
	p.carried = creds
	p.CreatedAt = u.CreatedAt
	for _, it := range u.Roster {
		c, err := jid.Parse(it.Contact)
		if err != nil || c.Resourcepart() != "" {
			problems = append(problems, fmt.Sprintf("user %s: roster item %q: not a bare JID", p.JID, it.Contact))
			continue
		}
		it.Contact = c.String()
		it.Groups = slices.Compact(slices.Sorted(slices.Values(it.Groups)))
		p.Roster = append(p.Roster, it)
	}
	p.Offline = u.Offline
	if offlineMaxAge > 0 {
		cutoff := time.Now().Add(-offlineMaxAge)
		p.Offline = slices.DeleteFunc(slices.Clone(u.Offline), func(m storage.OfflineMessage) bool { return m.Stamp.Before(cutoff) })
		if n := len(u.Offline) - len(p.Offline); n > 0 {
			problems = append(problems, fmt.Sprintf("user %s: %d offline messages older than offline.max_age (%s) left out: the server would delete them unread", p.JID, n, offlineMaxAge))
		}
	}
	raw := u.VCard
	if len(raw) == 0 && (u.Name != "" || u.Email != "") {
		raw = nameVCard(u.Name, u.Email)
	}
	if len(raw) > 0 {
		stored, photo, err := vcard.Parse(raw, MaxVCardBytes)
		if err != nil {
			problems = append(problems, fmt.Sprintf("user %s: vCard left out: %v", p.JID, err))
		} else {
			p.VCard, p.VCardPhoto = stored, photo
		}
	}
	p.Private = u.Private
	return p, problems, nil
}

// writeUser derives p's credentials and writes it (or, in a dry run,
// only checks them).
func writeUser(ctx context.Context, db *storage.DB, writeMu *sync.Mutex, p *prepared, iterations int, dryRun bool) (outcome, error) {
	var oc outcome
	u := p.src
	var sha1 *storage.Credential
	for i, c := range p.carried {
		if c.Mechanism == auth.SCRAMSHA1 {
			sha1 = &p.carried[i]
		}
	}
	switch {
	case u.Password != "" && sha1 != nil && !auth.CheckPassword(*sha1, u.Password):
		oc.mismatch = true
		p.Credentials = p.carried
		oc.sha1Only = len(p.carried) == 1
	case u.Password != "" && !dryRun:
		creds, err := auth.NewCredentials(u.Password, iterations)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidPassword) {
				return oc, fmt.Errorf("migration: %s: %w", p.JID, err)
			}
			// SASLprep refused it: the keys, if any, are all there is.
			p.Credentials = p.carried
			oc.noPassword = "its password is refused by SASLprep (RFC 4013)"
			break
		}
		p.Credentials = creds
		oc.derived = true
	case u.Password != "":
		oc.derived = true // a dry run skips the derivation's cost
	case len(p.carried) > 0:
		p.Credentials = p.carried
		oc.sha1Only = sha1 != nil && len(p.carried) == 1
	default:
		oc.noPassword = u.PasswordProblem
		if oc.noPassword == "" {
			oc.noPassword = "the source has no password or keys for it"
		}
	}
	if oc.noPassword != "" && len(p.Credentials) > 0 {
		oc.noPassword = ""
		oc.sha1Only = sha1 != nil && len(p.Credentials) == 1
	}
	if !dryRun {
		if writeMu != nil {
			writeMu.Lock()
			defer writeMu.Unlock()
		}
		if err := db.ImportUser(ctx, p.ImportedUser); err != nil {
			return oc, fmt.Errorf("migration: %w", err)
		}
	}
	oc.done = true
	return oc, nil
}

// prepareRoom checks r and turns it into what storage writes: reserved
// nicks on the affiliations (a JID with a nick and no affiliation becomes
// a member, as in Openfire, where ofMucMember holds the members), the log
// in the archive's form when the room archives.
func prepareRoom(r *Room) (storage.ImportedRoom, []string, error) {
	var problems []string
	rj, err := jid.Parse(r.JID)
	if err != nil || rj.Localpart() == "" || rj.Resourcepart() != "" {
		return storage.ImportedRoom{}, nil, errors.New("not a room's bare JID")
	}
	room := r.MUCRoom
	room.JID = rj.String()
	room.Service = rj.Domainpart()
	room.History = nil
	room.Affiliations = nil
	index := map[string]int{}
	for _, a := range r.Affiliations {
		aj, err := jid.Parse(a.JID)
		if err != nil {
			problems = append(problems, fmt.Sprintf("room %s: affiliation of %q: not a JID", room.JID, a.JID))
			continue
		}
		a.JID = aj.Bare().String()
		if i, ok := index[a.JID]; ok {
			room.Affiliations[i] = a
			continue
		}
		index[a.JID] = len(room.Affiliations)
		room.Affiliations = append(room.Affiliations, a)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Nicks)) {
		nick := r.Nicks[k]
		aj, err := jid.Parse(k)
		if err != nil || nick == "" {
			problems = append(problems, fmt.Sprintf("room %s: reserved nick %q of %q: invalid", room.JID, nick, k))
			continue
		}
		b := aj.Bare().String()
		if i, ok := index[b]; ok {
			room.Affiliations[i].Nick = nick
			continue
		}
		index[b] = len(room.Affiliations)
		room.Affiliations = append(room.Affiliations, storage.MUCAffiliation{JID: b, Affiliation: "member", Nick: nick})
	}
	slices.SortFunc(room.Affiliations, func(a, b storage.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	out := storage.ImportedRoom{Room: room}
	if room.Archive {
		roomStr := room.JID
		out.StanzaID = func(seq int64) string {
			return mam.ImportID(seq, fmt.Appendf(nil, "%s\x00%d", roomStr, seq))
		}
	}
	for _, m := range r.Log {
		if subjectOnly(m.Payload) {
			// A subject change: the room keeps its subject, and in the
			// history a <subject/> would end it early for clients
			// (XEP-0045 §7.2.15: the subject comes after the history).
			continue
		}
		im := storage.ImportedRoomMessage{MUCMessage: m}
		if room.Archive {
			im.Stanza = roomStanza(room.JID, m)
		}
		out.Log = append(out.Log, im)
	}
	slices.SortStableFunc(out.Log, func(a, b storage.ImportedRoomMessage) int { return a.Stamp.Compare(b.Stamp) })
	return out, problems, nil
}

// subjectOnly reports whether a logged message's children are a subject
// change and no body.
func subjectOnly(payload []byte) bool {
	return bytes.Contains(payload, []byte("<subject")) && !bytes.Contains(payload, []byte("<body"))
}

// roomStanza is m as package muc archives a group chat message: from the
// sender's occupant JID, no to, the jabber:client namespace implied.
func roomStanza(room string, m storage.MUCMessage) []byte {
	var b bytes.Buffer
	b.WriteString("<message type='groupchat'")
	if m.ID != "" {
		b.WriteString(" id='")
		xml.EscapeText(&b, []byte(m.ID))
		b.WriteString("'")
	}
	b.WriteString(" from='")
	xml.EscapeText(&b, []byte(room+"/"+m.Nick))
	b.WriteString("'>")
	b.Write(m.Payload)
	b.WriteString("</message>")
	return b.Bytes()
}

// nameVCard is the vCard of a user of whom the source knows only a name
// and an address (Openfire keeps them on the account, not in a vCard).
func nameVCard(name, email string) []byte {
	b := []byte("<vCard xmlns='vcard-temp'>")
	if name != "" {
		b = append(b, "<FN>"...)
		b = appendEscaped(b, name)
		b = append(b, "</FN>"...)
	}
	if email != "" {
		b = append(b, "<EMAIL><INTERNET/><USERID>"...)
		b = appendEscaped(b, email)
		b = append(b, "</USERID></EMAIL>"...)
	}
	return append(b, "</vCard>"...)
}
