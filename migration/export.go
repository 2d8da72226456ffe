package migration

import (
	"context"
	"fmt"
	"strings"

	"xmppd.dev/xmppd/storage"
)

// ReadStorage reads the accounts of domain from db, with what belongs to
// them, into a Data that a writer (a XEP-0227 file) can carry to another
// server. Credentials are the stored SCRAM keys; no password is known.
// Rooms and shared groups are not read: XEP-0227 has no place for them.
func ReadStorage(ctx context.Context, db *storage.DB, domain string) (*Data, error) {
	d := &Data{Domain: domain}
	accts, err := db.Accounts().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	for _, a := range accts {
		local, dom, ok := strings.Cut(a.JID, "@")
		if !ok || dom != domain {
			continue
		}
		u, err := readUser(ctx, db, a.JID)
		if err != nil {
			return nil, fmt.Errorf("migration: export %s: %w", a.JID, err)
		}
		u.Username = local
		d.Users = append(d.Users, u)
	}
	return d, nil
}

func readUser(ctx context.Context, db *storage.DB, j string) (User, error) {
	var u User
	acct, err := db.Accounts().Get(ctx, j)
	if err != nil {
		return u, err
	}
	u.CreatedAt, u.Credentials = acct.CreatedAt, acct.Credentials
	if u.Roster, err = db.Rosters().All(ctx, j); err != nil {
		return u, err
	}
	for after := int64(0); ; {
		msgs, err := db.Offline().List(ctx, j, after, 500)
		if err != nil {
			return u, err
		}
		if len(msgs) == 0 {
			break
		}
		u.Offline = append(u.Offline, msgs...)
		after = msgs[len(msgs)-1].ID
	}
	vc, _, ok, err := db.VCards().Get(ctx, j)
	if err != nil {
		return u, err
	}
	if ok {
		u.VCard = vc
	}
	nss, err := db.PrivateXML().Namespaces(ctx, j)
	if err != nil {
		return u, err
	}
	for _, ns := range nss {
		x, ok, err := db.PrivateXML().Get(ctx, j, ns)
		if err != nil {
			return u, err
		}
		if ok {
			if u.Private == nil {
				u.Private = map[string][]byte{}
			}
			u.Private[ns] = x
		}
	}
	return u, nil
}
