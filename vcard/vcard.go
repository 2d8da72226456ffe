package vcard

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/internal/echoguard"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Namespaces.
const (
	NS               = "vcard-temp"
	NSUpdate         = "vcard-temp:x:update"             // XEP-0153
	NSConversion     = "urn:xmpp:pep-vcard-conversion:0" // XEP-0398
	NSAvatarData     = "urn:xmpp:avatar:data"            // XEP-0084
	NSAvatarMetadata = "urn:xmpp:avatar:metadata"        // XEP-0084
	NSNick           = "http://jabber.org/protocol/nick" // XEP-0172
)

// DefaultMaxBytes is the default bound of one vCard as stored: a 96 KiB
// image in base64 and the rest of the card, within the default 256 KiB
// stanza limit (Prosody and ejabberd bound vCards by their stanza limits
// alone, 256 KiB by default), against XEP-0153's advice of 8 KB images
// that today's clients exceed (192 px JPEGs and PNGs of 10–60 KB).
const DefaultMaxBytes = 128 << 10

// photoExternal is the photo value of a vCard whose PHOTO is only an
// EXTVAL URL; "" means no photo; any other value is the SHA-1 of the
// BINVAL bytes in lower-case hex.
const photoExternal = "-"

// Store is what vcard needs from storage; *storage.VCards implements it.
type Store interface {
	Get(ctx context.Context, user string) (vcard []byte, photo string, ok bool, err error)
	Photo(ctx context.Context, user string) (photo string, ok bool, err error)
	Set(ctx context.Context, user string, vcard []byte, photo string) error
	// WithPhoto lists the accounts whose vCard has a photo value.
	WithPhoto(ctx context.Context) ([]string, error)
}

// PEP is the account's PEP service, for keeping the vCard photo and
// nickname in step with the XEP-0084 avatar and the XEP-0172 nickname.
// Items returns a node's items oldest first (the last is the current one).
type PEP interface {
	Publish(ctx context.Context, owner jid.JID, node, id string, payload []byte, opts map[string]string) (string, error)
	Items(ctx context.Context, owner jid.JID, node string) (ids []string, payloads [][]byte, err error)
}

// Options configure the service.
type Options struct {
	// MaxBytes bounds one vCard as stored; 0 means DefaultMaxBytes.
	MaxBytes int
	// PEP, when set, keeps the vCard and PEP in step (see the package
	// documentation); Register then advertises NSConversion.
	PEP PEP
}

// Service is the vCard feature.
type Service struct {
	store    Store
	router   *router.Router
	opts     Options
	log      *slog.Logger
	storeLog *burstlog.Logger

	// write serialises changes of vCards, so that storage and the cache
	// see them in one order. It is never held while PEP is called.
	write sync.Mutex

	mu     sync.Mutex
	photos map[string]string // bare JID → photo value, for accounts online; guarded by mu
	// withPhoto holds the accounts whose vCard has a photo value, learnt
	// by Start and kept by every set (this assumes one server per
	// database, as offline storage does); nil before Start, when every
	// account's photo is read. Guarded by mu.
	withPhoto map[string]struct{}

	// echo marks the accounts whose PEP avatar or nickname this service
	// is publishing: SyncFromPEP ignores what those publishes cause.
	echo echoguard.Guard
}

// New returns the vCard service.
func New(store Store, r *router.Router, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	s := &Service{store: store, router: r, opts: opts, log: log,
		storeLog: burstlog.New(log, "vcard: storage failed", time.Minute),
		photos:   map[string]string{}}
	return s
}

// Start learns which accounts have a vCard photo, so that the first
// presence of an account without one (at every login of it) reads
// nothing from storage.
func (s *Service) Start(ctx context.Context) error {
	users, err := s.store.WithPhoto(ctx)
	if err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	set := make(map[string]struct{}, len(users))
	for _, u := range users {
		set[u] = struct{}{}
	}
	s.mu.Lock()
	s.withPhoto = set
	s.mu.Unlock()
	return nil
}

// Register hooks the service into the router.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS)
	r.AccountFeature(NS)
	if s.opts.PEP != nil {
		r.AccountFeature(NSConversion)
	}
	name := xml.Name{Space: NS, Local: "vCard"}
	r.IQFunc(stanza.GetIQ, router.ToSelf, name, s.getOwn)
	r.IQFunc(stanza.GetIQ, router.ToBare, name, s.getOther)
	r.IQFunc(stanza.SetIQ, router.ToSelf, name, s.set)
	r.IQFunc(stanza.SetIQ, router.ToBare, name, func(context.Context, *router.Stanza) (xml.TokenReader, error) {
		return nil, router.ErrorText(stanza.Auth, stanza.Forbidden, "only the owner sets a vCard")
	})
	r.BroadcastPresence(s.presence)
	// A room's occupants show avatars from the hash in the join presence
	// (XEP-0398 §4 asks for it in directed presence too).
	r.DirectedPresence(s.directedPresence)
	r.OnUnavailable(s.offline)
	r.OnUnbind(s.offline)
}

var vcardStart = xml.StartElement{Name: xml.Name{Space: NS, Local: "vCard"}}

// emptyVCard is the answer for an owner who never set one.
func emptyVCard() xml.TokenReader { return xmlstream.Wrap(nil, vcardStart) }

// stored returns a stored element as a payload.
func stored(b []byte) xml.TokenReader { return xml.NewDecoder(bytes.NewReader(b)) }

func (s *Service) getOwn(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	v, _, ok, err := s.store.Get(ctx, iq.From.Bare().String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return emptyVCard(), nil
	}
	return stored(v), nil
}

func (s *Service) getOther(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	v, _, ok, err := s.store.Get(ctx, iq.To.Bare().String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, router.ErrorText(stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	return stored(v), nil
}

// card is what the service reads from a vCard element.
type card struct {
	raw     []byte // the element, serialised with its namespace declared
	photo   string // photo value (see photoExternal)
	typ     string // PHOTO TYPE
	image   []byte // PHOTO BINVAL decoded
	nick    string // NICKNAME
	hasNick bool
}

var errTooBig = errors.New("vcard: too big")

// parseCard reads the vCard element from r (positioned before it), at
// most max bytes serialised. It fails with errTooBig, or with a
// stanza.Error for a BINVAL that is not base64.
func parseCard(r xml.TokenReader, max int) (card, error) {
	var c card
	enc := xmlenc.Encoder{Default: "jabber:client"}
	var path [3]string // element names at depth 1..3 inside the vCard
	depth := -1        // 0 inside the vCard element itself
	photos := 0
	var binval, extval strings.Builder
	var text strings.Builder
	for {
		tok, err := r.Token()
		if tok == nil {
			if err == nil {
				continue
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return c, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth >= 1 && depth <= 3 {
				path[depth-1] = t.Name.Local
				if t.Name.Space != NS {
					path[depth-1] = ""
				}
			}
			if depth == 1 && path[0] == "PHOTO" {
				photos++
			}
			text.Reset()
		case xml.EndElement:
			switch {
			case depth == 1 && path[0] == "NICKNAME" && !c.hasNick:
				c.nick, c.hasNick = strings.TrimSpace(text.String()), true
			case depth == 2 && path[0] == "PHOTO" && photos == 1 && path[1] == "TYPE":
				c.typ = strings.TrimSpace(text.String())
			}
			depth--
		case xml.CharData:
			if depth == 2 && path[0] == "PHOTO" && photos == 1 {
				switch path[1] {
				case "BINVAL":
					binval.Write(t)
				case "EXTVAL":
					extval.Write(t)
				}
			}
			text.Write(t)
		}
		if err := enc.EncodeToken(tok); err != nil {
			return c, err
		}
		if len(enc.Buf) > max {
			return c, errTooBig
		}
		if depth < 0 {
			break
		}
	}
	c.raw = enc.Buf
	if b := binval.String(); strings.TrimSpace(b) != "" {
		img, err := decodeBase64(b)
		if err != nil {
			return c, router.ErrorText(stanza.Modify, stanza.BadRequest, "PHOTO BINVAL is not base64")
		}
		c.image = img
		c.photo = photoHash(img)
	} else if strings.TrimSpace(extval.String()) != "" {
		c.photo = photoExternal
	}
	return c, nil
}

// decodeBase64 decodes s ignoring whitespace (XEP-0153 §4.6), padded or
// not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	return b, err
}

// photoHash is the XEP-0153 hash of an image: SHA-1, lower-case hex.
func photoHash(img []byte) string {
	h := sha1.Sum(img)
	return hex.EncodeToString(h[:])
}

// payloadOf returns a reader positioned before the payload of an IQ.
func payloadOf(iq *router.Stanza) (xml.TokenReader, error) {
	d := iq.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 1 {
				return xmlstream.MultiReader(xmlstream.Token(xml.CopyToken(tok)), d), nil
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

func (s *Service) tooBig() error {
	return router.ErrorText(stanza.Modify, stanza.NotAcceptable, "vCard exceeds "+strconv.Itoa(s.opts.MaxBytes)+" bytes")
}

func (s *Service) set(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	r, err := payloadOf(iq)
	if err != nil {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
	}
	c, err := parseCard(r, s.opts.MaxBytes)
	switch {
	case errors.Is(err, errTooBig):
		return nil, s.tooBig()
	case err != nil:
		var se stanza.Error
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
	}
	owner := iq.From.Bare()
	old, changed, err := s.store1(ctx, owner, c)
	if err != nil {
		return nil, err
	}
	if changed {
		s.rebroadcast(ctx, owner)
	}
	if p := s.opts.PEP; p != nil {
		s.publish(ctx, p, owner, old, c)
	}
	return nil, nil
}

// store1 stores c as owner's vCard and caches its photo. It returns what
// it replaced and whether the photo changed.
func (s *Service) store1(ctx context.Context, owner jid.JID, c card) (old card, photoChanged bool, err error) {
	key := owner.String()
	s.write.Lock()
	defer s.write.Unlock()
	if s.opts.PEP != nil {
		// The old nickname and photo decide what is published.
		if raw, _, ok, err := s.store.Get(ctx, key); err != nil {
			return old, false, err
		} else if ok {
			old, _ = parseCard(xml.NewDecoder(bytes.NewReader(raw)), 1<<30)
		}
	}
	prev, known := s.cached(key)
	if !known {
		p, _, err := s.store.Photo(ctx, key)
		if err != nil {
			return old, false, err
		}
		prev = p
	}
	if err := s.store.Set(ctx, key, c.raw, c.photo); err != nil {
		return old, false, err
	}
	// Cached even while the account has no available resource: the
	// setter's session is bound, and OnUnbind forgets it.
	s.mu.Lock()
	s.photos[key] = c.photo
	s.notePhoto(key, c.photo)
	s.mu.Unlock()
	return old, prev != c.photo, nil
}

// notePhoto records in withPhoto whether key's stored vCard has a photo
// now. The caller holds mu.
func (s *Service) notePhoto(key, photo string) {
	if s.withPhoto == nil {
		return
	}
	if photo != "" {
		s.withPhoto[key] = struct{}{}
	} else {
		delete(s.withPhoto, key)
	}
}

func (s *Service) cached(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.photos[key]
	return p, ok
}

// photoOf returns the photo value of bare's vCard, reading it once while
// the account is online; ok is false when storage failed.
func (s *Service) photoOf(ctx context.Context, key string) (string, bool) {
	s.mu.Lock()
	if p, ok := s.photos[key]; ok {
		s.mu.Unlock()
		return p, true
	}
	if _, has := s.withPhoto[key]; s.withPhoto != nil && !has {
		// No photo: nothing to read. Cached like a read one, so that a
		// later change (a set, a PEP avatar) finds the account online.
		s.photos[key] = ""
		s.mu.Unlock()
		return "", true
	}
	s.mu.Unlock()
	p, _, err := s.store.Photo(ctx, key)
	if err != nil {
		s.storeLog.Fail(err, "user", key)
		return "", false
	}
	s.storeLog.OK()
	s.mu.Lock()
	defer s.mu.Unlock()
	// A set that ran meanwhile cached what it stored: it wins.
	if cur, ok := s.photos[key]; ok {
		return cur, true
	}
	s.photos[key] = p
	return p, true
}

// offline forgets the photo of an account left without an available
// resource.
func (s *Service) offline(ctx context.Context, sess router.Session) {
	bare := sess.JID().Bare()
	if len(s.router.AvailableResources(bare)) > 0 {
		return
	}
	s.mu.Lock()
	delete(s.photos, bare.String())
	s.mu.Unlock()
}

// presence is the BroadcastPresence hook.
func (s *Service) presence(ctx context.Context, p *router.Stanza) (*router.Stanza, router.Result) {
	photo, ok := s.photoOf(ctx, p.From.Bare().String())
	if !ok || photo == photoExternal {
		return p, router.Continue
	}
	raw, changed := rewritePresence(p.Raw, photo, false)
	if !changed {
		return p, router.Continue
	}
	cp := *p
	cp.Raw = raw
	return &cp, router.Continue
}

// directedPresence is the DirectedPresence hook: the photo hash goes into
// a presence to one JID (a room join) only when the account has a photo,
// so that rooms and peers see nothing new from accounts without one.
func (s *Service) directedPresence(ctx context.Context, p *router.Stanza) (*router.Stanza, router.Result) {
	if photo, ok := s.photoOf(ctx, p.From.Bare().String()); !ok || photo == "" {
		return p, router.Continue
	}
	return s.presence(ctx, p)
}

// rebroadcast sends the available presence of each of owner's resources
// again, through the broadcast hooks, with the new photo (the server's
// knowledge is newer than an empty <photo/> the presence may hold). A
// resource that changes its presence at the same moment may see the older
// one win; its next presence corrects it.
func (s *Service) rebroadcast(ctx context.Context, owner jid.JID) {
	photo, ok := s.cached(owner.String())
	if !ok || photo == photoExternal {
		return
	}
	for _, raw := range s.router.Presences(owner) {
		raw, _ = rewritePresence(raw, photo, true)
		st, err := router.Parse(raw)
		if err != nil || st.Kind != router.KindPresence {
			continue
		}
		s.router.FromClient(ctx, st)
	}
}

// Parse reads raw, a serialised <vCard xmlns='vcard-temp'/>, as the
// service reads one it is given to store, at most max bytes serialised:
// it returns the element as the service stores it (serialised again, its
// namespace declared) and its photo value. Imports (package migration)
// store vCards with it, so that what they write is what a vCard set over
// XMPP would have written.
func Parse(raw []byte, max int) (stored []byte, photo string, err error) {
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimSpace(raw)))
	c, err := parseCard(d, max)
	if err != nil {
		return nil, "", fmt.Errorf("vcard: %w", err)
	}
	return c.raw, c.photo, nil
}
