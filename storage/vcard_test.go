package storage_test

import (
	"slices"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestVCards sets, replaces, reads and cascades vCards, on every engine;
// the stored text comes back byte for byte (non-ASCII included).
func TestVCards(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		v := db.VCards()
		if _, _, ok, err := v.Get(ctx, alice); ok || err != nil {
			t.Fatalf("fresh Get: ok %v, %v", ok, err)
		}
		if _, ok, err := v.Photo(ctx, alice); ok || err != nil {
			t.Fatalf("fresh Photo: ok %v, %v", ok, err)
		}
		first := []byte("<vCard xmlns='vcard-temp'><FN>Älice &amp; co</FN></vCard>")
		if err := v.Set(ctx, alice, first, ""); err != nil {
			t.Fatal(err)
		}
		second := []byte("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>")
		if err := v.Set(ctx, alice, second, "1489f923c4dca729178b3e3233458550d8dddf29"); err != nil {
			t.Fatal(err)
		}
		if err := v.Set(ctx, bob, first, ""); err != nil {
			t.Fatal(err)
		}
		got, photo, ok, err := v.Get(ctx, alice)
		if err != nil || !ok || string(got) != string(second) || photo != "1489f923c4dca729178b3e3233458550d8dddf29" {
			t.Fatalf("Get after replace = %q, %q, %v, %v", got, photo, ok, err)
		}
		if photo, ok, err := v.Photo(ctx, bob); err != nil || !ok || photo != "" {
			t.Fatalf("bob's Photo = %q, %v, %v", photo, ok, err)
		}
		if got, _, _, _ := v.Get(ctx, bob); string(got) != string(first) {
			t.Fatalf("bob's vCard = %q", got)
		}
		// Only alice's vCard has a photo.
		if with, err := v.WithPhoto(ctx); err != nil || len(with) != 1 || with[0] != alice {
			t.Fatalf("WithPhoto = %q, %v; want [%s]", with, err, alice)
		}
		if err := db.Accounts().Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := v.Get(ctx, bob); ok || err != nil {
			t.Fatalf("deleted account's vCard: ok %v, %v", ok, err)
		}
		if err := v.Set(ctx, "nobody@localhost", first, ""); err == nil {
			t.Fatal("vCard for a missing account stored")
		}
	})
}

// TestPrivateXML stores, replaces and lists private XML per namespace, on
// every engine.
func TestPrivateXML(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		const alice, bob = "alice@localhost", "bob@localhost"
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
				t.Fatal(err)
			}
		}
		p := db.PrivateXML()
		if _, ok, err := p.Get(ctx, alice, "a:b"); ok || err != nil {
			t.Fatalf("fresh Get: ok %v, %v", ok, err)
		}
		if err := p.Set(ctx, alice, map[string][]byte{
			"exodus:prefs":      []byte("<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"),
			"storage:bookmarks": []byte("<storage xmlns='storage:bookmarks'/>"),
		}); err != nil {
			t.Fatal(err)
		}
		if err := p.Set(ctx, alice, map[string][]byte{"exodus:prefs": []byte("<exodus xmlns='exodus:prefs'/><exodus xmlns='exodus:prefs'>ü</exodus>")}); err != nil {
			t.Fatal(err)
		}
		if err := p.Set(ctx, bob, map[string][]byte{"exodus:prefs": []byte("<exodus xmlns='exodus:prefs'>bob</exodus>")}); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := p.Get(ctx, alice, "exodus:prefs"); err != nil || !ok || string(got) != "<exodus xmlns='exodus:prefs'/><exodus xmlns='exodus:prefs'>ü</exodus>" {
			t.Fatalf("Get after replace = %q, %v, %v", got, ok, err)
		}
		if ns, err := p.Namespaces(ctx, alice); err != nil || !slices.Equal(ns, []string{"exodus:prefs", "storage:bookmarks"}) {
			t.Fatalf("Namespaces = %q, %v", ns, err)
		}
		if err := db.Accounts().Delete(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if ns, err := p.Namespaces(ctx, bob); err != nil || len(ns) != 0 {
			t.Fatalf("deleted account's namespaces = %q, %v", ns, err)
		}
		if err := p.Set(ctx, "nobody@localhost", map[string][]byte{"a:b": []byte("<b xmlns='a:b'/>")}); err == nil {
			t.Fatal("private XML for a missing account stored")
		}
	})
}
