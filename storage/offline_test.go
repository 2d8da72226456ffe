package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
			_, err := o.Push(ctx, "nobody@localhost", t0, stanza(0), 10)
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
				id, err := o.Push(ctx, alice, t0.Add(time.Duration(i)*time.Hour), stanza(i), 5)
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
			_, err := o.Push(ctx, alice, t0, stanza(5), 5)
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
				if _, err := o.Push(ctx, bob, t0.Add(10*time.Hour), stanza(i), 0); err != nil {
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

// TestOfflinePushLimitConcurrent pushes from many goroutines at once: the
// limit holds exactly, on both engines.
func TestOfflinePushLimitConcurrent(t *testing.T) {
	const user, max, pushers = "alice@localhost", 10, 30
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
				_, err := o.Push(ctx, user, time.Now(), fmt.Appendf(nil, "<message><body>%d</body></message>", i), max)
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
}
