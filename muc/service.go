package muc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Store keeps persistent rooms; *storage.MUC implements it. A room's
// configuration, affiliations and subject are written while the room is
// locked, so that they reach the store in the order they changed; history
// rows carry their sequence number and may land in any order.
type Store interface {
	Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error)
	SaveRoom(ctx context.Context, room storage.MUCRoom) error
	SetAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error
	SetSubject(ctx context.Context, room, subject, nick string) error
	AppendHistory(ctx context.Context, room string, m storage.MUCMessage, keep int) error
	DeleteRoom(ctx context.Context, room string) error
}

// Options are the service's limits ([muc] in the configuration).
type Options struct {
	// Domain is the service's domain, e.g. conference.example.org.
	Domain string
	// MaxRoomsPerUser bounds the existing rooms one user has created.
	MaxRoomsPerUser int
	// MaxOccupants bounds each room's occupants and its maxusers setting.
	MaxOccupants int
	// HistoryLength is the history a new room keeps.
	HistoryLength int
	// MaxHistoryLength bounds the history an owner may configure.
	MaxHistoryLength int
	// MessagesPerSecond is the rate of messages one occupant may send;
	// 0 sets no limit.
	MessagesPerSecond int
	// MessageBurst is how many messages an occupant may send at once (the
	// token bucket's size).
	MessageBurst int
	// Archive keeps the archives of the rooms that archive their messages
	// (muc#roomconfig_enablearchiving): XEP-0313 queries to a room and the
	// XEP-0359 stanza ids of its messages. nil: no room archives, and
	// the configuration form has no such field.
	Archive Archive
}

// storeTimeout bounds one write to the store.
const storeTimeout = 5 * time.Second

// Service is a multi-user chat service on its own domain. It holds every
// room in memory: persistent rooms are loaded by Load and written through
// to the Store as they change.
type Service struct {
	domain    jid.JID          // immutable
	domainStr string           // immutable
	opts      Options          // immutable
	router    *router.Router   // immutable
	store     Store            // immutable; nil keeps nothing
	log       *slog.Logger     // immutable
	now       func() time.Time // immutable

	mu      sync.RWMutex
	rooms   map[string]*room // by localpart; guarded by mu
	created map[string]int   // rooms per creator's bare JID; guarded by mu
	closed  bool             // Shutdown ran; guarded by mu

	// joined maps a session's full JID to the rooms it is in, for
	// sessions that end without the router telling their rooms (one that
	// never sent initial presence). Guarded by jmu, which is taken with a
	// room's mutex held, never the other way round.
	jmu    sync.Mutex
	joined map[string][]*room
}

// New returns the service for opts.Domain, routing through r. store may
// be nil: then no room persists. Call Load before Register.
func New(r *router.Router, store Store, opts Options, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := jid.Parse(opts.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("muc: service domain %q is not a domain", opts.Domain)
	}
	opts.MaxOccupants = max(opts.MaxOccupants, 1)
	opts.MaxHistoryLength = max(opts.MaxHistoryLength, 0)
	opts.HistoryLength = min(max(opts.HistoryLength, 0), opts.MaxHistoryLength)
	opts.MaxRoomsPerUser = max(opts.MaxRoomsPerUser, 1)
	opts.MessageBurst = max(opts.MessageBurst, 1)
	return &Service{
		domain: d, domainStr: d.String(), opts: opts, router: r, store: store, log: log, now: time.Now,
		rooms: map[string]*room{}, created: map[string]int{}, joined: map[string][]*room{},
	}, nil
}

var _ router.StanzaHandler = (*Service)(nil)

// Domain is the service's domain.
func (s *Service) Domain() jid.JID { return s.domain }

// Register makes the service the handler of its domain, lists it in the
// server's disco#items, and removes a session from its rooms when the
// session ends.
func (s *Service) Register(r *router.Registry) {
	r.Domain(s.domainStr, s)
	r.Item(router.Item{JID: s.domainStr, Name: "Chatrooms"})
	r.OnUnbind(s.unbound)
}

// track records that the session real is in r (in) or no longer is.
// Called with r.mu held.
func (s *Service) track(real string, r *room, in bool) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	rooms := s.joined[real]
	if i := slices.Index(rooms, r); i >= 0 {
		rooms = slices.Delete(rooms, i, i+1)
	}
	if in {
		rooms = append(rooms, r)
	}
	if len(rooms) == 0 {
		delete(s.joined, real)
		return
	}
	s.joined[real] = rooms
}

// unbound takes a session whose stream ended out of the rooms it is
// still in. Usually the router has already sent them its unavailable
// presence (directed presence, RFC 6121 §4.6.3) and there is nothing
// left to do.
func (s *Service) unbound(ctx context.Context, sess router.Session) {
	real := sess.JID().String()
	s.jmu.Lock()
	rooms := slices.Clone(s.joined[real])
	s.jmu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		if o := r.byReal[real]; o != nil {
			o.payload = nil
			r.removeWithLocked(o, presInfo{aff: r.affOf(o.bare)})
		}
		r.unlockFlushAndReap(ctx)
	}
}

// Load reads the persistent rooms of the service from the store.
func (s *Service) Load(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	stored, err := s.store.Rooms(ctx, s.domainStr)
	if err != nil {
		return fmt.Errorf("muc: load rooms: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sr := range stored {
		r, err := s.roomFromRecord(sr)
		if err != nil {
			s.log.Warn("skipping stored room", "room", sr.JID, "err", err)
			continue
		}
		s.rooms[r.name] = r
		s.created[r.creator]++
	}
	if len(stored) > 0 {
		s.log.Info("loaded persistent rooms", "rooms", len(s.rooms))
	}
	return nil
}

// Shutdown tells every occupant that the service is going away (status
// 332) and empties the rooms; persistent rooms stay in the store. Later
// joins are refused.
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		for _, o := range r.occupants {
			o.payload = nil
			p := presInfo{typ: "unavailable", aff: r.affOf(o.bare), role: roleNone}
			r.sendLocked(o, router.KindPresence, "unavailable", "", o.jid, r.presenceLocked(o, &p, true, []int{110, 332}))
		}
		r.clearLocked()
		r.unlockAndFlush(ctx)
	}
}

// HandleStanza takes every stanza addressed to the service's domain or a
// JID at it (router.StanzaHandler).
func (s *Service) HandleStanza(ctx context.Context, st *router.Stanza) {
	if st.From.Equal(jid.JID{}) {
		return
	}
	if st.To.Localpart() == "" {
		s.handleService(ctx, st)
		return
	}
	switch st.Kind {
	case router.KindPresence:
		s.handlePresence(ctx, st)
	case router.KindMessage:
		s.handleMessage(ctx, st)
	case router.KindIQ:
		s.handleIQ(ctx, st)
	}
}

// handleService answers what is addressed to the service's own JID.
func (s *Service) handleService(ctx context.Context, st *router.Stanza) {
	if st.Kind != router.KindIQ {
		if st.Kind == router.KindMessage && (st.Type == "" || st.Type == "chat" || st.Type == "normal") {
			s.reply(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, ""))
		}
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return
	}
	switch {
	case st.Type == "get" && st.Payload.Space == NSInfo && st.Payload.Local == "query":
		s.answer(ctx, st, s.serviceInfo)
	case st.Type == "get" && st.Payload.Space == NSItems && st.Payload.Local == "query":
		s.answer(ctx, st, s.serviceItems)
	case st.Type == "get" && st.Payload.Space == NSPing && st.Payload.Local == "ping":
		s.answer(ctx, st, nil)
	default:
		s.reply(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, ""))
	}
}

// answer sends an IQ result built by body (nil for an empty result), or
// the error it returns.
func (s *Service) answer(ctx context.Context, st *router.Stanza, body func(st *router.Stanza, w *xw) error) {
	var w xw
	w.header(router.KindIQ, "result", st.ID, st.To.String())
	if body != nil {
		if err := body(st, &w); err != nil {
			var se stanza.Error
			if !errors.As(err, &se) {
				s.log.Error("answering iq failed", "to", st.To.String(), "err", err)
				se = errText(stanza.Wait, stanza.InternalServerError, "")
			}
			s.reply(ctx, st, se)
			return
		}
	}
	w.close("iq")
	s.route(ctx, &router.Stanza{Kind: router.KindIQ, Type: "result", ID: st.ID, From: st.To, To: st.From, Raw: router.WithTo(w.b, st.From)})
}

// reply answers st with the error e, from st's addressee (RFC 6120 §8.3).
func (s *Service) reply(ctx context.Context, st *router.Stanza, e stanza.Error) {
	if st.Type == "error" {
		return
	}
	tmpl := errorTmpl(st, e, s.byOf(st))
	s.route(ctx, &router.Stanza{Kind: st.Kind, Type: "error", ID: st.ID, From: st.To, To: st.From, Raw: router.WithTo(tmpl, st.From)})
}

// byOf is the by of an error about st: the room, or the service.
func (s *Service) byOf(st *router.Stanza) string {
	if st.To.Localpart() == "" {
		return s.domainStr
	}
	return st.To.Bare().String()
}

func (s *Service) route(ctx context.Context, st *router.Stanza) {
	s.router.Route(context.WithoutCancel(ctx), st)
}

// errorTmpl serialises the error answering st, without a to.
func errorTmpl(st *router.Stanza, e stanza.Error, by string) []byte {
	var w xw
	w.header(st.Kind, "error", st.ID, st.To.String())
	if st.Kind == router.KindPresence {
		w.empty("x", "xmlns", NS)
	}
	w.stanzaError(e, by)
	w.close(st.Kind.String())
	return w.b
}

// lookup returns the room named name, or nil.
func (s *Service) lookup(name string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[name]
}

// errTooManyRooms is returned by createRoom when the creator has reached
// MaxRoomsPerUser.
var errTooManyRooms = errors.New("muc: too many rooms")

// errClosed is returned by createRoom after Shutdown.
var errClosed = errors.New("muc: service shut down")

// createRoom returns the room named name, creating it for creator (a bare
// JID) when there is none; created says which.
func (s *Service) createRoom(name string, roomJID jid.JID, creator string, locked bool) (r *room, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[name]; r != nil {
		return r, false, nil
	}
	if s.closed {
		return nil, false, errClosed
	}
	if s.created[creator] >= s.opts.MaxRoomsPerUser {
		return nil, false, errTooManyRooms
	}
	r = s.newRoom(roomJID, creator, s.now())
	r.locked = locked
	r.affs[creator] = affEntry{aff: affOwner}
	s.rooms[name] = r
	s.created[creator]++
	return r, true, nil
}

// removeRoom forgets r, which its caller has marked destroyed.
func (s *Service) removeRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		if s.created[r.creator]--; s.created[r.creator] <= 0 {
			delete(s.created, r.creator)
		}
	}
}

// publicRooms returns the rooms listed in disco#items, sorted by JID.
func (s *Service) publicRooms() []*room {
	s.mu.RLock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.RUnlock()
	rooms = slices.DeleteFunc(rooms, func(r *room) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.cfg.public || r.locked || r.destroyed
	})
	slices.SortFunc(rooms, func(a, b *room) int { return strings.Compare(a.jidStr, b.jidStr) })
	return rooms
}

// storeCtx is the context of a write to the store: not cancelled with the
// session that caused it, but bounded.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}
