package private

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/echoguard"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// NS is the namespace of XEP-0049.
const NS = "jabber:iq:private"

// Defaults of Options.
const (
	DefaultMaxBytes = 64 << 10
	DefaultMaxItems = 100
)

// reserved are the namespaces a set or get may not name (§2.3).
var reserved = []string{"jabber:client", "jabber:server", NS, ""}

// Store is what private needs from storage; *storage.PrivateXML
// implements it.
type Store interface {
	Get(ctx context.Context, user, ns string) (data []byte, ok bool, err error)
	Namespaces(ctx context.Context, user string) ([]string, error)
	Set(ctx context.Context, user string, items map[string][]byte) error
}

// PEP is the account's PEP service, for keeping bookmarks (XEP-0402
// #compat, XEP-0048 #compat-pep) in step. Items of a node that does not
// exist are none, without an error.
type PEP interface {
	Publish(ctx context.Context, owner jid.JID, node, id string, payload []byte, opts map[string]string) (string, error)
	Items(ctx context.Context, owner jid.JID, node string) (ids []string, payloads [][]byte, err error)
	Retract(ctx context.Context, owner jid.JID, node, id string) error
}

// Options configure the service.
type Options struct {
	MaxBytes int // per account and namespace; 0 means DefaultMaxBytes
	MaxItems int // namespaces per account; 0 means DefaultMaxItems
	PEP      PEP // keeps bookmarks in step with PEP; nil until wired
}

// Service is the private XML storage feature.
type Service struct {
	store Store
	opts  Options
	log   *slog.Logger

	// write serialises sets, so that the namespace count holds (one
	// server per database, as elsewhere). Never held while PEP is called.
	write sync.Mutex

	// echo marks the accounts whose PEP bookmarks this service is
	// writing: SyncFromPEP ignores what those writes cause.
	echo echoguard.Guard
}

// New returns the private XML service.
func New(store Store, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = DefaultMaxItems
	}
	s := &Service{store: store, opts: opts, log: log}
	return s
}

// Register hooks the service into the router.
func (s *Service) Register(r *router.Registry) {
	r.Feature(NS)
	r.AccountFeature(NS)
	if s.opts.PEP != nil {
		r.AccountFeature(FeatureCompat)
		r.AccountFeature(FeatureCompatPEP)
	}
	q := xml.Name{Space: NS, Local: "query"}
	r.IQFunc(stanza.GetIQ, router.ToSelf, q, s.get)
	r.IQFunc(stanza.SetIQ, router.ToSelf, q, s.set)
	forbidden := func(context.Context, *router.Stanza) (xml.TokenReader, error) {
		return nil, router.ErrorText(stanza.Auth, stanza.Forbidden, "private XML is its owner's only")
	}
	r.IQFunc(stanza.GetIQ, router.ToBare, q, forbidden)
	r.IQFunc(stanza.SetIQ, router.ToBare, q, forbidden)
}

// child is one child of the query.
type child struct {
	name xml.Name
	raw  []byte // serialised, its namespace declared
}

// children reads the query's children, each at most max bytes (0: no
// bound) serialised.
func children(iq *router.Stanza, max int) ([]child, error) {
	d := iq.Decoder()
	depth := 0
	var out []child
	for {
		tok, err := d.Token()
		if err != nil {
			return out, nil // the stanza was checked by c2s: EOF after </iq>
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth < 3 {
				continue
			}
			enc := xmlenc.Encoder{Default: NS}
			enc.EncodeToken(t)
			for enc.Depth() > 0 {
				tok, err := d.Token()
				if err != nil {
					return nil, err
				}
				if err := enc.EncodeToken(tok); err != nil {
					return nil, err
				}
				if max > 0 && len(enc.Buf) > max {
					return nil, errTooBig
				}
			}
			depth--
			out = append(out, child{name: t.Name, raw: enc.Buf})
		case xml.EndElement:
			depth--
		}
	}
}

type tooBigError struct{}

func (tooBigError) Error() string { return "private: too big" }

var errTooBig error = tooBigError{}

func notAcceptable(text string) error {
	return router.ErrorText(stanza.Modify, stanza.NotAcceptable, text)
}

func (s *Service) tooBig() error {
	return notAcceptable("private XML exceeds " + strconv.Itoa(s.opts.MaxBytes) + " bytes per namespace")
}

// check refuses a query without children or with a reserved namespace.
func check(cs []child) error {
	if len(cs) == 0 {
		return notAcceptable("the query needs a child element")
	}
	for _, c := range cs {
		if slices.Contains(reserved, c.name.Space) {
			return notAcceptable("namespace " + strconv.Quote(c.name.Space) + " is reserved")
		}
	}
	return nil
}

func (s *Service) get(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	cs, err := children(iq, 0)
	if err != nil {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
	}
	if err := check(cs); err != nil {
		return nil, err
	}
	owner := iq.From.Bare()
	var out []byte
	done := map[string]bool{}
	for _, c := range cs {
		if done[c.name.Space] {
			continue
		}
		// Each namespace is a read: no more than an account may store.
		if len(done) == s.opts.MaxItems {
			return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable,
				"at most "+strconv.Itoa(s.opts.MaxItems)+" namespaces in one request")
		}
		done[c.name.Space] = true
		data, ok, err := s.load(ctx, owner, c.name.Space)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Nothing stored: the element asked for, empty (§2.3).
			data = []byte("<" + c.name.Local)
			data = xmlenc.AppendAttr(data, "xmlns", c.name.Space)
			data = append(data, "/>"...)
		}
		out = append(out, data...)
	}
	return xmlstream.Wrap(xml.NewDecoder(bytes.NewReader(out)), xml.StartElement{Name: xml.Name{Space: NS, Local: "query"}}), nil
}

// load returns what owner stored under ns; bookmarks come from PEP when
// its XEP-0402 node has any.
func (s *Service) load(ctx context.Context, owner jid.JID, ns string) ([]byte, bool, error) {
	data, ok, err := s.store.Get(ctx, owner.String(), ns)
	if err != nil || ns != NSBookmarks {
		return data, ok, err
	}
	p := s.opts.PEP
	if p == nil {
		return data, ok, nil
	}
	ids, payloads, err := p.Items(ctx, owner, NSBookmarks2)
	if err != nil {
		s.log.Warn("private: reading bookmarks from PEP failed; answering the stored copy", "user", owner.String(), "err", err)
		return data, ok, nil
	}
	if len(ids) == 0 {
		return data, ok, nil
	}
	return ItemsToStorage(ids, payloads, data), true, nil
}

func (s *Service) set(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	cs, err := children(iq, s.opts.MaxBytes)
	switch {
	case err == errTooBig:
		return nil, s.tooBig()
	case err != nil:
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
	}
	if err := check(cs); err != nil {
		return nil, err
	}
	items := map[string][]byte{}
	for _, c := range cs {
		items[c.name.Space] = append(items[c.name.Space], c.raw...)
		if len(items[c.name.Space]) > s.opts.MaxBytes {
			return nil, s.tooBig()
		}
	}
	owner := iq.From.Bare()
	if err := s.put(ctx, owner, items); err != nil {
		return nil, err
	}
	if b, ok := items[NSBookmarks]; ok {
		if p := s.opts.PEP; p != nil {
			if err := s.pushToPEP(ctx, p, owner, b); err != nil {
				// Stored here already; the next set or sync tries again.
				s.log.Warn("private: publishing bookmarks to PEP failed", "user", owner.String(), "err", err)
			}
		}
	}
	return nil, nil
}

// put stores items for owner within the namespace limit.
func (s *Service) put(ctx context.Context, owner jid.JID, items map[string][]byte) error {
	key := owner.String()
	s.write.Lock()
	defer s.write.Unlock()
	have, err := s.store.Namespaces(ctx, key)
	if err != nil {
		return err
	}
	n := len(have)
	for ns := range items {
		if !slices.Contains(have, ns) {
			n++
		}
	}
	if n > s.opts.MaxItems {
		return router.ErrorText(stanza.Cancel, stanza.NotAllowed, fmt.Sprintf("private XML is kept under at most %d namespaces", s.opts.MaxItems))
	}
	return s.store.Set(ctx, key, items)
}
