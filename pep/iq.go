package pep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strconv"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// request is a pubsub or pubsub#owner request as parsed.
type request struct {
	op       string // the verb: publish, items, retract, create, configure, default, delete, purge, …
	node     string
	items    []reqItem
	maxItems int    // items: max_items, 0 for all
	notify   string // retract: the notify attribute
	form     *form  // publish-options, or a configure form
}

// reqItem is an <item/> of a request: its id and, in a publish, its
// payload elements serialised.
type reqItem struct {
	id       string
	payloads [][]byte
}

var errMalformed = errors.New("pep: malformed request")

// parse reads the <pubsub/> payload of iq, in namespace ns.
func parse(iq *router.Stanza, ns string) (request, error) {
	var req request
	d := iq.Decoder()
	// Down to the payload.
	for depth := 0; depth < 2; {
		tok, err := d.Token()
		if err != nil {
			return req, errMalformed
		}
		if _, ok := tok.(xml.StartElement); ok {
			depth++
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return req, errMalformed
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if req.op == "" {
				return req, errMalformed
			}
			return req, nil
		case xml.StartElement:
			if err := req.child(d, t, ns); err != nil {
				return req, err
			}
		}
	}
}

// child reads one child of <pubsub/>.
func (req *request) child(d *xml.Decoder, t xml.StartElement, ns string) error {
	if t.Name.Space != ns {
		return d.Skip()
	}
	switch t.Name.Local {
	case "publish-options", "options":
		var wrap struct {
			Form *form `xml:"jabber:x:data x"`
		}
		if err := d.DecodeElement(&wrap, &t); err != nil {
			return errMalformed
		}
		if t.Name.Local == "options" {
			return req.setOp("options", attr(t, "node"))
		}
		req.form = wrap.Form
		if req.form == nil {
			req.form = &form{}
		}
		return nil
	case "configure":
		var wrap struct {
			Form *form `xml:"jabber:x:data x"`
		}
		if err := d.DecodeElement(&wrap, &t); err != nil {
			return errMalformed
		}
		req.form = wrap.Form
		if ns == NS {
			return nil // the options of a <create/> beside it
		}
		return req.setOp("configure", attr(t, "node"))
	case "publish":
		if err := req.setOp("publish", attr(t, "node")); err != nil {
			return err
		}
		return req.publishItems(d)
	case "items", "retract":
		if err := req.setOp(t.Name.Local, attr(t, "node")); err != nil {
			return err
		}
		if m := attr(t, "max_items"); m != "" {
			k, err := strconv.Atoi(m)
			if err != nil || k < 1 {
				return errMalformed
			}
			req.maxItems = k
		}
		req.notify = attr(t, "notify")
		var items struct {
			Items []struct {
				ID string `xml:"id,attr"`
			} `xml:"item"`
		}
		if err := d.DecodeElement(&items, &t); err != nil {
			return errMalformed
		}
		for _, it := range items.Items {
			req.items = append(req.items, reqItem{id: it.ID})
		}
		return nil
	default:
		if err := req.setOp(t.Name.Local, attr(t, "node")); err != nil {
			return err
		}
		return d.Skip()
	}
}

func (req *request) setOp(op, node string) error {
	if req.op != "" && !(req.op == "create" && op == "configure") {
		return errMalformed // one verb per request
	}
	req.op, req.node = op, node
	return nil
}

// publishItems reads the items of a <publish/>, serialising each payload
// element on its own (its namespace declared) for storage and events.
func (req *request) publishItems(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return errMalformed
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local != "item" || t.Name.Space != NS {
				if err := d.Skip(); err != nil {
					return errMalformed
				}
				continue
			}
			it := reqItem{id: attr(t, "id")}
			for {
				tok, err := d.Token()
				if err != nil {
					return errMalformed
				}
				if _, end := tok.(xml.EndElement); end {
					break
				}
				if start, ok := tok.(xml.StartElement); ok {
					b, err := encodeElement(d, start)
					if err != nil {
						return errMalformed
					}
					it.payloads = append(it.payloads, b)
				}
			}
			req.items = append(req.items, it)
		}
	}
}

// encodeElement serialises the element that start opens, its namespace
// declared, reading the rest from d.
func encodeElement(d *xml.Decoder, start xml.StartElement) ([]byte, error) {
	var e xmlenc.Encoder
	if err := e.EncodeToken(start); err != nil {
		return nil, err
	}
	for e.Depth() > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if err := e.EncodeToken(tok); err != nil {
			return nil, err
		}
	}
	return e.Buf, nil
}

// canonical checks that payload is one XML element and serialises it as
// items are kept.
func canonical(payload []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(payload))
	var out []byte
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if out == nil {
				return nil, errMalformed
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if out != nil {
				return nil, errMalformed
			}
			if out, err = encodeElement(d, t); err != nil {
				return nil, err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errMalformed
			}
		}
	}
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// owner returns the account an IQ addresses and whether its sender is
// that account.
func owner(iq *router.Stanza) (jid.JID, bool) {
	o := iq.To.Bare()
	if iq.To.Equal(jid.JID{}) {
		o = iq.From.Bare()
	}
	return o, o.Equal(iq.From.Bare())
}

var errBadRequest = router.ErrorText(stanza.Modify, stanza.BadRequest, "malformed pubsub request")

func forbidden() error {
	return router.ErrorText(stanza.Auth, stanza.Forbidden, "only the account's owner may do this")
}

// get answers <pubsub/> gets: item retrieval (XEP-0060 §6.5).
func (s *Service) get(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parse(iq, NS)
	if err != nil {
		return nil, errBadRequest
	}
	switch req.op {
	case "items":
		return s.items(ctx, iq, req)
	case "subscriptions":
		return nil, unsupported("retrieve-subscriptions")
	case "affiliations":
		return nil, unsupported("retrieve-affiliations")
	case "options":
		return nil, unsupported("subscription-options")
	}
	return nil, errBadRequest
}

// set answers <pubsub/> sets: publish, retract, create.
func (s *Service) set(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parse(iq, NS)
	if err != nil {
		return nil, errBadRequest
	}
	o, isOwner := owner(iq)
	switch req.op {
	case "subscribe", "unsubscribe", "options":
		// Interest comes from presence and capabilities (XEP-0163 §4).
		return nil, unsupported("subscribe")
	case "publish", "retract", "create":
	default:
		return nil, errBadRequest
	}
	if !isOwner {
		return nil, forbidden()
	}
	switch req.op {
	case "publish":
		return s.publishIQ(ctx, iq, o, req)
	case "retract":
		if len(req.items) != 1 {
			return nil, appError(stanza.Modify, stanza.BadRequest, "item-required", "")
		}
		return nil, s.retract(ctx, o, req.node, req.items[0].id, req.notify)
	default: // create
		if req.node == "" {
			return nil, appError(stanza.Modify, stanza.NotAcceptable, "nodeid-required", "instant nodes are not supported")
		}
		fields, err := formFields(req.form, NSNodeConfig)
		if err != nil {
			return nil, err
		}
		defer s.lock(o)()
		if _, err := s.create(ctx, o, req.node, fields, false); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

// formFields returns a submitted form's fields, checking its FORM_TYPE
// (nil for no form).
func formFields(f *form, formType string) (map[string][]string, error) {
	if f == nil {
		return nil, nil
	}
	if f.Type != "submit" {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "the form must be of type submit")
	}
	fields, ft := f.values()
	if ft != formType {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "FORM_TYPE must be "+formType)
	}
	return fields, nil
}

// publishIQ publishes the one item of a <publish/> (XEP-0060 §7.1).
func (s *Service) publishIQ(ctx context.Context, iq *router.Stanza, o jid.JID, req request) (xml.TokenReader, error) {
	switch {
	case len(req.items) == 0:
		return nil, appError(stanza.Modify, stanza.BadRequest, "item-required", "")
	case len(req.items) > 1:
		return nil, appError(stanza.Modify, stanza.BadRequest, "invalid-payload", "publish one item at a time")
	case len(req.items[0].payloads) == 0:
		return nil, appError(stanza.Modify, stanza.BadRequest, "payload-required", "")
	case len(req.items[0].payloads) > 1:
		return nil, appError(stanza.Modify, stanza.BadRequest, "invalid-payload", "an item holds one element")
	}
	var opts map[string][]string
	if req.form != nil {
		fields, err := formFields(req.form, NSPublishOptions)
		if err != nil {
			return nil, err
		}
		opts = fields
		if opts == nil {
			opts = map[string][]string{}
		}
	}
	id, err := s.publish(ctx, o, iq.From.Bare(), req.node, req.items[0].id, req.items[0].payloads[0], opts)
	if err != nil {
		return nil, err
	}
	item := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NS, Local: "item"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}}})
	return pubsub(NS, xmlstream.Wrap(item, nodeStart(NS, "publish", req.node))), nil
}

func pubsub(ns string, children ...xml.TokenReader) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: ns, Local: "pubsub"}})
}

func nodeStart(ns, local, node string) xml.StartElement {
	return xml.StartElement{Name: xml.Name{Space: ns, Local: local}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
}

// items answers item retrieval (XEP-0060 §6.5): all items, those named,
// or the max_items newest, if the node's access model lets the requester.
func (s *Service) items(ctx context.Context, iq *router.Stanza, req request) (xml.TokenReader, error) {
	if req.node == "" {
		return nil, appError(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	}
	o, _ := owner(iq)
	n, ok, err := s.store.Node(ctx, o.String(), req.node)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	if err := s.access(ctx, o, iq.From.Bare(), n); err != nil {
		return nil, err
	}
	var ids []string
	for _, it := range req.items {
		if it.id == "" {
			return nil, errBadRequest
		}
		ids = append(ids, it.id)
	}
	items, err := s.store.Items(ctx, o.String(), req.node, ids, req.maxItems)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 && len(items) == 0 {
		return nil, router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such item")
	}
	children := make([]xml.TokenReader, 0, len(items))
	for _, it := range items {
		d := xml.NewDecoder(bytes.NewReader(it.Payload))
		children = append(children, xmlstream.Wrap(d, xml.StartElement{Name: xml.Name{Space: NS, Local: "item"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: it.ID}}}))
	}
	return pubsub(NS, xmlstream.Wrap(xmlstream.MultiReader(children...), nodeStart(NS, "items", req.node))), nil
}

// ownerGet answers pubsub#owner gets: a node's configuration, the default
// one (XEP-0060 §8.2, §8.3).
func (s *Service) ownerGet(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parse(iq, NSOwner)
	if err != nil {
		return nil, errBadRequest
	}
	o, isOwner := owner(iq)
	switch req.op {
	case "configure", "default":
	case "subscriptions", "affiliations":
		return nil, unsupported("manage-" + req.op)
	default:
		return nil, errBadRequest
	}
	if !isOwner {
		return nil, forbidden()
	}
	if req.op == "default" {
		return pubsub(NSOwner, xmlstream.Wrap(s.configForm(defaultNode("")), xml.StartElement{Name: xml.Name{Space: NSOwner, Local: "default"}})), nil
	}
	if req.node == "" {
		return nil, appError(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	}
	n, ok, err := s.store.Node(ctx, o.String(), req.node)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	return pubsub(NSOwner, xmlstream.Wrap(s.configForm(n), nodeStart(NSOwner, "configure", req.node))), nil
}

// ownerSet answers pubsub#owner sets: configure, delete, purge (XEP-0060
// §8.2, §8.4, §8.5).
func (s *Service) ownerSet(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	req, err := parse(iq, NSOwner)
	if err != nil {
		return nil, errBadRequest
	}
	o, isOwner := owner(iq)
	switch req.op {
	case "configure", "delete", "purge":
	case "subscriptions", "affiliations":
		return nil, unsupported("manage-" + req.op)
	default:
		return nil, errBadRequest
	}
	if !isOwner {
		return nil, forbidden()
	}
	if req.node == "" {
		return nil, appError(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	}
	unlock := s.lock(o)
	n, ok, err := s.store.Node(ctx, o.String(), req.node)
	if err == nil && !ok {
		err = router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	if err != nil {
		unlock()
		return nil, err
	}
	switch req.op {
	case "configure":
		err = s.configure(ctx, o, n, req.form)
		unlock()
		return nil, err
	case "delete":
		_, err = s.store.DeleteNode(ctx, o.String(), req.node)
		unlock()
		if err != nil {
			return nil, err
		}
		if n.NotifyDelete {
			s.broadcast(ctx, o, n, nodeEvent(o, "delete", req.node))
		}
	default: // purge
		err = s.store.Purge(ctx, o.String(), req.node)
		unlock()
		if err != nil {
			return nil, err
		}
		if n.NotifyRetract {
			s.broadcast(ctx, o, n, nodeEvent(o, "purge", req.node))
		}
	}
	s.changed(ctx, o, req.node, "", nil)
	return nil, nil
}

// configure applies a submitted node_config form. Locked by the caller.
func (s *Service) configure(ctx context.Context, o jid.JID, n storage.PEPNode, f *form) error {
	if f == nil {
		return router.ErrorText(stanza.Modify, stanza.BadRequest, "no configuration form")
	}
	if f.Type == "cancel" {
		return nil
	}
	fields, err := formFields(f, NSNodeConfig)
	if err != nil {
		return err
	}
	if err := s.apply(&n, fields); err != nil {
		var uf unknownField
		if errors.As(err, &uf) {
			return router.ErrorText(stanza.Modify, stanza.NotAcceptable, "field "+uf.name+" is not supported")
		}
		return err
	}
	return s.store.ConfigureNode(ctx, o.String(), n, s.keep(n))
}
