package openfire

import (
	"context"
	"fmt"
	"testing"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage/storagetest"
)

// BenchmarkReadScript10kUsers reads an openfire.script of 10,000 users,
// each with an encrypted password and SCRAM-SHA-1 keys at Openfire's 4096
// iterations (each checked), 50 roster items and an offline message: the
// scale of issue 25's import target, for the reader's share.
func BenchmarkReadScript10kUsers(b *testing.B) {
	p := scaleScript(b)
	b.ResetTimer()
	for b.Loop() {
		d, err := Read(context.Background(), Options{HSQLDBScript: p, Domain: ofDomain})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Users) != scaleUsers || len(d.Users[0].Roster) != scaleItems || d.Users[0].Password != "password" {
			b.Fatalf("read %d users", len(d.Users))
		}
	}
}

// BenchmarkImport10kUsers is the whole of 'xmppd import openfire' at issue
// 25's scale (at most 60 s): the script read, passwords decrypted and
// checked against the SCRAM keys, SCRAM-SHA-1 and SCRAM-SHA-256 keys
// derived from them, and everything written into a fresh database of each
// engine.
func BenchmarkImport10kUsers(b *testing.B) {
	p := scaleScript(b)
	for _, e := range storagetest.Engines(b) {
		b.Run(e.Name, func(b *testing.B) {
			e.Require(b)
			for b.Loop() {
				b.StopTimer()
				db := storagetest.Open(b, e)
				b.StartTimer()
				d, err := Read(context.Background(), Options{HSQLDBScript: p, Domain: ofDomain})
				if err != nil {
					b.Fatal(err)
				}
				rep, err := migration.Write(context.Background(), db, d, migration.WriteOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Users != scaleUsers || rep.RosterItems != scaleUsers*scaleItems || rep.DerivedFromPassword != scaleUsers {
					b.Fatalf("report %+v", rep)
				}
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
		})
	}
}

const scaleUsers, scaleItems = 10000, 50

// scaleScript writes an openfire.script of scaleUsers users with
// scaleItems roster items each.
func scaleScript(b *testing.B) string {
	const users, items = scaleUsers, scaleItems
	f := schema(40)
	f.insert("ofVersion", map[string]any{"name": "openfire", "version": 40})
	f.insert("ofProperty", map[string]any{"name": "xmpp.domain", "propValue": ofDomain})
	f.insert("ofProperty", map[string]any{"name": "passwordKey", "propValue": passwordKey})
	sk, svk, salt := scramKeys("password", "salt", 4096)
	enc, _ := encryptPassword(sha1Key(passwordKey), 1, "password")
	id := 0
	for u := range users {
		name := fmt.Sprintf("user%05d", u)
		f.insert("ofUser", map[string]any{"username": name, "encryptedPassword": enc, "creationDate": ms(1), "modificationDate": ms(1)})
		f.insert("ofUserScram", map[string]any{"username": name, "mechanism": "SCRAM-SHA-1", "storedKey": sk, "serverKey": svk, "salt": salt, "iterations": 4096})
		for i := range items {
			id++
			f.insert("ofRoster", map[string]any{"rosterID": id, "username": name, "jid": fmt.Sprintf("user%05d@%s", (u+i+1)%users, ofDomain), "sub": 3, "ask": -1, "recv": -1, "nick": "Contact"})
			f.insert("ofRosterGroups", map[string]any{"rosterID": id, "rank": 0, "groupName": "Friends"})
		}
		f.insert("ofOffline", map[string]any{"username": name, "messageID": u, "creationDate": ms(2), "messageSize": 10, "stanza": offline1})
	}
	return f.writeScript(b)
}
