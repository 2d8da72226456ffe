package openfire

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// readUsers reads ofUser and the SCRAM keys (ofUserScram since schema 39;
// columns of ofUser from 22 to 39) and recovers each password that can be.
func (r *reader) readUsers(ctx context.Context) error {
	if err := r.need("ofuser", "username", "plainpassword", "encryptedpassword", "name", "email", "creationdate"); err != nil {
		return err
	}
	creds := map[string][]storage.Credential{}
	addCred := func(user, mech string, it, salt, sk, svk *string) {
		c, err := scramCredential(mech, it, salt, sk, svk)
		if err != nil {
			if it != nil || salt != nil || sk != nil || svk != nil {
				r.skip("user %s: %s key not kept: %v", user, mech, err)
			}
			return
		}
		for _, have := range creds[user] {
			if have.Mechanism == c.Mechanism {
				return // ofUserScram (read first) wins over ofUser's columns
			}
		}
		creds[user] = append(creds[user], c)
	}
	if r.has("ofuserscram") {
		if err := r.need("ofuserscram", "username", "mechanism", "iterations", "salt", "storedkey", "serverkey"); err != nil {
			return err
		}
		err := r.src.scan(ctx, "ofuserscram", []string{"username", "mechanism", "iterations", "salt", "storedkey", "serverkey"}, func(v []*string) error {
			if v[0] != nil && v[1] != nil {
				addCred(*v[0], *v[1], v[2], v[3], v[4], v[5])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	cols := []string{"username", "plainpassword", "encryptedpassword", "name", "email", "creationdate"}
	scramCols := r.has("ofuser", "storedkey", "serverkey", "salt", "iterations")
	if scramCols {
		cols = append(cols, "iterations", "salt", "storedkey", "serverkey")
	}
	type pending struct {
		u                *migration.User
		encrypted, plain string
	}
	var encrypted []pending
	err := r.src.scan(ctx, "ofuser", cols, func(v []*string) error {
		if v[0] == nil || *v[0] == "" {
			return nil
		}
		u := &migration.User{
			Username:  *v[0],
			Name:      str(v[3]),
			Email:     str(v[4]),
			CreatedAt: millis(v[5]),
		}
		if scramCols {
			addCred(u.Username, "SCRAM-SHA-1", v[6], v[7], v[8], v[9])
		}
		if r.users[u.Username] != nil {
			return fmt.Errorf("openfire: ofUser holds %s twice", u.Username)
		}
		r.users[u.Username] = u
		// Openfire's checkPassword prefers encryptedPassword when both
		// are set; plainPassword stands in when it does not decrypt.
		switch {
		case v[2] != nil && *v[2] != "":
			encrypted = append(encrypted, pending{u, strings.TrimSpace(*v[2]), str(v[1])})
		case v[1] != nil && *v[1] != "":
			u.Password = *v[1]
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name, cs := range creds {
		if u := r.users[name]; u != nil {
			u.Credentials = cs
		} else {
			r.skip("SCRAM keys of %s, who is not in ofUser, not kept", name)
		}
	}

	// Encrypted passwords: each candidate key in turn. Where SCRAM-SHA-1
	// keys exist they decide; elsewhere a well-formed plaintext does.
	passwordKey, hasKey := r.props["passwordKey"]
	var keys []blowfishKey
	if hasKey && passwordKey != "" {
		keys = r.keys(passwordKey)
	}
	encOf := map[*migration.User]pending{}
	for _, p := range encrypted {
		encOf[p.u] = p
	}
	all := make([]*migration.User, 0, len(r.users))
	for _, u := range r.users {
		all = append(all, u)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Username < all[j].Username })
	// Each check derives SCRAM keys (thousands of HMACs): spread the users
	// over the CPUs.
	dropped := make([][]string, len(all))
	ok := make([]bool, len(all))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := encOf[all[i]]
				dropped[i], ok[i] = recoverPassword(all[i], p.encrypted, p.plain, keys)
			}
		}()
	}
	for i := range all {
		next <- i
	}
	close(next)
	wg.Wait()

	decrypted := 0
	var failed []*migration.User
	for i, u := range all {
		if _, enc := encOf[u]; !enc {
			continue
		}
		switch {
		case ok[i]:
			decrypted++
		case u.Password == "":
			failed = append(failed, u)
		default:
			r.skip("user %s: encryptedPassword does not decrypt; plainPassword kept", u.Username)
		}
	}
	if len(failed) > 0 {
		why := "ofProperty has no passwordKey"
		if len(keys) > 0 {
			why = "it does not decrypt with ofProperty's passwordKey (SHA-1-derived key"
			if len(keys) > 1 {
				why += " nor PBKDF2-derived key with security.xml's salt)"
			} else if r.sec == nil {
				why += "; no security.xml given, which Openfire 5.1 and later need once switched to PBKDF2)"
			} else {
				why += "; security.xml has no encrypt.blowfish.salt)"
			}
		}
		lost := 0
		for _, u := range failed {
			if len(u.Credentials) == 0 {
				lost++
			}
		}
		// Nothing decrypts at all: the key or security.xml is wrong or
		// missing. Stop rather than import accounts nobody can log in to.
		if decrypted == 0 && lost > 0 {
			return fmt.Errorf("openfire: no encrypted password can be recovered (%d users, %d of them without SCRAM keys): %s", len(failed), lost, why)
		}
		for _, u := range failed {
			if len(u.Credentials) == 0 {
				u.PasswordProblem = "encryptedPassword not recovered: " + why
			} else {
				r.skip("user %s: encryptedPassword not recovered (%s); SCRAM keys kept", u.Username, why)
			}
		}
	}
	for i, u := range all {
		for _, mech := range dropped[i] {
			r.skip("user %s: %s key does not match the password, dropped", u.Username, mech)
		}
		if u.Password == "" && len(u.Credentials) == 0 && u.PasswordProblem == "" {
			u.PasswordProblem = "Openfire stores no password and no SCRAM keys for this user"
		}
	}
	return nil
}

// recoverPassword decrypts u's encryptedPassword (when enc is not "") with
// the first key that gives a well-formed password matching u's SCRAM-SHA-1
// key, if any, falling back to plain; then drops the SCRAM keys that do
// not match the password (stale: Openfire checks the password first) and
// returns their mechanisms, and whether enc decrypted.
func recoverPassword(u *migration.User, enc, plain string, keys []blowfishKey) (dropped []string, decrypted bool) {
	checked := -1 // index of a credential already verified
	if enc != "" {
		scram := -1
		for i, c := range u.Credentials {
			if c.Mechanism == "SCRAM-SHA-1" {
				scram = i
			}
		}
		for _, k := range keys {
			pw, err := decryptPassword(k.key, enc)
			if err != nil || scram >= 0 && !verifies(pw, u.Credentials[scram]) {
				continue
			}
			u.Password, checked, decrypted = pw, scram, true
			break
		}
		if !decrypted && plain != "" {
			u.Password = plain
		}
	}
	if u.Password != "" {
		kept := u.Credentials[:0]
		for i, c := range u.Credentials {
			if i == checked || verifies(u.Password, c) {
				kept = append(kept, c)
			} else {
				dropped = append(dropped, c.Mechanism)
			}
		}
		u.Credentials = kept
	}
	sort.Slice(u.Credentials, func(i, j int) bool { return u.Credentials[i].Mechanism < u.Credentials[j].Mechanism })
	return dropped, decrypted
}

// Openfire's roster states (org.jivesoftware.openfire.roster.RosterItem).
const (
	subRemove     = -1
	subNone       = 0
	subTo         = 1
	subFrom       = 2
	subBoth       = 3
	askSubscribe  = 0
	recvSubscribe = 1
)

var subscriptions = map[int]string{subNone: "none", subTo: "to", subFrom: "from", subBoth: "both"}

func (r *reader) readRosters(ctx context.Context) error {
	if err := r.need("ofroster", "rosterid", "username", "jid", "sub", "ask", "recv", "nick"); err != nil {
		return err
	}
	groups := map[string]map[int]string{} // rosterID -> rank -> group
	if r.has("ofrostergroups", "rosterid", "rank", "groupname") {
		err := r.src.scan(ctx, "ofrostergroups", []string{"rosterid", "rank", "groupname"}, func(v []*string) error {
			if v[0] == nil || v[2] == nil {
				return nil
			}
			id := strings.TrimSpace(*v[0])
			if groups[id] == nil {
				groups[id] = map[int]string{}
			}
			groups[id][num(v[1])] = *v[2]
			return nil
		})
		if err != nil {
			return err
		}
	}
	cols := []string{"rosterid", "username", "jid", "sub", "ask", "recv", "nick"}
	withStanza := r.has("ofroster", "stanza")
	if withStanza {
		cols = append(cols, "stanza")
	}
	type item struct {
		id   int64
		item storage.RosterItem
	}
	items := map[string][]item{}
	err := r.src.scan(ctx, "ofroster", cols, func(v []*string) error {
		if v[1] == nil || v[2] == nil {
			return nil
		}
		user, contact := *v[1], *v[2]
		if r.users[user] == nil {
			r.skip("roster item %s of %s, who is not in ofUser, not kept", contact, user)
			return nil
		}
		sub := num(v[3])
		if sub == subRemove {
			return nil // being removed when Openfire stopped
		}
		s, ok := subscriptions[sub]
		if !ok {
			r.skip("roster item %s of %s: unknown subscription state %d, not kept", contact, user, sub)
			return nil
		}
		ask, recv := num(v[4]), num(v[5])
		it := storage.RosterItem{
			Contact:      r.userJID(contact),
			Name:         str(v[6]),
			Subscription: s,
			Ask:          ask == askSubscribe,
			PendingIn:    recv == recvSubscribe,
		}
		// Openfire keeps an inbound request as an item "none + pending
		// in", which it does not show in the roster.
		it.Visible = !(sub == subNone && it.PendingIn && !it.Ask)
		if withStanza && it.PendingIn && v[7] != nil {
			it.Request = string(r.rw.xml([]byte(*v[7])))
		}
		id := strings.TrimSpace(str(v[0]))
		seen := map[string]bool{}
		for _, g := range groups[id] {
			if g != "" && !seen[g] {
				seen[g] = true
				it.Groups = append(it.Groups, g)
			}
		}
		sort.Strings(it.Groups)
		n, _ := strconv.ParseInt(id, 10, 64)
		items[user] = append(items[user], item{n, it})
		return nil
	})
	if err != nil {
		return err
	}
	for user, list := range items {
		sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
		u := r.users[user]
		seen := map[string]bool{}
		for _, it := range list {
			if seen[it.item.Contact] {
				r.skip("roster of %s: %s listed twice, first kept", user, it.item.Contact)
				continue
			}
			seen[it.item.Contact] = true
			u.Roster = append(u.Roster, it.item)
		}
	}
	return nil
}

func (r *reader) readOffline(ctx context.Context) error {
	if !r.has("ofoffline") {
		return nil
	}
	if err := r.need("ofoffline", "username", "messageid", "creationdate", "stanza"); err != nil {
		return err
	}
	err := r.src.scan(ctx, "ofoffline", []string{"username", "messageid", "creationdate", "stanza"}, func(v []*string) error {
		if v[0] == nil || v[3] == nil {
			return nil
		}
		u := r.users[*v[0]]
		if u == nil {
			r.skip("offline message for %s, who is not in ofUser, not kept", *v[0])
			return nil
		}
		id, _ := strconv.ParseInt(strings.TrimSpace(str(v[1])), 10, 64)
		u.Offline = append(u.Offline, storage.OfflineMessage{ID: id, Stamp: millis(v[2]), Stanza: r.rw.xml([]byte(*v[3]))})
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range r.users {
		sort.SliceStable(u.Offline, func(i, j int) bool {
			a, b := u.Offline[i], u.Offline[j]
			if !a.Stamp.Equal(b.Stamp) {
				return a.Stamp.Before(b.Stamp)
			}
			return a.ID < b.ID
		})
	}
	return nil
}

func (r *reader) readVCards(ctx context.Context) error {
	if !r.has("ofvcard") {
		return nil
	}
	if err := r.need("ofvcard", "username", "vcard"); err != nil {
		return err
	}
	return r.src.scan(ctx, "ofvcard", []string{"username", "vcard"}, func(v []*string) error {
		if v[0] == nil || v[1] == nil {
			return nil
		}
		if u := r.users[*v[0]]; u != nil {
			u.VCard = []byte(*v[1])
		} else {
			r.skip("vCard of %s, who is not in ofUser, not kept", *v[0])
		}
		return nil
	})
}

// readPrivate reads ofPrivate, which schema 29 (Openfire 4.3) dropped
// after moving private XML into PEP nodes.
func (r *reader) readPrivate(ctx context.Context) error {
	if !r.has("ofprivate") {
		return nil
	}
	if err := r.need("ofprivate", "username", "namespace", "privatedata"); err != nil {
		return err
	}
	return r.src.scan(ctx, "ofprivate", []string{"username", "namespace", "privatedata"}, func(v []*string) error {
		if v[0] == nil || v[1] == nil || v[2] == nil {
			return nil
		}
		u := r.users[*v[0]]
		if u == nil {
			r.skip("private XML of %s, who is not in ofUser, not kept", *v[0])
			return nil
		}
		if u.Private == nil {
			u.Private = map[string][]byte{}
		}
		u.Private[*v[1]] = r.rw.xml([]byte(*v[2]))
		return nil
	})
}

// readPEPPrivate reads private XML as Openfire keeps it since schema 28
// (Openfire 4.3, OF-1515; org.jivesoftware.openfire.PrivateStorage): in
// the user's PEP service (serviceID = the bare JID), on a node named after
// the namespace with the whitelist access model, as the item "current".
// Other PEP nodes (avatars, nicknames, XEP-0402 bookmarks…) are not
// private XML and are not carried.
func (r *reader) readPEPPrivate(ctx context.Context) error {
	if !r.has("ofpubsubnode", "serviceid", "nodeid", "accessmodel") || !r.has("ofpubsubitem", "serviceid", "nodeid", "id", "payload") {
		return nil
	}
	whitelist := map[[2]string]bool{}
	err := r.src.scan(ctx, "ofpubsubnode", []string{"serviceid", "nodeid", "accessmodel"}, func(v []*string) error {
		if v[0] != nil && v[1] != nil && strings.TrimSpace(str(v[2])) == "whitelist" {
			whitelist[[2]string{*v[0], *v[1]}] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.src.scan(ctx, "ofpubsubitem", []string{"serviceid", "nodeid", "id", "payload"}, func(v []*string) error {
		if v[0] == nil || v[1] == nil || v[3] == nil || str(v[2]) != "current" || !whitelist[[2]string{*v[0], *v[1]}] {
			return nil
		}
		local, domain, ok := strings.Cut(*v[0], "@")
		if !ok || !strings.EqualFold(domain, r.domain) || strings.Contains(domain, "/") {
			return nil
		}
		u := r.users[local]
		if u == nil {
			return nil
		}
		if attrs, _, ok := stanzaParts([]byte(*v[3])); !ok || attrs["xmlns"] != *v[1] {
			return nil // not an element of the node's namespace: not private XML
		}
		if u.Private == nil {
			u.Private = map[string][]byte{}
		}
		if _, have := u.Private[*v[1]]; !have {
			u.Private[*v[1]] = r.rw.xml([]byte(*v[3]))
		}
		return nil
	})
}
