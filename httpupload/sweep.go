package httpupload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"xmppd.dev/xmppd/storage"
)

// sweepBatch bounds the rows one sweep step reads.
const sweepBatch = 500

func (s *Service) sweepLoop() {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		s.sweep(s.sweepCtx)
		select {
		case <-s.sweepCtx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep deletes the files MaxAge old or older, file first and then row, and
// the slots never used that expired more than one SlotTimeout ago (the
// grace keeps it clear of uploads that started just in time). Slots an
// upload is busy with are left for the next sweep.
func (s *Service) sweep(ctx context.Context) {
	now := s.now()
	var files, slots int
	for ctx.Err() == nil {
		rows, err := s.store.Expired(ctx, now.Add(-s.opts.MaxAge), now.Add(-s.opts.SlotTimeout), sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("expired uploads not read", "err", err)
			}
			return
		}
		var ids []string
		for _, u := range rows {
			if !s.claim(u.ID) {
				continue
			}
			if err := os.Remove(s.path(u.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Error("expired upload not deleted", "slot", u.ID, "err", err)
				s.release(u.ID)
				continue
			}
			ids = append(ids, u.ID)
			if u.Uploaded.IsZero() {
				slots++
			} else {
				files++
			}
		}
		err = s.store.Delete(ctx, ids...)
		for _, id := range ids {
			s.release(id)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("expired uploads not deleted", "err", err)
			}
			return
		}
		if len(rows) < sweepBatch || len(ids) == 0 {
			break
		}
	}
	if files+slots > 0 {
		s.log.Info("deleted expired uploads", "files", files, "slots", slots, "max_age", s.opts.MaxAge.String())
	}
}

// OwnerStore is what [DeleteOwner] needs; *storage.HTTPUploads implements
// it.
type OwnerStore interface {
	Owned(ctx context.Context, owner string) ([]storage.Upload, error)
	Delete(ctx context.Context, ids ...string) error
}

// DeleteOwner deletes every file and slot of owner (a bare JID), each
// file from dir before its row, so that nothing of it stays on disk or
// counts against a quota: for an account being deleted (xmppd user del),
// with no Service running in this process. It returns how many uploaded
// files and unused slots it deleted. A file that cannot be removed keeps
// its row, and the error says so; running it again retries.
//
// A server running meanwhile may still be receiving one of owner's
// uploads: its PUT then finds the slot gone and removes the file itself.
func DeleteOwner(ctx context.Context, store OwnerStore, dir, owner string) (files, slots int, err error) {
	us, err := store.Owned(ctx, owner)
	if err != nil {
		return 0, 0, fmt.Errorf("httpupload: delete uploads of %s: %w", owner, err)
	}
	ids := make([]string, 0, len(us))
	var errs []error
	for _, u := range us {
		// Ids come from the database; one that is not a bare name would
		// be a path, and nothing is removed for it.
		if u.ID == "" || u.ID != filepath.Base(u.ID) || strings.HasPrefix(u.ID, ".") {
			errs = append(errs, fmt.Errorf("upload id %q is not a file name", u.ID))
			continue
		}
		if err := os.Remove(filepath.Join(dir, u.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, u.ID)
		if u.Uploaded.IsZero() {
			slots++
		} else {
			files++
		}
	}
	if err := store.Delete(ctx, ids...); err != nil {
		return 0, 0, fmt.Errorf("httpupload: delete uploads of %s: %w", owner, err)
	}
	if len(errs) > 0 {
		// One line: the first failure, which the others most likely share.
		return files, slots, fmt.Errorf("httpupload: delete uploads of %s: %d not deleted, the first: %w", owner, len(errs), errs[0])
	}
	return files, slots, nil
}
