// Package version implements XEP-0092: Software Version, for the server.
// Admins who prefer not to tell can turn it off ([server]
// software_version = false); it is then neither answered nor listed.
package version

import (
	"context"
	"encoding/xml"
	"runtime"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Register answers version queries to the server with name and version.
func Register(r *router.Registry, name, version string) {
	r.Feature(NS)
	r.IQFunc(stanza.GetIQ, router.ToServer, xml.Name{Space: NS, Local: "query"}, func(context.Context, *router.Stanza) (xml.TokenReader, error) {
		el := func(n, v string) xml.TokenReader {
			return xmlstream.Wrap(xmlstream.Token(xml.CharData(v)), xml.StartElement{Name: xml.Name{Space: NS, Local: n}})
		}
		return xmlstream.Wrap(xmlstream.MultiReader(el("name", name), el("version", version), el("os", runtime.GOOS)),
			xml.StartElement{Name: xml.Name{Space: NS, Local: "query"}}), nil
	})
}
