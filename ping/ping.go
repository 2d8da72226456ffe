// Package ping implements XEP-0199: XMPP Ping, the server's side of it: a
// ping to the server gets an empty result. (The server's own keepalive
// pings to idle clients are sent by c2s, which owns the session.)
package ping

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Register answers pings to the server.
func Register(r *router.Registry) {
	r.Feature(NS)
	r.IQFunc(stanza.GetIQ, router.ToServer, xml.Name{Space: NS, Local: "ping"}, pong)
}

func pong(context.Context, *router.Stanza) (xml.TokenReader, error) { return nil, nil }
