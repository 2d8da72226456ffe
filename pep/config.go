package pep

import (
	"encoding/xml"
	"errors"
	"slices"
	"strconv"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Access models (XEP-0060 §4.5) PEP supports. authorize is not: it needs
// subscription requests, which PEP's presence-based delivery has no use for.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// Values of pubsub#send_last_published_item.
const (
	sendNever       = "never"
	sendOnSub       = "on_sub"
	sendOnPresence  = "on_sub_and_presence"
	maxNodeNameSize = 1023 // bytes of a node name or an item id
)

// defaultNode is the configuration of a node created without options:
// XEP-0163 §5's defaults, as Prosody and ejabberd have them (presence
// access, one item kept, the last one sent on presence).
func defaultNode(name string) storage.PEPNode {
	return storage.PEPNode{Node: name, AccessModel: AccessPresence, MaxItems: 1, PersistItems: true,
		SendLast: sendOnPresence, NotifyRetract: true, NotifyDelete: true}
}

// field is a data form field (XEP-0004) as submitted.
type field struct {
	Var    string   `xml:"var,attr"`
	Values []string `xml:"jabber:x:data value"`
}

// form is a submitted data form.
type form struct {
	Type   string  `xml:"type,attr"`
	Fields []field `xml:"jabber:x:data field"`
}

// values returns the form's fields by var, FORM_TYPE left out, and the
// FORM_TYPE.
func (f *form) values() (map[string][]string, string) {
	out := map[string][]string{}
	formType := ""
	for _, fl := range f.Fields {
		if fl.Var == "FORM_TYPE" {
			if len(fl.Values) > 0 {
				formType = fl.Values[0]
			}
			continue
		}
		out[fl.Var] = fl.Values
	}
	return out, formType
}

// errUnknownField is returned by apply for a field PEP does not know.
var errUnknownField = errors.New("pep: unknown configuration field")

// apply sets n's configuration from submitted fields (of a node_config
// form or of publish-options). It returns errUnknownField (wrapped in a
// stanza error naming it) for a field it does not know, and a
// not-acceptable stanza error for a value it cannot take.
func (s *Service) apply(n *storage.PEPNode, fields map[string][]string) error {
	for name, vals := range fields {
		one := ""
		if len(vals) > 0 {
			one = vals[0]
		}
		bad := func() error {
			return router.ErrorText(stanza.Modify, stanza.NotAcceptable, "unacceptable value for "+name)
		}
		switch name {
		case "pubsub#access_model":
			switch one {
			case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
				n.AccessModel = one
			default:
				return appError(stanza.Modify, stanza.NotAcceptable, "unsupported-access-model", "access model "+one+" is not supported")
			}
		case "pubsub#roster_groups_allowed":
			groups := slices.Clone(vals)
			slices.Sort(groups)
			n.RosterGroups = slices.Compact(groups)
			if len(n.RosterGroups) == 0 {
				n.RosterGroups = nil
			}
		case "pubsub#max_items":
			if one == "max" {
				n.MaxItems = -1
				break
			}
			k, err := strconv.Atoi(one)
			if err != nil || k < 1 {
				return bad()
			}
			if k > s.opts.MaxItems {
				return router.ErrorText(stanza.Modify, stanza.NotAcceptable,
					"pubsub#max_items is at most "+strconv.Itoa(s.opts.MaxItems)+" here (or max)")
			}
			n.MaxItems = k
		case "pubsub#persist_items", "pubsub#notify_retract", "pubsub#notify_delete":
			b, ok := parseBool(one)
			if !ok {
				return bad()
			}
			switch name {
			case "pubsub#persist_items":
				n.PersistItems = b
			case "pubsub#notify_retract":
				n.NotifyRetract = b
			default:
				n.NotifyDelete = b
			}
		case "pubsub#deliver_notifications", "pubsub#deliver_payloads", "pubsub#presence_based_delivery":
			// Fixed: PEP delivers payloads to those present.
			if b, ok := parseBool(one); !ok || !b {
				return bad()
			}
		case "pubsub#notify_config", "pubsub#notify_sub":
			if b, ok := parseBool(one); !ok || b {
				return bad()
			}
		case "pubsub#send_last_published_item":
			switch one {
			case sendNever, sendOnSub, sendOnPresence:
				n.SendLast = one
			default:
				return bad()
			}
		case "pubsub#title":
			if len(one) > maxNodeNameSize {
				return bad()
			}
			n.Title = one
		case "pubsub#publish_model":
			if one != "publishers" {
				return bad()
			}
		default:
			return unknownField{name}
		}
	}
	return nil
}

// unknownField is errUnknownField for one field.
type unknownField struct{ name string }

func (e unknownField) Error() string { return "pep: unknown configuration field " + e.name }
func (e unknownField) Unwrap() error { return errUnknownField }

func parseBool(s string) (v, ok bool) {
	switch s {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// keep is how many items n keeps: its max_items, "max" being the
// server's limit, and never more than the limit (which may have been
// lowered since the node was configured).
func (s *Service) keep(n storage.PEPNode) int {
	if !n.PersistItems {
		return 0
	}
	if n.MaxItems < 0 || n.MaxItems > s.opts.MaxItems {
		return s.opts.MaxItems
	}
	return n.MaxItems
}

// sameConfig reports whether a and b configure a node alike, "max" being
// the limit it stands for.
func (s *Service) sameConfig(a, b storage.PEPNode) bool {
	eff := func(n storage.PEPNode) int {
		if n.MaxItems < 0 {
			return s.opts.MaxItems
		}
		return n.MaxItems
	}
	return a.AccessModel == b.AccessModel && slices.Equal(a.RosterGroups, b.RosterGroups) && eff(a) == eff(b) &&
		a.PersistItems == b.PersistItems && a.SendLast == b.SendLast && a.NotifyRetract == b.NotifyRetract &&
		a.NotifyDelete == b.NotifyDelete && a.Title == b.Title
}

// preconditions checks publish-options against an existing node (XEP-0060
// §7.1.5): they hold when applying them would change nothing. A field PEP
// does not know cannot be checked, so it does not hold either (as Prosody
// answers).
func (s *Service) preconditions(n storage.PEPNode, opts map[string][]string) error {
	want := n
	want.RosterGroups = slices.Clone(n.RosterGroups)
	slices.Sort(want.RosterGroups)
	cur := want
	if err := s.apply(&want, opts); err != nil || !s.sameConfig(cur, want) {
		text := "the node's configuration differs from the publish-options"
		if errors.Is(err, errUnknownField) {
			text = "publish-option " + err.(unknownField).name + " is not supported"
		}
		return appError(stanza.Cancel, stanza.Conflict, "precondition-not-met", text)
	}
	return nil
}

// configForm is the node_config form of n (XEP-0060 §8.2.1), of type form.
func (s *Service) configForm(n storage.PEPNode) xml.TokenReader {
	maxItems := strconv.Itoa(n.MaxItems)
	if n.MaxItems < 0 {
		maxItems = "max"
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	return dataForm("form", NSNodeConfig,
		formField("pubsub#title", "text-single", "A friendly name for the node", nil, n.Title),
		formField("pubsub#deliver_notifications", "boolean", "Deliver event notifications", nil, "1"),
		formField("pubsub#deliver_payloads", "boolean", "Deliver payloads with event notifications", nil, "1"),
		formField("pubsub#notify_retract", "boolean", "Notify subscribers when items are removed from the node", nil, b(n.NotifyRetract)),
		formField("pubsub#notify_delete", "boolean", "Notify subscribers when the node is deleted", nil, b(n.NotifyDelete)),
		formField("pubsub#persist_items", "boolean", "Persist items to storage", nil, b(n.PersistItems)),
		formField("pubsub#max_items", "text-single", "Max # of items to persist (at most "+strconv.Itoa(s.opts.MaxItems)+", or max)", nil, maxItems),
		formField("pubsub#access_model", "list-single", "Specify the subscriber model",
			[]string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}, n.AccessModel),
		formField("pubsub#roster_groups_allowed", "list-multi", "Roster groups allowed to subscribe", nil, n.RosterGroups...),
		formField("pubsub#publish_model", "list-single", "Specify the publisher model", []string{"publishers"}, "publishers"),
		formField("pubsub#send_last_published_item", "list-single", "When to send the last published item",
			[]string{sendNever, sendOnSub, sendOnPresence}, n.SendLast),
	)
}

// dataForm is a XEP-0004 form with a hidden FORM_TYPE.
func dataForm(typ, formType string, fields ...xml.TokenReader) xml.TokenReader {
	all := append([]xml.TokenReader{hiddenField("FORM_TYPE", formType)}, fields...)
	return xmlstream.Wrap(xmlstream.MultiReader(all...), xml.StartElement{
		Name: xml.Name{Space: nsData, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: typ}}})
}

func hiddenField(name, value string) xml.TokenReader {
	return formField(name, "hidden", "", nil, value)
}

func formField(name, typ, label string, options []string, values ...string) xml.TokenReader {
	attrs := []xml.Attr{{Name: xml.Name{Local: "var"}, Value: name}, {Name: xml.Name{Local: "type"}, Value: typ}}
	if label != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "label"}, Value: label})
	}
	var children []xml.TokenReader
	for _, o := range options {
		children = append(children, xmlstream.Wrap(textElement(nsData, "value", o), xml.StartElement{Name: xml.Name{Space: nsData, Local: "option"}}))
	}
	for _, v := range values {
		children = append(children, textElement(nsData, "value", v))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: xml.Name{Space: nsData, Local: "field"}, Attr: attrs})
}

func textElement(space, local, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Space: space, Local: local}})
}

// appError is a stanza error with a pubsub#errors condition.
func appError(typ stanza.ErrorType, cond stanza.Condition, app, text string) error {
	return router.AppError{Err: router.ErrorText(typ, cond, text), App: xml.StartElement{Name: xml.Name{Space: NSErrors, Local: app}}}
}

// unsupported is feature-not-implemented with <unsupported feature/>,
// XEP-0060's answer to a request for a feature the service lacks.
func unsupported(feature string) error {
	return router.AppError{
		Err: router.ErrorText(stanza.Cancel, stanza.FeatureNotImplemented, ""),
		App: xml.StartElement{Name: xml.Name{Space: NSErrors, Local: "unsupported"}, Attr: []xml.Attr{{Name: xml.Name{Local: "feature"}, Value: feature}}},
	}
}
