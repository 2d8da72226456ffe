package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Options configure the archive; see config.MAM for what each means.
type Options struct {
	// Default is "always", "roster" or "never": which 1:1 messages a user
	// who has not set preferences gets archived.
	Default string
	// MaxAge deletes what is older; 0 keeps everything.
	MaxAge time.Duration
	// MaxPerArchive keeps at most that many messages in one archive (the
	// newest); 0 sets no bound.
	MaxPerArchive int
	// SweepInterval is how often MaxAge and MaxPerArchive are applied.
	SweepInterval time.Duration
	// FlushInterval and FlushMessages bound how long and how many
	// messages wait in memory before they are written.
	FlushInterval time.Duration
	FlushMessages int
	// QueueLimit is the most messages waiting to be written while the
	// database does not answer; past it they are not archived. 0 means
	// 100,000.
	QueueLimit int
}

// Page sizes: a query without max gets DefaultPage messages; a bigger max
// is cut to MaxPage.
const (
	DefaultPage = 50
	MaxPage     = 250
)

// syncWait is how long a query waits for messages still in memory to be
// written before it reads the archive.
const syncWait = 2 * time.Second

// Service is the archive of every account and, through [Service.Rooms],
// of the rooms that keep one.
type Service struct {
	router *router.Router
	store  *storage.Archive
	opts   Options
	log    *slog.Logger
	clock  clock
	w      *writer
	prefs  prefsCache

	started   bool // Start ran its goroutines
	stopSweep chan struct{}
	sweepDone chan struct{}
	stopOnce  sync.Once
}

// New returns the archive service; Start it before stanzas flow.
func New(r *router.Router, store *storage.Archive, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.QueueLimit == 0 {
		opts.QueueLimit = 100_000
	}
	if opts.FlushMessages <= 0 {
		opts.FlushMessages = 5000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 500 * time.Millisecond
	}
	if opts.Default == "" {
		opts.Default = "always"
	}
	s := &Service{
		router: r, store: store, opts: opts, log: log,
		stopSweep: make(chan struct{}), sweepDone: make(chan struct{}),
	}
	s.w = newWriter(store, opts.FlushInterval, opts.FlushMessages, opts.QueueLimit, log)
	s.prefs.init()
	return s
}

// Start reads what the archive needs in memory (the newest sequence
// number, the users' preferences) and starts the writer and the sweep.
func (s *Service) Start(ctx context.Context) error {
	maxSeq, err := s.store.MaxSeq(ctx)
	if err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	s.clock.start(maxSeq)
	all, err := s.store.AllPrefs(ctx)
	if err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	s.prefs.load(all)
	s.started = true
	go s.w.run()
	go s.sweepLoop()
	return nil
}

// Stop writes what is still in memory (until ctx ends) and stops the
// sweep. Call it after the sessions and rooms have stopped.
func (s *Service) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		if !s.started {
			return
		}
		close(s.stopSweep)
		<-s.sweepDone
		err = s.w.stop(ctx)
	})
	return err
}

// Register hooks the archive into the router: the message pipeline, the
// query, metadata and preference IQs, and the features in disco#info.
func (s *Service) Register(reg *router.Registry) {
	for _, f := range []string{NS, NSExtended} {
		reg.Feature(f)
		reg.AccountFeature(f)
	}
	reg.AccountFeature(NSSID)
	reg.OutboundMessage(router.PhaseRewrite, s.outbound)
	reg.InboundMessage(router.PhaseRewrite, s.inbound)
	query := xml.Name{Space: NS, Local: "query"}
	reg.IQFunc(stanza.SetIQ, router.ToSelf, query, s.query)
	reg.IQFunc(stanza.GetIQ, router.ToSelf, query, s.form)
	reg.IQFunc(stanza.GetIQ, router.ToSelf, xml.Name{Space: NS, Local: "metadata"}, s.metadata)
	reg.IQFunc(stanza.GetIQ, router.ToSelf, xml.Name{Space: NS, Local: "prefs"}, s.getPrefs)
	reg.IQFunc(stanza.SetIQ, router.ToSelf, xml.Name{Space: NS, Local: "prefs"}, s.setPrefs)
}

// archivable says whether a 1:1 message goes in the archive (XEP-0313
// §7): chat or normal with a body, or anything a <store/> hint asks for;
// never one with <no-store/> or <no-permanent-store/>.
func archivable(c children) bool {
	if c.noStore || c.noPermanentStore {
		return false
	}
	return c.body || c.store
}

// oneToOne is the fast check of a message's type: only chat and normal
// messages go in a user's archive (groupchat goes in the room's).
func oneToOne(m *router.Stanza) bool {
	return m.Kind == router.KindMessage && (m.Type == "chat" || m.Type == "" || m.Type == "normal")
}

// outbound archives a message a local user sends, in the sender's
// archive. A message to the sender's own bare JID is left to inbound, so
// that it is archived once.
func (s *Service) outbound(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	if !oneToOne(m) || m.To.Equal(jid.JID{}) || m.To.Bare().Equal(m.From.Bare()) {
		return m, router.Continue
	}
	c, ok := scanMessage(m.Raw)
	if !ok || !archivable(c) {
		return m, router.Continue
	}
	owner := m.From.Bare()
	ownerStr := owner.String()
	if !s.wants(ctx, owner, ownerStr, m.To) {
		return m, router.Continue
	}
	seq := s.clock.next()
	s.w.add(storage.ArchivedMessage{
		Owner: ownerStr, Seq: seq, ID: newID(seq),
		With: m.To.Bare().String(), WithResource: m.To.Resourcepart(),
		Outgoing: true, Stanza: m.Raw,
	})
	return m, router.Continue
}

var sidBytes = []byte(NSSID)

// inbound archives a message for a local user in the user's archive, and
// gives the copy the user's sessions get a <stanza-id/> with the archive's
// id. A <stanza-id/> claiming to be by the user's archive is removed from
// every message, archived or not: only the server may say that.
func (s *Service) inbound(ctx context.Context, m *router.Stanza) (*router.Stanza, router.Result) {
	if m.Kind != router.KindMessage {
		return m, router.Continue
	}
	one := oneToOne(m)
	if !one && (m.Type == "groupchat" || !bytes.Contains(m.Raw, sidBytes)) {
		// A room's copies carry the room's id, which the room checked
		// (clients read only a groupchat id by the room); a headline or
		// an error without ids has nothing to cut.
		return m, router.Continue
	}
	owner := m.To.Bare()
	if m.To.Equal(jid.JID{}) {
		owner = m.From.Bare() // no to: addressed to the sender's bare JID
	}
	c, ok := scanMessage(m.Raw)
	if !ok {
		return m, router.Continue
	}
	raw := m.Raw
	if len(c.sids) > 0 {
		var cut []span
		for _, id := range c.sids {
			if j, err := jid.Parse(id.by); err == nil && j.Equal(owner) {
				cut = append(cut, id.at)
			}
		}
		if len(cut) > 0 {
			raw = without(raw, cut)
		}
	}
	ownerStr := owner.String()
	if !one || !archivable(c) || !s.wants(ctx, owner, ownerStr, m.From) {
		if len(raw) == len(m.Raw) {
			return m, router.Continue
		}
		return restanza(m, raw), router.Continue
	}
	seq := s.clock.next()
	id := newID(seq)
	s.w.add(storage.ArchivedMessage{
		Owner: ownerStr, Seq: seq, ID: id,
		With: m.From.Bare().String(), WithResource: m.From.Resourcepart(),
		Stanza: raw,
	})
	return restanza(m, withStanzaID(raw, ownerStr, id)), router.Continue
}

// restanza is m with other bytes.
func restanza(m *router.Stanza, raw []byte) *router.Stanza {
	n := *m
	n.Raw = raw
	return &n
}

// withStanzaID returns raw (a message with children, ending in its end
// tag) with <stanza-id by id/> as its last child.
func withStanzaID(raw []byte, by, id string) []byte {
	end := bytes.LastIndex(raw, []byte("</"))
	if end < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(by)+len(id)+64)
	out = append(out, raw[:end]...)
	out = AppendStanzaID(out, by, id)
	return append(out, raw[end:]...)
}

// AppendStanzaID appends <stanza-id xmlns='urn:xmpp:sid:0' by id/>.
func AppendStanzaID(dst []byte, by, id string) []byte {
	dst = append(dst, "<stanza-id"...)
	dst = xmlenc.AppendAttr(dst, "xmlns", NSSID)
	dst = xmlenc.AppendAttr(dst, "by", by)
	dst = xmlenc.AppendAttr(dst, "id", id)
	return append(dst, "/>"...)
}

// sweepLoop applies the retention settings every SweepInterval.
func (s *Service) sweepLoop() {
	defer close(s.sweepDone)
	if s.opts.MaxAge <= 0 && s.opts.MaxPerArchive <= 0 || s.opts.SweepInterval <= 0 {
		<-s.stopSweep
		return
	}
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		s.Sweep(context.Background())
		select {
		case <-s.stopSweep:
			return
		case <-t.C:
		}
	}
}

// Sweep deletes what the retention settings exclude: messages older than
// MaxAge, and the oldest of an archive beyond MaxPerArchive.
func (s *Service) Sweep(ctx context.Context) {
	if s.opts.MaxAge > 0 {
		n, err := s.store.DeleteOlder(ctx, time.Now().Add(-s.opts.MaxAge).UnixMicro())
		if err != nil {
			s.log.Warn("mam: sweep of expired messages failed", "err", err)
		} else if n > 0 {
			s.log.Info("mam: expired messages deleted", "messages", n, "max_age", s.opts.MaxAge.String())
		}
	}
	if s.opts.MaxPerArchive > 0 {
		n, err := s.store.Trim(ctx, s.opts.MaxPerArchive)
		if err != nil {
			s.log.Warn("mam: trimming archives failed", "err", err)
		} else if n > 0 {
			s.log.Info("mam: oldest messages of full archives deleted", "messages", n, "max_messages_per_user", s.opts.MaxPerArchive)
		}
	}
}

// Flush writes what waits in memory (for tests and admin commands).
func (s *Service) Flush() { s.w.sync(syncWait) }
