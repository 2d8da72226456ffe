package storage_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestHTTPUploads runs the upload repository on both engines: slots,
// the single transition to uploaded, quota sums, release times and the
// sweep's selection.
func TestHTTPUploads(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		h := db.HTTPUploads()
		t0 := time.UnixMilli(1_700_000_000_123).UTC()
		const alice, bob = "alice@localhost", "bob@localhost"
		slot := func(id, owner string, size int64, created time.Time) storage.Upload {
			return storage.Upload{ID: id, Owner: owner, Filename: "café ✓ " + id + ".png", Size: size,
				ContentType: "image/png", Created: created, Expires: created.Add(5 * time.Minute)}
		}
		a1, a2, a3 := slot("a1", alice, 100, t0), slot("a2", alice, 200, t0.Add(time.Minute)), slot("a3", alice, 400, t0)
		b1 := slot("b1", bob, 1000, t0)
		b1.ContentType = ""
		for _, u := range []storage.Upload{a1, a2, a3, b1} {
			if err := h.CreateSlot(ctx, u); err != nil {
				t.Fatalf("create %s: %v", u.ID, err)
			}
		}
		if err := h.CreateSlot(ctx, a1); !errors.Is(err, storage.ErrExists) {
			t.Errorf("creating a1 twice: %v, want ErrExists", err)
		}
		if got, err := h.Upload(ctx, "a1"); err != nil || !reflect.DeepEqual(got, a1) {
			t.Errorf("Upload(a1) = %+v, %v; want %+v", got, err, a1)
		}
		if _, err := h.Upload(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Upload(nope): %v, want ErrNotFound", err)
		}

		// a1 is uploaded at t0+1m; a3's slot stays unused.
		up := t0.Add(time.Minute)
		if err := h.MarkUploaded(ctx, "a1", "image/png; x=y", up); err != nil {
			t.Fatal(err)
		}
		if err := h.MarkUploaded(ctx, "a1", "image/png", up); !errors.Is(err, storage.ErrExists) {
			t.Errorf("second MarkUploaded: %v, want ErrExists", err)
		}
		if err := h.MarkUploaded(ctx, "nope", "image/png", up); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("MarkUploaded(nope): %v, want ErrNotFound", err)
		}
		got, _ := h.Upload(ctx, "a1")
		if !got.Uploaded.Equal(up) || got.ContentType != "image/png; x=y" {
			t.Errorf("after MarkUploaded: %+v", got)
		}

		// Quota: at t0+2m everything counts (700); at t0+5m30s the slots
		// a3 (expired at t0+5m) no longer does, a2 (t0+6m) still does.
		for _, tc := range []struct {
			at   time.Time
			want int64
		}{{t0.Add(2 * time.Minute), 700}, {t0.Add(5*time.Minute + 30*time.Second), 300}, {t0.Add(time.Hour), 100}} {
			if n, err := h.Used(ctx, alice, tc.at); err != nil || n != tc.want {
				t.Errorf("Used at %v = %d, %v; want %d", tc.at.Sub(t0), n, err, tc.want)
			}
		}
		if n, err := h.Used(ctx, "carol@localhost", t0); err != nil || n != 0 {
			t.Errorf("Used by nobody = %d, %v", n, err)
		}
		rels, err := h.Releases(ctx, alice, t0.Add(2*time.Minute), time.Hour, 10)
		want := []storage.Release{
			{Size: 400, At: t0.Add(5 * time.Minute)},
			{Size: 200, At: t0.Add(6 * time.Minute)},
			{Size: 100, At: up.Add(time.Hour)},
		}
		if err != nil || !reflect.DeepEqual(rels, want) {
			t.Errorf("Releases = %+v, %v; want %+v", rels, err, want)
		}

		// The sweep's selection at t0+1h1m (files of one hour, slots
		// with a grace of 5m): a1 was uploaded exactly an hour before, and
		// every slot has expired long ago.
		now := t0.Add(time.Hour + time.Minute)
		exp, err := h.Expired(ctx, now.Add(-time.Hour), now.Add(-5*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range exp {
			ids = append(ids, u.ID)
		}
		if !slices.Equal(ids, []string{"a1", "a2", "a3", "b1"}) {
			t.Errorf("Expired = %q, want all four", ids)
		}
		exp, err = h.Expired(ctx, now.Add(-time.Hour).Add(-time.Millisecond), t0.Add(5*time.Minute+30*time.Second), 10)
		ids = ids[:0]
		for _, u := range exp {
			ids = append(ids, u.ID)
		}
		if err != nil || !slices.Equal(ids, []string{"a3", "b1"}) {
			t.Errorf("Expired (file too young, a2 not expired) = %q, %v; want a3 b1", ids, err)
		}
		if exp, _ := h.Expired(ctx, now, now, 1); len(exp) != 1 {
			t.Errorf("Expired with limit 1 gave %d rows", len(exp))
		}
		for _, tc := range []struct {
			owner string
			want  []string
		}{{alice, []string{"a1", "a2", "a3"}}, {bob, []string{"b1"}}, {"carol@localhost", nil}} {
			us, err := h.Owned(ctx, tc.owner)
			var ids []string
			for _, u := range us {
				ids = append(ids, u.ID)
			}
			if err != nil || !slices.Equal(ids, tc.want) {
				t.Errorf("Owned(%s) = %q, %v; want %q", tc.owner, ids, err, tc.want)
			}
		}
		if us, _ := h.Owned(ctx, bob); len(us) != 1 || !reflect.DeepEqual(us[0], b1) {
			t.Errorf("Owned(bob) = %+v, want %+v", us, b1)
		}
		if err := h.Delete(ctx, "a1", "a3", "nope"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Upload(ctx, "a1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a1 after Delete: %v", err)
		}
		if n, _ := h.Used(ctx, alice, t0); n != 200 {
			t.Errorf("Used after Delete = %d, want 200", n)
		}
		if err := h.Delete(ctx); err != nil {
			t.Errorf("Delete of nothing: %v", err)
		}
	})
}
