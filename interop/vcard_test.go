package interop

import (
	"encoding/json"
	"reflect"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppVCardAvatar: slixmpp's xep_0054 publishes a vCard and
// xep_0153's set_avatar adds a photo; the contact sees the photo's SHA-1
// in alice's presence (slixmpp's vcard_avatar_update), also in the
// presence of a resource whose client does not do XEP-0153 (the server
// stamps it), and receives the PEP avatar the server made of the photo
// (XEP-0398); the contact and a stranger read the vCard
// (testdata/slixmpp_vcard.py).
func TestSlixmppVCardAvatar(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	args := []string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		j := srv.AddUser(t, u, u+"-pw")
		args = append(args, "--"+u+"-jid", j.String(), "--"+u+"-password", u+"-pw")
	}
	res := runSlixmpp(t, srv, "slixmpp_vcard.py", args...)
	bob, carol := res.pep(t, "bob"), res.pep(t, "carol")
	aliceJID := "alice@" + srv.Domain
	var photo []byte
	photo = append(photo, "\x89PNG\r\n\x1a\n"...)
	for i := range 200 {
		photo = append(photo, byte(i))
	}
	photo = append(photo, " alice's vCard photo"...)
	sha := sha1Hex(photo)

	// Presence: slixmpp's vcard_avatar_update with the hash, and the
	// second resource's presence stamped by the server.
	var updates struct {
		AvatarUpdates []struct{ From, Photo string } `json:"avatar_updates"`
	}
	decodeExtra(t, res, "bob", &updates)
	seen := false
	for _, u := range updates.AvatarUpdates {
		seen = seen || (bare(u.From) == aliceJID && u.Photo == sha)
	}
	if !seen {
		t.Errorf("bob: vcard_avatar_update events %+v, none from alice with %s", updates.AvatarUpdates, sha)
	}
	var plain *string
	for _, p := range bob.Presences {
		if p.From == aliceJID+"/plain" {
			plain = p.Photo
		}
	}
	if plain == nil || *plain != sha {
		t.Errorf("bob: presence of alice's resource without XEP-0153 has photo %v, want the server's stamp %s", deref(plain), sha)
	}

	// XEP-0398: the photo became alice's PEP avatar.
	var meta []pepEvent
	for _, e := range bob.Events {
		if e.Node == nsAvatarMeta && e.From == aliceJID {
			meta = append(meta, e)
		}
	}
	if len(meta) != 1 || meta[0].ID != sha || len(meta[0].Payload.Info) != 1 || meta[0].Payload.Info[0].Type != "image/png" ||
		meta[0].Payload.Info[0].Bytes != "228" {
		t.Errorf("bob: avatar metadata events %+v, want one for %s (image/png, 228 bytes)", meta, sha)
	}
	if d := bob.Fetches["avatar_data"]; d.Type != "result" || len(d.Items) != 1 || d.Items[0].Payload.SHA1 != sha {
		t.Errorf("bob: avatar data %s fetched %+v", sha, d)
	}

	// The vCard, as the contact and a stranger read it.
	for name, x := range map[string]pepExtra{"bob": bob, "carol": carol} {
		v := x.Fetches["vcard"]
		// slixmpp reads NICKNAME as a list.
		want := map[string]any{"fn": "Alice Liddell", "nickname": []any{"alice"}, "photo_type": "image/png", "photo_sha1": sha}
		if v.Type != "result" {
			t.Errorf("%s: alice's vCard: %+v", name, v)
			continue
		}
		for k, w := range want {
			if !reflect.DeepEqual(v.Extra[k], w) {
				t.Errorf("%s: alice's vCard %s = %v, want %v", name, k, v.Extra[k], w)
			}
		}
	}
}

// decodeExtra decodes the extra record of account name into v.
func decodeExtra(t *testing.T, res result, name string, v any) {
	t.Helper()
	a := res.get(t, name)
	if err := json.Unmarshal(a.Extra, v); err != nil {
		t.Fatalf("%s: extra %s: %v", name, a.Extra, err)
	}
}
