package httpupload_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"xmppd.dev/xmppd/httpupload"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestDeleteOwner: every file and slot of one owner goes, from the disk
// and the database, and its quota with them; other owners' stay, and an
// id that is not a file name removes nothing outside the directory. On
// both storage engines.
func TestDeleteOwner(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		h := db.HTTPUploads()
		dir := filepath.Join(t.TempDir(), "uploads")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		outside := filepath.Join(filepath.Dir(dir), "outside")
		if err := os.WriteFile(outside, []byte("not an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		const alice, bob = "alice@localhost", "bob@localhost"
		add := func(id, owner string, uploaded bool) {
			t.Helper()
			u := storage.Upload{ID: id, Owner: owner, Filename: id + ".txt", Size: 10, Created: now, Expires: now.Add(time.Hour)}
			if err := h.CreateSlot(ctx, u); err != nil {
				t.Fatal(err)
			}
			if !uploaded {
				return
			}
			if err := os.WriteFile(filepath.Join(dir, id), []byte("0123456789"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := h.MarkUploaded(ctx, id, "text/plain", now); err != nil {
				t.Fatal(err)
			}
		}
		add("a1", alice, true)
		add("a2", alice, true)
		add("a3", alice, false) // a slot, never used
		add("b1", bob, true)

		files, slots, err := httpupload.DeleteOwner(ctx, h, dir, alice)
		if err != nil || files != 2 || slots != 1 {
			t.Fatalf("DeleteOwner = %d files, %d slots, %v; want 2, 1", files, slots, err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"b1"}) {
			t.Errorf("files left: %q, want only bob's b1", names)
		}
		if us, err := h.Owned(ctx, alice); err != nil || len(us) != 0 {
			t.Errorf("alice's rows after DeleteOwner: %+v, %v", us, err)
		}
		if n, err := h.Used(ctx, alice, now); err != nil || n != 0 {
			t.Errorf("alice's quota used = %d, %v; want 0", n, err)
		}
		if us, err := h.Owned(ctx, bob); err != nil || len(us) != 1 {
			t.Errorf("bob's rows = %+v, %v; want b1", us, err)
		}

		// A row whose id is a path is refused and kept, and the file it
		// names is not touched.
		add("../outside", "mallory@localhost", false)
		if _, _, err := httpupload.DeleteOwner(ctx, h, dir, "mallory@localhost"); err == nil {
			t.Error("DeleteOwner of an id ../outside: no error")
		}
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("file outside the upload directory: %v", err)
		}
		// Nothing left: nothing to do.
		if files, slots, err := httpupload.DeleteOwner(ctx, h, dir, alice); err != nil || files+slots != 0 {
			t.Errorf("second DeleteOwner = %d, %d, %v; want nothing", files, slots, err)
		}
	})
}
