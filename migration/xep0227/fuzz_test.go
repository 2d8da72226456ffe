package xep0227_test

import (
	"bytes"
	"strings"
	"testing"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/migration/xep0227"
	"xmppd.dev/xmppd/storage"
)

// FuzzRead: whatever the file, Read returns data or an error, never
// panics; what it returns writes out and reads back to the same users.
func FuzzRead(f *testing.F) {
	var b bytes.Buffer
	d := &migration.Data{Domain: "localhost", Users: []migration.User{{Username: "alice", Password: "pw",
		Roster:  []storage.RosterItem{{Contact: "bob@localhost", Subscription: "both", Groups: []string{"G"}, Visible: true}},
		VCard:   []byte("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>"),
		Private: map[string][]byte{"a:b": []byte("<x xmlns='a:b'/>")}}}}
	if err := xep0227.Write(&b, d); err != nil {
		f.Fatal(err)
	}
	f.Add(b.String())
	f.Add("<server-data xmlns='urn:xmpp:pie:0'><host jid='h'><user name='u'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count><salt>AA==</salt><server-key>AA==</server-key><stored-key>AA==</stored-key></scram-credentials></user></host></server-data>")
	f.Add("<server-data xmlns='urn:xmpp:pie:0'><host jid='h'><user name='u'><offline-messages><message xmlns='jabber:client'/></offline-messages></user></host></server-data>")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := xep0227.Read(strings.NewReader(s), "f.xml")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := xep0227.Write(&out, d); err != nil {
			t.Fatalf("Write of what Read returned: %v", err)
		}
		again, err := xep0227.Read(&out, "again.xml")
		if err != nil {
			t.Fatalf("Read of what Write wrote: %v\n%s", err, out.String())
		}
		if len(again.Users) != len(d.Users) {
			t.Fatalf("%d users, then %d", len(d.Users), len(again.Users))
		}
	})
}
