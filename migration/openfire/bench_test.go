package openfire

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkReadScript10kUsers reads an openfire.script of 10,000 users,
// each with an encrypted password and SCRAM-SHA-1 keys at Openfire's 4096
// iterations (each checked), 50 roster items and an offline message: the
// scale of issue 25's import target, for the reader's share.
func BenchmarkReadScript10kUsers(b *testing.B) {
	const users, items = 10000, 50
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
	p := f.writeScript(b)
	b.ResetTimer()
	for b.Loop() {
		d, err := Read(context.Background(), Options{HSQLDBScript: p, Domain: ofDomain})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Users) != users || len(d.Users[0].Roster) != items || d.Users[0].Password != "password" {
			b.Fatalf("read %d users", len(d.Users))
		}
	}
}
