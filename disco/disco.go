// Package disco implements XEP-0030: Service Discovery, for the server
// itself and for local accounts.
//
// The server's disco#info lists exactly the features registered with the
// router (r.Feature), and its disco#items the services registered with
// r.Item; nothing is listed here by hand. XEP-0128 forms registered with
// r.InfoForm (contact addresses, XEP-0157) follow its features. An
// account's bare JID answers disco#info with the account/registered
// identity on behalf of the user (RFC 6120 §10.3.3), plus the identities
// and features features add (r.AccountIdentity, r.AccountFeature). Queries
// with a node to the server get item-not-found, except the server's own
// entity capabilities node (XEP-0115); to an account, and an account's
// disco#items, they go to the handler set with r.SetAccountNodes (PEP),
// if any.
package disco

import (
	"context"
	"encoding/xml"
	"slices"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Service answers disco queries from the registry it is registered with.
type Service struct {
	reg  *router.Registry
	name string // the server's identity name
	// capsNode is the node of the server's entity capabilities
	// (node#ver), answered as the server itself; set once before serving.
	capsNode string
}

// New returns a disco service; name is the server identity's name.
func New(name string) *Service { return &Service{name: name} }

// Register hooks the service into the router.
func (s *Service) Register(r *router.Registry) {
	s.reg = r
	r.Feature(NSInfo)
	r.Feature(NSItems)
	info := xml.Name{Space: NSInfo, Local: "query"}
	items := xml.Name{Space: NSItems, Local: "query"}
	r.IQFunc(stanza.GetIQ, router.ToServer, info, s.serverInfoCaps)
	r.IQFunc(stanza.GetIQ, router.ToServer, items, s.serverItems)
	for _, to := range []router.Addressee{router.ToSelf, router.ToBare} {
		r.IQFunc(stanza.GetIQ, to, info, s.accountInfo)
		r.IQFunc(stanza.GetIQ, to, items, s.accountItems)
	}
}

// node returns the node attribute of the query.
func node(iq *router.Stanza) (string, error) {
	d := iq.Decoder()
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return "", err
		}
		if start, ok := tok.(xml.StartElement); ok {
			depth++
			if depth == 2 {
				for _, a := range start.Attr {
					if a.Name.Local == "node" && a.Name.Space == "" {
						return a.Value, nil
					}
				}
				return "", nil
			}
		}
	}
}

func noNode(iq *router.Stanza) error {
	n, err := node(iq)
	if err != nil {
		return router.ErrorText(stanza.Modify, stanza.BadRequest, "")
	}
	if n != "" {
		return router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such node")
	}
	return nil
}

func query(space string, children ...xml.TokenReader) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: space, Local: "query"}})
}

func identity(category, typ, name string) xml.TokenReader {
	attrs := []xml.Attr{{Name: xml.Name{Local: "category"}, Value: category}, {Name: xml.Name{Local: "type"}, Value: typ}}
	if name != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: name})
	}
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSInfo, Local: "identity"}, Attr: attrs})
}

func feature(v string) xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSInfo, Local: "feature"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: v}}})
}

func (s *Service) serverInfo(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if err := noNode(iq); err != nil {
		return nil, err
	}
	children := []xml.TokenReader{identity("server", "im", s.name)}
	for _, f := range s.reg.Features() {
		children = append(children, feature(f))
	}
	// XEP-0128 extended information, after the features (XEP-0030's
	// schema allows any element there).
	children = append(children, s.reg.InfoForms()...)
	return query(NSInfo, children...), nil
}

func (s *Service) serverItems(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if err := noNode(iq); err != nil {
		return nil, err
	}
	var children []xml.TokenReader
	for _, it := range s.reg.Items() {
		attrs := []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: it.JID}}
		if it.Name != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: it.Name})
		}
		children = append(children, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSItems, Local: "item"}, Attr: attrs}))
	}
	return query(NSItems, children...), nil
}

// accountInfo answers for a local account's bare JID. Any local user may
// ask (the router has checked that the account exists).
func (s *Service) accountInfo(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if h := s.reg.AccountNodesHandler(); h != nil {
		n, err := node(iq)
		if err != nil {
			return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
		}
		if n != "" {
			return h.NodeInfo(ctx, iq, n)
		}
	}
	if err := noNode(iq); err != nil {
		return nil, err
	}
	children := []xml.TokenReader{identity("account", "registered", "")}
	for _, id := range s.reg.AccountIdentities() {
		children = append(children, identity(id.Category, id.Type, id.Name))
	}
	children = append(children, feature(NSInfo), feature(NSItems))
	for _, f := range s.reg.AccountFeatures() {
		children = append(children, feature(f))
	}
	return query(NSInfo, children...), nil
}

func (s *Service) accountItems(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if h := s.reg.AccountNodesHandler(); h != nil {
		n, err := node(iq)
		if err != nil {
			return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
		}
		return h.Items(ctx, iq, n)
	}
	if err := noNode(iq); err != nil {
		return nil, err
	}
	return query(NSItems), nil
}

// --- Entity capabilities (XEP-0115) ---------------------------------------

// Info returns the server's disco#info <query/> as a query without node
// gets it, for the server's caps ver (XEP-0115 §6.3) computed from it.
func (s *Service) Info(ctx context.Context) (xml.TokenReader, error) {
	iq, err := router.Build(router.KindIQ, "get", "caps", jid.JID{}, jid.JID{}, query(NSInfo))
	if err != nil {
		return nil, err
	}
	return s.serverInfo(ctx, iq)
}

// SetCapsNode makes node (ServerNode#ver of the server's caps) answer
// disco#info as the server does without node (XEP-0115 §6.2). Call it
// before the server serves.
func (s *Service) SetCapsNode(node string) { s.capsNode = node }

// serverInfoCaps answers the server's disco#info: for the caps node as
// without node, the node echoed in the answer; anything else as
// serverInfo does.
func (s *Service) serverInfoCaps(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if n, err := node(iq); err != nil || n == "" || n != s.capsNode {
		return s.serverInfo(ctx, iq)
	}
	r, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &withNode{r: r, node: s.capsNode}, nil
}

// withNode adds a node attribute to the first start element of r.
type withNode struct {
	r    xml.TokenReader
	node string
	done bool
}

func (w *withNode) Token() (xml.Token, error) {
	tok, err := w.r.Token()
	if start, ok := tok.(xml.StartElement); ok && !w.done {
		w.done = true
		start.Attr = append(slices.Clip(start.Attr), xml.Attr{Name: xml.Name{Local: "node"}, Value: w.node})
		tok = start
	}
	return tok, err
}
