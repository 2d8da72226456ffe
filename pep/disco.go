package pep

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// discoNodes answers the disco queries about an account's nodes
// (router.AccountNodes): XEP-0060 §5.2–§5.5, limited to what the
// requester may read.
type discoNodes struct{ s *Service }

// NodeInfo answers disco#info on a node: a leaf of the pubsub service.
func (dn discoNodes) NodeInfo(ctx context.Context, iq *router.Stanza, node string) (xml.TokenReader, error) {
	if _, err := dn.s.visibleNode(ctx, iq, node); err != nil {
		return nil, err
	}
	id := xmlstream.Wrap(nil, xml.StartElement{Name: xmlName(nsInfo, "identity"), Attr: []xml.Attr{
		{Name: xml.Name{Local: "category"}, Value: "pubsub"}, {Name: xml.Name{Local: "type"}, Value: "leaf"}}})
	feat := xmlstream.Wrap(nil, xml.StartElement{Name: xmlName(nsInfo, "feature"), Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: NS}}})
	return xmlstream.Wrap(xmlstream.MultiReader(id, feat), nodeStart(nsInfo, "query", node)), nil
}

// Items answers disco#items: without a node, the nodes the requester
// may read; with one, its item ids.
func (dn discoNodes) Items(ctx context.Context, iq *router.Stanza, node string) (xml.TokenReader, error) {
	s := dn.s
	o, _ := owner(iq)
	item := func(attrs ...xml.Attr) xml.TokenReader {
		return xmlstream.Wrap(nil, xml.StartElement{Name: xmlName(nsItems, "item"),
			Attr: append([]xml.Attr{{Name: xml.Name{Local: "jid"}, Value: o.String()}}, attrs...)})
	}
	var children []xml.TokenReader
	if node == "" {
		nodes, err := s.store.Nodes(ctx, o.String())
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			err := s.access(ctx, o, iq.From.Bare(), n)
			var denied router.AppError
			switch {
			case errors.As(err, &denied):
				continue
			case err != nil:
				return nil, err
			}
			attrs := []xml.Attr{{Name: xml.Name{Local: "node"}, Value: n.Node}}
			if n.Title != "" {
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: n.Title})
			}
			children = append(children, item(attrs...))
		}
		return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xmlName(nsItems, "query")}), nil
	}
	if _, err := s.visibleNode(ctx, iq, node); err != nil {
		return nil, err
	}
	items, err := s.store.Items(ctx, o.String(), node, nil, 0)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		children = append(children, item(xml.Attr{Name: xml.Name{Local: "name"}, Value: it.ID}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), nodeStart(nsItems, "query", node)), nil
}

// visibleNode returns nil when node exists and the requester may read
// it, item-not-found otherwise (a node one may not read is not shown to
// exist), or a storage failure.
func (s *Service) visibleNode(ctx context.Context, iq *router.Stanza, node string) (bool, error) {
	o, _ := owner(iq)
	n, ok, err := s.store.Node(ctx, o.String(), node)
	if err != nil {
		return false, err
	}
	notFound := router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	if !ok {
		return false, notFound
	}
	err = s.access(ctx, o, iq.From.Bare(), n)
	var denied router.AppError
	switch {
	case errors.As(err, &denied):
		return false, notFound
	case err != nil:
		return false, err
	}
	return true, nil
}
