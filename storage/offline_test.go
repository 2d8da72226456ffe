package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestOffline runs one sequence of offline-message operations, unchanged,
// on every engine. Steps share the database and run in order.
func TestOffline(t *testing.T) {
	const alice, bob = "alice@localhost", "bob@localhost"
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	stanza := func(i int) []byte {
		// Quotes, markup and non-ASCII text must come back byte for byte.
		return fmt.Appendf(nil, `<message from='carol@localhost/x' to='alice@localhost' type='chat'><body>n°%d &lt;&amp;&gt; "é" ✓</body></message>`, i)
	}
	var ids []int64             // of alice's messages, in push order
	var accts *storage.Accounts // of the engine under test

	type step struct {
		name string
		run  func(ctx context.Context, o *storage.Offline) error
	}
	steps := []step{
		{"push to unknown account", func(ctx context.Context, o *storage.Offline) error {
			_, err := o.Push(ctx, "nobody@localhost", t0, stanza(0), storage.OfflineLimits{Messages: 10})
			if !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("err = %v, want ErrNotFound", err)
			}
			return nil
		}},
		{"empty", func(ctx context.Context, o *storage.Offline) error {
			if n, err := o.Count(ctx, alice); err != nil || n != 0 {
				return fmt.Errorf("Count = %d, %v; want 0", n, err)
			}
			msgs, err := o.List(ctx, alice, 0, 10)
			if err != nil || len(msgs) != 0 {
				return fmt.Errorf("List = %v, %v; want none", msgs, err)
			}
			qs, err := o.Queues(ctx)
			if err != nil || len(qs) != 0 {
				return fmt.Errorf("Queues = %v, %v; want none", qs, err)
			}
			return nil
		}},
		{"push five", func(ctx context.Context, o *storage.Offline) error {
			for i := range 5 {
				id, err := o.Push(ctx, alice, t0.Add(time.Duration(i)*time.Hour), stanza(i), storage.OfflineLimits{Messages: 5})
				if err != nil {
					return err
				}
				if len(ids) > 0 && id <= ids[len(ids)-1] {
					return fmt.Errorf("id %d after %d: ids must increase", id, ids[len(ids)-1])
				}
				ids = append(ids, id)
			}
			return nil
		}},
		{"sixth over the limit", func(ctx context.Context, o *storage.Offline) error {
			_, err := o.Push(ctx, alice, t0, stanza(5), storage.OfflineLimits{Messages: 5})
			if !errors.Is(err, storage.ErrLimit) {
				return fmt.Errorf("err = %v, want ErrLimit", err)
			}
			if n, err := o.Count(ctx, alice); err != nil || n != 5 {
				return fmt.Errorf("Count = %d, %v; want 5", n, err)
			}
			return nil
		}},
		{"list in order, paged", func(ctx context.Context, o *storage.Offline) error {
			var got []storage.OfflineMessage
			after := int64(0)
			for {
				page, err := o.List(ctx, alice, after, 2)
				if err != nil {
					return err
				}
				if len(page) > 2 {
					return fmt.Errorf("List with limit 2 returned %d", len(page))
				}
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				after = page[len(page)-1].ID
			}
			var want []storage.OfflineMessage
			for i, id := range ids {
				want = append(want, storage.OfflineMessage{ID: id, Stamp: t0.Add(time.Duration(i) * time.Hour), Stanza: stanza(i)})
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("List =\n%+v\nwant\n%+v", got, want)
			}
			return nil
		}},
		{"no limit", func(ctx context.Context, o *storage.Offline) error {
			if err := accts.Create(ctx, storage.Account{JID: bob}); err != nil {
				return err
			}
			for i := range 3 {
				if _, err := o.Push(ctx, bob, t0.Add(10*time.Hour), stanza(i), storage.OfflineLimits{}); err != nil {
					return err
				}
			}
			return nil
		}},
		{"queues", func(ctx context.Context, o *storage.Offline) error {
			qs, err := o.Queues(ctx)
			want := []storage.OfflineQueue{{JID: alice, Messages: 5}, {JID: bob, Messages: 3}}
			if err != nil || !reflect.DeepEqual(qs, want) {
				return fmt.Errorf("Queues = %v, %v; want %v", qs, err, want)
			}
			return nil
		}},
		{"delete first two and a missing id", func(ctx context.Context, o *storage.Offline) error {
			if err := o.Delete(ctx, ids[0], ids[1], 999_999); err != nil {
				return err
			}
			msgs, err := o.List(ctx, alice, 0, 10)
			if err != nil {
				return err
			}
			if len(msgs) != 3 || msgs[0].ID != ids[2] {
				return fmt.Errorf("after Delete, List = %v; want ids %v", msgs, ids[2:])
			}
			return nil
		}},
		{"delete older than", func(ctx context.Context, o *storage.Offline) error {
			// alice's remaining stamps are t0+2h, t0+3h, t0+4h; bob's t0+10h.
			n, err := o.DeleteOlderThan(ctx, t0.Add(3*time.Hour+time.Millisecond))
			if err != nil || n != 2 {
				return fmt.Errorf("DeleteOlderThan = %d, %v; want 2", n, err)
			}
			qs, err := o.Queues(ctx)
			want := []storage.OfflineQueue{{JID: alice, Messages: 1}, {JID: bob, Messages: 3}}
			if err != nil || !reflect.DeepEqual(qs, want) {
				return fmt.Errorf("Queues = %v, %v; want %v", qs, err, want)
			}
			return nil
		}},
		{"deleting the account deletes its messages", func(ctx context.Context, o *storage.Offline) error {
			if err := accts.Delete(ctx, bob); err != nil {
				return err
			}
			if n, err := o.Count(ctx, bob); err != nil || n != 0 {
				return fmt.Errorf("Count(bob) = %d, %v; want 0", n, err)
			}
			return nil
		}},
	}
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ids, accts = nil, db.Accounts()
		ctx := t.Context()
		if err := accts.Create(ctx, storage.Account{JID: alice}); err != nil {
			t.Fatal(err)
		}
		o := db.Offline()
		for _, s := range steps {
			if err := s.run(ctx, o); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
	})
}

// TestOfflinePushBytes: the byte limit counts the bytes of the stored
// stanzas (not their characters), refuses a message that would pass it
// or is larger than it alone, and stores nothing then; on both engines.
func TestOfflinePushBytes(t *testing.T) {
	const alice, bob = "alice@localhost", "bob@localhost"
	// 60 bytes in 30 characters: an engine counting characters would let
	// the 41-byte message in after it.
	wide := []byte(strings.Repeat("é", 30))
	narrow := []byte(strings.Repeat("x", 41))
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		for _, j := range []string{alice, bob} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: j}); err != nil {
				t.Fatal(err)
			}
		}
		o := db.Offline()
		lim := storage.OfflineLimits{Messages: 10, Bytes: 100}
		first, err := o.Push(ctx, alice, time.Now(), wide, lim)
		if err != nil {
			t.Fatalf("60 bytes of 100: %v", err)
		}
		if _, err := o.Push(ctx, alice, time.Now(), narrow, lim); !errors.Is(err, storage.ErrLimit) {
			t.Fatalf("60 + 41 bytes of 100: err = %v, want ErrLimit", err)
		}
		if _, err := o.Push(ctx, alice, time.Now(), narrow[:40], lim); err != nil {
			t.Fatalf("60 + 40 bytes of 100, exactly the limit: %v", err)
		}
		if _, err := o.Push(ctx, alice, time.Now(), []byte("x"), lim); !errors.Is(err, storage.ErrLimit) {
			t.Fatalf("one byte past a full queue: err = %v, want ErrLimit", err)
		}
		msgs, err := o.List(ctx, alice, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, string(m.Stanza))
		}
		if want := []string{string(wide), string(narrow[:40])}; !reflect.DeepEqual(got, want) {
			t.Fatalf("stored %q, want the 60- and 40-byte messages only: %q", got, want)
		}
		// Delivered (deleted) messages make room again.
		if err := o.Delete(ctx, first); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Push(ctx, alice, time.Now(), narrow, lim); err != nil {
			t.Fatalf("40 + 41 bytes of 100: %v", err)
		}
		// A message larger than the limit alone never fits.
		if _, err := o.Push(ctx, bob, time.Now(), []byte(strings.Repeat("z", 101)), lim); !errors.Is(err, storage.ErrLimit) {
			t.Fatalf("101 bytes to an empty queue: err = %v, want ErrLimit", err)
		}
		// Bytes: 0 sets no bound; the message count still holds.
		big := []byte(strings.Repeat("y", 1000))
		for i := range 3 {
			if _, err := o.Push(ctx, bob, time.Now(), big, storage.OfflineLimits{Messages: 2}); (err != nil) != (i == 2) {
				t.Fatalf("push %d of 1000 bytes with only a message limit of 2: err = %v", i+1, err)
			}
		}
		if n, err := o.Count(ctx, bob); err != nil || n != 2 {
			t.Fatalf("Count(bob) = %d, %v; want 2", n, err)
		}
	})
}

// TestOfflinePushLimitConcurrent pushes from many goroutines at once: each
// limit holds exactly, on both engines.
func TestOfflinePushLimitConcurrent(t *testing.T) {
	const user, max, pushers = "alice@localhost", 10, 30
	// Every stanza is the same size, so the byte limit admits max of them.
	stanza := func(i int) []byte { return fmt.Appendf(nil, "<message><body>%02d</body></message>", i) }
	size := len(stanza(0))
	for _, lim := range []storage.OfflineLimits{{Messages: max}, {Bytes: max * size}, {Messages: max, Bytes: max*size + size/2}} {
		t.Run(fmt.Sprintf("messages=%d,bytes=%d", lim.Messages, lim.Bytes), func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T, db *storage.DB) {
				ctx := t.Context()
				if err := db.Accounts().Create(ctx, storage.Account{JID: user}); err != nil {
					t.Fatal(err)
				}
				o := db.Offline()
				var (
					wg             sync.WaitGroup
					mu             sync.Mutex
					stored, denied int
				)
				for i := range pushers {
					wg.Go(func() {
						_, err := o.Push(ctx, user, time.Now(), stanza(i), lim)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							stored++
						case errors.Is(err, storage.ErrLimit):
							denied++
						default:
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if stored != max || denied != pushers-max {
					t.Errorf("stored %d, denied %d; want %d and %d", stored, denied, max, pushers-max)
				}
				if n, err := o.Count(ctx, user); err != nil || n != max {
					t.Errorf("Count = %d, %v; want %d", n, err, max)
				}
			})
		})
	}
}
