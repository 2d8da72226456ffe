// Package entitytime implements XEP-0202: Entity Time, for the server: an
// IQ to the server's domain gets its time in UTC and its time zone offset,
// in XEP-0082's formats. Clients answer for themselves (IQs to a full JID
// go to them); the server does not answer for accounts.
package entitytime

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// NS is the XEP-0202 namespace.
const NS = "urn:xmpp:time"

// Register answers time queries to the server with the time now returns
// (time.Now when nil), whose location gives the offset.
func Register(r *router.Registry, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	r.Feature(NS)
	r.IQFunc(stanza.GetIQ, router.ToServer, xml.Name{Space: NS, Local: "time"}, func(context.Context, *router.Stanza) (xml.TokenReader, error) {
		return payload(now()), nil
	})
}

// payload is <time><tzo>+hh:mm</tzo><utc>…Z</utc></time> (XEP-0202 §3).
func payload(t time.Time) xml.TokenReader {
	el := func(n, v string) xml.TokenReader {
		return xmlstream.Wrap(xmlstream.Token(xml.CharData(v)), xml.StartElement{Name: xml.Name{Space: NS, Local: n}})
	}
	// XEP-0082's TZD; "-07:00" writes +00:00 for UTC (XEP-0202's examples
	// use the numeric form), where "Z07:00" would write Z.
	return xmlstream.Wrap(xmlstream.MultiReader(el("tzo", t.Format("-07:00")), el("utc", t.UTC().Format("2006-01-02T15:04:05.000Z"))),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "time"}})
}
