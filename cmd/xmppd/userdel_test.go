package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// leftovers returns every row of every table, in every text column, that
// names jid (as a bare or a full JID), as "table.column=value", except in
// the columns allowed (other users' roster items, which XMPP keeps). It
// reads the schema from the database, so a table added later is covered.
func leftovers(t *testing.T, driver, dsn, jid string, allowed ...string) []string {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	var cols [][2]string // table, column
	if driver == "sqlite" {
		rows, err := db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND p.type = 'TEXT'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c [2]string
			rows.Scan(&c[0], &c[1])
			cols = append(cols, c)
		}
		rows.Close()
	} else {
		rows, err := db.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND data_type = 'text'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c [2]string
			rows.Scan(&c[0], &c[1])
			cols = append(cols, c)
		}
		rows.Close()
	}
	if len(cols) < 10 {
		t.Fatalf("only %d text columns found in the schema: %q", len(cols), cols)
	}
	var found []string
	for _, c := range cols {
		name := c[0] + "." + c[1]
		if slices.Contains(allowed, name) {
			continue
		}
		var n int
		q := fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE %s = $1 OR %s LIKE $2`, c[0], c[1], c[1])
		if err := db.QueryRowContext(ctx, q, jid, jid+"/%").Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n > 0 {
			found = append(found, fmt.Sprintf("%s=%s (%d)", name, jid, n))
		}
	}
	slices.Sort(found)
	return found
}

// TestUserDelete: user del leaves no row naming the account in any table
// and none of its files on disk; the rooms it alone owned stay, without
// an owner, and room owner gives them one; an account created again with
// the same name inherits nothing. On each storage engine.
func TestUserDelete(t *testing.T) {
	const alice, bob = "alice@localhost", "bob@localhost"
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			cfg := writeConfig(t, e.Driver, e.DSN, "")
			dataDir := filepath.Join(filepath.Dir(cfg), "data")
			dsn := e.DSN
			for _, u := range []string{alice, bob} {
				if r := xmppd(t, "pw\n", "-config", cfg, "user", "add", u); r.code != 0 {
					t.Fatalf("user add %s: %+v", u, r)
				}
			}

			// Everything a user leaves behind, written as the server
			// writes it, through the repositories.
			ctx := t.Context()
			db, err := storage.Open(ctx, e.Driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			uploads := filepath.Join(dataDir, "uploads")
			if err := os.MkdirAll(uploads, 0o750); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			upload := func(id, owner string, file bool) {
				t.Helper()
				h := db.HTTPUploads()
				if err := h.CreateSlot(ctx, storage.Upload{ID: id, Owner: owner, Filename: "f.txt", Size: 3,
					Created: now, Expires: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				if !file {
					return
				}
				if err := os.WriteFile(filepath.Join(uploads, id), []byte("abc"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := h.MarkUploaded(ctx, id, "text/plain", now); err != nil {
					t.Fatal(err)
				}
			}
			upload("alice1", alice, true)
			upload("alice2", alice, true)
			upload("alice3", alice, false)
			upload("bob1", bob, true)
			room := func(name, creator string, affs ...string) {
				t.Helper()
				r := storage.MUCRoom{JID: name + "@conference.localhost", Service: "conference.localhost", Creator: creator,
					Whois: "moderators", AllowPM: "anyone", MaxUsers: 10}
				for _, a := range affs {
					j, aff, _ := strings.Cut(a, "=")
					r.Affiliations = append(r.Affiliations, storage.MUCAffiliation{JID: j, Affiliation: aff})
				}
				if err := db.MUC().SaveRoom(ctx, r); err != nil {
					t.Fatal(err)
				}
				if err := db.MUC().AppendHistory(ctx, r.JID, storage.MUCMessage{Seq: 1, ID: "m", Nick: "n",
					Sender: creator + "/phone", Stamp: now, Payload: []byte("<body>hi</body>")}, 5); err != nil {
					t.Fatal(err)
				}
			}
			room("alone", alice, alice+"=owner", bob+"=member")
			room("shared", alice, alice+"=owner", bob+"=owner")
			room("bobs", bob, bob+"=owner", alice+"=admin")
			for _, p := range [][2]string{{alice, bob}, {bob, alice}} {
				if _, err := db.Rosters().Put(ctx, p[0], storage.RosterItem{Contact: p[1], Subscription: "both", Visible: true}, true); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Offline().Push(ctx, alice, now, []byte("<message><body>hi</body></message>"), storage.OfflineLimits{}); err != nil {
				t.Fatal(err)
			}
			if got := leftovers(t, e.Driver, dsn, alice); len(got) < 6 {
				t.Fatalf("before user del, alice is in only %q: the check would prove nothing", got)
			}

			r := xmppd(t, "", "-config", cfg, "user", "del", alice)
			if r.code != 0 || !strings.Contains(r.stdout, "deleted alice@localhost (2 uploaded files, 1 unused upload slots)") ||
				!strings.Contains(r.stdout, "room alone@conference.localhost has no owner now; give it one with: xmppd room owner alone@conference.localhost JID") ||
				strings.Contains(r.stdout, "shared@") || strings.Contains(r.stdout, "bobs@") {
				t.Fatalf("user del: %+v", r)
			}
			// muc_history.sender is the room's record of who said what,
			// like other servers' archives; bob's roster item for alice
			// is bob's.
			allowed := []string{"roster_items.contact", "muc_history.sender"}
			if got := leftovers(t, e.Driver, dsn, alice, allowed...); len(got) != 0 {
				t.Errorf("rows naming alice after user del: %q", got)
			}
			ents, err := os.ReadDir(uploads)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, f := range ents {
				files = append(files, f.Name())
			}
			if !slices.Equal(files, []string{"bob1"}) {
				t.Errorf("upload directory after user del: %q, want only bob's bob1", files)
			}
			// Bob keeps what is his.
			if us, err := db.HTTPUploads().Owned(ctx, bob); err != nil || len(us) != 1 {
				t.Errorf("bob's uploads: %+v, %v", us, err)
			}
			// bob's roster item for alice stays, unsubscribed both ways, so
			// that a new alice gets none of bob's presence.
			if it, ok, err := db.Rosters().Get(ctx, bob, alice); err != nil || !ok || it.Subscription != "none" {
				t.Errorf("bob's roster item for alice: %+v, %v, %v; want it kept with subscription none", it, ok, err)
			}

			// Re-created, alice has nothing of the old account's.
			if r := xmppd(t, "other pw\n", "-config", cfg, "user", "add", alice); r.code != 0 {
				t.Fatalf("user add again: %+v", r)
			}
			if got := leftovers(t, e.Driver, dsn, alice, allowed...); !slices.Equal(got, []string{
				"account_credentials.jid=alice@localhost (2)", "accounts.jid=alice@localhost (1)"}) {
				t.Errorf("rows naming the new alice: %q, want her account and credentials only", got)
			}
			if n, err := db.HTTPUploads().Used(ctx, alice, now); err != nil || n != 0 {
				t.Errorf("new alice's upload quota used = %d, %v; want 0", n, err)
			}
			rooms, err := db.MUC().Rooms(ctx, "conference.localhost")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rooms {
				if r.Creator == alice {
					t.Errorf("new alice is the creator of %s", r.JID)
				}
				for _, a := range r.Affiliations {
					if a.JID == alice {
						t.Errorf("new alice is %s of %s", a.Affiliation, r.JID)
					}
				}
			}

			// An administrator gives the ownerless room an owner.
			bad := []struct {
				args []string
				want string
			}{
				{[]string{"nope@conference.localhost", bob}, "no persistent room nope@conference.localhost"},
				{[]string{"alone@conference.localhost", "carol@localhost"}, "no such user carol@localhost"},
				{[]string{"alone@localhost", bob}, "not at this server's group chat domain conference.localhost"},
				{[]string{"alone@conference.localhost/nick", bob}, "invalid room"},
				{[]string{"alone@conference.localhost", "bob@example.org"}, "not at this server's domain"},
			}
			for _, b := range bad {
				r := xmppd(t, "", append([]string{"-config", cfg, "room", "owner"}, b.args...)...)
				if r.code == 0 || !strings.Contains(r.stderr, b.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("room owner %q: %+v, want a non-zero exit and one line with %q", b.args, r, b.want)
				}
			}
			r = xmppd(t, "", "-config", cfg, "room", "owner", "Alone@conference.localhost", "Bob@localhost")
			if r.code != 0 || r.stdout != "bob@localhost is an owner of alone@conference.localhost\n" {
				t.Fatalf("room owner: %+v", r)
			}
			rooms, err = db.MUC().Rooms(ctx, "conference.localhost")
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.IndexFunc(rooms, func(r storage.MUCRoom) bool { return r.JID == "alone@conference.localhost" }); i < 0 ||
				!slices.Equal(rooms[i].Affiliations, []storage.MUCAffiliation{{JID: bob, Affiliation: "owner"}}) {
				t.Errorf("alone's affiliations after room owner: %+v", rooms)
			}
		})
	}
}
