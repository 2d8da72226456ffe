package private

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"
)

// pushToPEP brings both PEP bookmark nodes of owner into step with
// storage (a XEP-0048 <storage/>): the XEP-0402 items that differ are
// published, those of rooms no longer there retracted, and the XEP-0048
// node's item replaced when it says something else.
func (s *Service) pushToPEP(ctx context.Context, p PEP, owner jid.JID, storage []byte) error {
	if err := s.pushItems(ctx, p, owner, storage); err != nil {
		return err
	}
	return s.pushLegacy(ctx, p, owner, storage)
}

func (s *Service) pushItems(ctx context.Context, p PEP, owner jid.JID, storage []byte) error {
	next, _, err := ParseStorage(storage)
	if err != nil {
		return err
	}
	ids, payloads, err := p.Items(ctx, owner, NSBookmarks2)
	if err != nil {
		return fmt.Errorf("private: bookmarks of %s: %w", owner, err)
	}
	publish, retract := Diff(ParseItems(ids, payloads), next)
	if len(publish) == 0 && len(retract) == 0 {
		return nil
	}
	key := owner.String()
	defer s.echo.Begin(key)()
	for _, b := range publish {
		if _, err := p.Publish(ctx, owner, NSBookmarks2, b.JID, ConferenceXML(b), Bookmarks2Options()); err != nil {
			return fmt.Errorf("private: publish bookmark %s of %s: %w", b.JID, owner, err)
		}
	}
	for _, id := range retract {
		if err := p.Retract(ctx, owner, NSBookmarks2, id); err != nil {
			return fmt.Errorf("private: retract bookmark %s of %s: %w", id, owner, err)
		}
	}
	return nil
}

func (s *Service) pushLegacy(ctx context.Context, p PEP, owner jid.JID, storage []byte) error {
	ids, payloads, err := p.Items(ctx, owner, NSBookmarks)
	if err != nil {
		return fmt.Errorf("private: legacy bookmarks of %s: %w", owner, err)
	}
	if n := len(ids); n > 0 && n <= len(payloads) && sameStorage(payloads[n-1], storage) {
		return nil
	}
	key := owner.String()
	defer s.echo.Begin(key)()
	if _, err := p.Publish(ctx, owner, NSBookmarks, LegacyItem, storage, LegacyOptions()); err != nil {
		return fmt.Errorf("private: publish legacy bookmarks of %s: %w", owner, err)
	}
	return nil
}

// SyncFromPEP brings owner's private bookmarks and the other PEP bookmark
// node into step after a change to node: urn:xmpp:bookmarks:1 (XEP-0402)
// or storage:bookmarks (XEP-0048's PEP node); other nodes are ignored. The
// PEP service calls it once the change is stored, holding none of its
// locks (this calls Items, Publish and Retract). It does nothing while the
// change is this service's own write, and writes nothing that is already
// so.
func (s *Service) SyncFromPEP(ctx context.Context, owner jid.JID, node string) error {
	p := s.opts.PEP
	owner = owner.Bare()
	key := owner.String()
	if p == nil || (node != NSBookmarks2 && node != NSBookmarks) || s.echo.Active(key) {
		return nil
	}
	old, _, err := s.store.Get(ctx, key, NSBookmarks)
	if err != nil {
		return err
	}
	var storage []byte
	switch node {
	case NSBookmarks2:
		ids, payloads, err := p.Items(ctx, owner, NSBookmarks2)
		if err != nil {
			return fmt.Errorf("private: bookmarks of %s: %w", key, err)
		}
		storage = ItemsToStorage(ids, payloads, old)
	case NSBookmarks:
		ids, payloads, err := p.Items(ctx, owner, NSBookmarks)
		if err != nil {
			return fmt.Errorf("private: legacy bookmarks of %s: %w", key, err)
		}
		if len(ids) == 0 || len(payloads) < len(ids) {
			storage = StorageXML(nil, nil)
		} else if _, _, err := ParseStorage(payloads[len(ids)-1]); err == nil {
			storage = payloads[len(ids)-1]
		} else {
			return nil // not bookmarks: nothing to copy
		}
	}
	if len(storage) > s.opts.MaxBytes {
		s.log.Warn("private: bookmarks from PEP not copied: over max_bytes", "user", key, "bytes", len(storage))
		return nil
	}
	if old == nil || !sameStorage(old, storage) {
		if err := s.put(ctx, owner, map[string][]byte{NSBookmarks: storage}); err != nil {
			return err
		}
	}
	if node == NSBookmarks2 {
		return s.pushLegacy(ctx, p, owner, storage)
	}
	return s.pushItems(ctx, p, owner, storage)
}
