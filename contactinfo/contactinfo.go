// Package contactinfo implements XEP-0157: Contact Addresses for XMPP
// Services. It registers one XEP-0128 form with the router (FORM_TYPE
// http://jabber.org/network/serverinfo), which disco serves in the
// server's disco#info: one list-multi field per kind of address that has
// any (abuse-addresses, admin-addresses, …), in the XEP's order. With no
// address at all it registers nothing. The addresses come from the
// configuration ([server.contact]), checked there; this package stores
// nothing.
package contactinfo

import (
	"encoding/xml"

	"mellium.im/xmlstream"

	"xmppd.dev/xmppd/router"
)

// FormType is the FORM_TYPE of the form (XEP-0157 §2).
const FormType = "http://jabber.org/network/serverinfo"

// nsData is XEP-0004's namespace.
const nsData = "jabber:x:data"

// Addresses are the server's contact URIs by kind (mailto:, xmpp:, https:
// …). Its fields are config.Contact's, so that one converts to the other.
type Addresses struct {
	Abuse, Admin, Feedback, Sales, Security, Status, Support []string
}

// fields returns the form's fields that have values, in the order of the
// XEP's registry.
func (a Addresses) fields() []field {
	var out []field
	for _, f := range []field{
		{"abuse-addresses", a.Abuse}, {"admin-addresses", a.Admin}, {"feedback-addresses", a.Feedback},
		{"sales-addresses", a.Sales}, {"security-addresses", a.Security}, {"status-addresses", a.Status},
		{"support-addresses", a.Support},
	} {
		if len(f.values) > 0 {
			out = append(out, f)
		}
	}
	return out
}

type field struct {
	name   string
	values []string
}

// Register adds the addresses to the server's disco#info, unless there
// are none.
func Register(r *router.Registry, a Addresses) {
	fields := a.fields()
	if len(fields) == 0 {
		return
	}
	r.InfoForm(FormType, func() xml.TokenReader { return form(fields) })
}

// form is the <x type='result'/> of XEP-0157 §3: the hidden FORM_TYPE,
// then one list-multi field per kind.
func form(fields []field) xml.TokenReader {
	children := []xml.TokenReader{formField("FORM_TYPE", "hidden", FormType)}
	for _, f := range fields {
		children = append(children, formField(f.name, "list-multi", f.values...))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{
		Name: xml.Name{Space: nsData, Local: "x"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "result"}},
	})
}

func formField(name, typ string, values ...string) xml.TokenReader {
	vs := make([]xml.TokenReader, len(values))
	for i, v := range values {
		vs[i] = xmlstream.Wrap(xmlstream.Token(xml.CharData(v)), xml.StartElement{Name: xml.Name{Space: nsData, Local: "value"}})
	}
	return xmlstream.Wrap(xmlstream.MultiReader(vs...), xml.StartElement{
		Name: xml.Name{Space: nsData, Local: "field"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: name}, {Name: xml.Name{Local: "type"}, Value: typ}},
	})
}
