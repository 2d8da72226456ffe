package httpupload

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
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
