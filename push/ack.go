package push

import (
	"context"
	"time"

	"xmppd.dev/xmppd/router"
)

// watch waits for a connected session's acknowledgement (XEP-0198) of the
// messages that matter sent to it; guarded by Service.watchMu.
type watch struct {
	want  uint32  // the session's sent count after the last watched message
	count int     // watched messages not acknowledged yet
	last  summary // the last of them
	timer *time.Timer
}

// watchAck makes sure that a message that matters, just written to the
// connected stream-managed session sess, is acknowledged within
// Options.AckTimeout: a phone that went to sleep often leaves its
// connection half-open, the server writing into it until the keepalive
// gives up minutes later. Without an acknowledgement in time, the app
// server is told (Prosody's mod_cloud_notify does the same on
// smacks-ack-delayed). The client is asked for one at once.
func (s *Service) watchAck(user string, sess router.Session, ack router.Acknowledger, sum summary) {
	sent, _, ok := ack.AckState()
	if !ok {
		return
	}
	s.watchMu.Lock()
	w := s.watches[sess]
	if w == nil {
		w = &watch{}
		s.watches[sess] = w
		w.timer = time.AfterFunc(s.opts.AckTimeout, func() { s.ackDue(user, sess, ack) })
	}
	w.want, w.last = sent, sum
	w.count++
	s.watchMu.Unlock()
	ack.RequestAck()
}

// ackDue checks, once AckTimeout has passed, whether the client
// acknowledged what was watched, and notifies when it did not.
func (s *Service) ackDue(user string, sess router.Session, ack router.Acknowledger) {
	s.watchMu.Lock()
	w := s.watches[sess]
	delete(s.watches, sess)
	s.watchMu.Unlock()
	if w == nil {
		return
	}
	_, acked, ok := ack.AckState()
	if !ok || int32(acked-w.want) >= 0 {
		// Acknowledged; or detached meanwhile, which notifies for what
		// was not (OnDetach), or gone.
		return
	}
	s.mu.Lock()
	if a := s.accounts[user]; a != nil {
		// Told now: the detach that follows (the keepalive's) notifies
		// only if more arrived since.
		if a.ackNotified == nil {
			a.ackNotified = map[router.Session]uint32{}
		}
		a.ackNotified[sess] = w.want
	}
	s.mu.Unlock()
	s.send(context.Background(), user, w.last, w.count)
}

// forgetWatch drops the watch of a session that ended.
func (s *Service) forgetWatch(_ context.Context, sess router.Session) {
	s.watchMu.Lock()
	if w := s.watches[sess]; w != nil {
		w.timer.Stop()
		delete(s.watches, sess)
	}
	s.watchMu.Unlock()
	if s.owners.Load() == 0 {
		return
	}
	if a := s.lookup(sess.JID().Bare().String()); a != nil {
		s.mu.Lock()
		delete(a.ackNotified, sess)
		s.mu.Unlock()
	}
}
