package mam

import (
	"context"
	"encoding/xml"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Preference modes (XEP-0313 §6.1).
const (
	modeAlways = "always"
	modeRoster = "roster"
	modeNever  = "never"
)

// prefs is one user's archiving preferences. Immutable once cached.
type prefs struct {
	def    string
	always []string // bare JIDs, normalised
	never  []string
}

// prefsCache holds the preferences of the users who set any: few users
// do, and the message path must not ask the database. Everyone else has
// the configured default. The map is replaced, never changed, so the
// message path reads it without a lock.
type prefsCache struct {
	write sync.Mutex // serialises setPrefs: storage, then the cache
	mu    sync.Mutex // serialises writers of m
	m     atomic.Pointer[map[string]*prefs]
}

func (c *prefsCache) init() { c.m.Store(&map[string]*prefs{}) }

func (c *prefsCache) load(all []storage.ArchivePrefs) {
	m := make(map[string]*prefs, len(all))
	for _, p := range all {
		m[p.Owner] = &prefs{def: p.Default, always: p.Always, never: p.Never}
	}
	c.m.Store(&m)
}

func (c *prefsCache) get(owner string) *prefs { return (*c.m.Load())[owner] }

func (c *prefsCache) set(owner string, p *prefs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	m := make(map[string]*prefs, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[owner] = p
	c.m.Store(&m)
}

// wants says whether owner's archive (ownerStr is owner.String(), which
// the caller needs too) keeps a message exchanged with
// contact. never wins over always (§6.1); the roster mode asks the
// roster whether contact is in it (with a subscription either way).
func (s *Service) wants(ctx context.Context, owner jid.JID, ownerStr string, contact jid.JID) bool {
	def := s.opts.Default
	p := s.prefs.get(ownerStr)
	if p != nil {
		bare := contact.Bare().String()
		if slices.Contains(p.never, bare) {
			return false
		}
		if slices.Contains(p.always, bare) {
			return true
		}
		def = p.def
	}
	switch def {
	case modeAlways:
		return true
	case modeRoster:
		return s.router.InRoster(ctx, owner, contact)
	}
	return false
}

// current returns owner's preferences, the default when none are set.
func (s *Service) current(owner string) *prefs {
	if p := s.prefs.get(owner); p != nil {
		return p
	}
	return &prefs{def: s.opts.Default}
}

func (s *Service) getPrefs(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	return prefsPayload(s.current(iq.From.Bare().String())), nil
}

func (s *Service) setPrefs(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	p, err := parsePrefs(iq)
	if err != nil {
		return nil, err
	}
	owner := iq.From.Bare().String()
	// One change at a time, so that the cache ends as the database does
	// when two of the user's clients set preferences at once.
	s.prefs.write.Lock()
	defer s.prefs.write.Unlock()
	if err := s.store.SetPrefs(ctx, storage.ArchivePrefs{Owner: owner, Default: p.def, Always: p.always, Never: p.never}); err != nil {
		return nil, err // answered wait/internal-server-error by the router
	}
	s.prefs.set(owner, p)
	return prefsPayload(p), nil
}

// parsePrefs reads <prefs default><always><jid/>…</always><never>…</never></prefs>.
func parsePrefs(iq *router.Stanza) (*prefs, error) {
	d := iq.Decoder()
	p := &prefs{}
	depth := 0
	var list *[]string
	inJID := false
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed prefs")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				for _, a := range t.Attr {
					if a.Name.Local == "default" && a.Name.Space == "" {
						p.def = a.Value
					}
				}
				if p.def != modeAlways && p.def != modeRoster && p.def != modeNever {
					return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "default must be always, roster or never")
				}
			case depth == 3 && t.Name == xml.Name{Space: NS, Local: "always"}:
				list = &p.always
			case depth == 3 && t.Name == xml.Name{Space: NS, Local: "never"}:
				list = &p.never
			case depth == 3:
				list = nil
			case depth == 4 && list != nil && t.Name == xml.Name{Space: NS, Local: "jid"}:
				inJID, text = true, text[:0]
			}
		case xml.CharData:
			if inJID {
				text = append(text, t...)
			}
		case xml.EndElement:
			if inJID && depth == 4 {
				j, err := jid.Parse(string(text))
				if err != nil {
					return nil, router.ErrorText(stanza.Modify, stanza.JIDMalformed, "")
				}
				if b := j.Bare().String(); !slices.Contains(*list, b) {
					if len(p.always)+len(p.never) >= maxPrefsJIDs {
						return nil, router.ErrorText(stanza.Modify, stanza.NotAcceptable, "too many JIDs in the preferences")
					}
					*list = append(*list, b)
				}
				inJID = false
			}
			depth--
			if depth == 0 {
				return p, nil
			}
		}
	}
}

// maxPrefsJIDs bounds the always and never lists together.
const maxPrefsJIDs = 1000

func prefsPayload(p *prefs) xml.TokenReader {
	list := func(name string, jids []string) xml.TokenReader {
		items := make([]xml.TokenReader, 0, len(jids))
		for _, j := range jids {
			items = append(items, xmlstream.Wrap(xmlstream.Token(xml.CharData(j)), xml.StartElement{Name: xml.Name{Local: "jid"}}))
		}
		return xmlstream.Wrap(xmlstream.MultiReader(items...), xml.StartElement{Name: xml.Name{Local: name}})
	}
	return xmlstream.Wrap(
		xmlstream.MultiReader(list("always", p.always), list("never", p.never)),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "prefs"}, Attr: []xml.Attr{{Name: xml.Name{Local: "default"}, Value: p.def}}},
	)
}
