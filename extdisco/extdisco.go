// Package extdisco implements XEP-0215: External Service Discovery
// (urn:xmpp:extdisco:2), for STUN and TURN servers.
//
// The services come from the configuration ([[extdisco.services]]). A
// local user's <services/> query to the server lists them (those of one
// type when the query names it); a <credentials/> query names one by host
// and type (and port, when one host has several) and gets its
// credentials. A TURN service with a shared secret comes with time-limited
// credentials in both answers, made as coturn's use-auth-secret (the
// "TURN REST API" draft) expects: username "<expiry unix time>:<bare
// JID>", password base64(HMAC-SHA1(secret, username)), and the expiry in
// the expires attribute (XEP-0082, UTC). Services with a secret, or
// configured so, are marked restricted. Nobody outside the server's domain
// is answered (forbidden). Pushes (§3.2) are not sent: the configuration
// changes only with a restart. Nothing is stored.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// NS is the XEP-0215 namespace.
const NS = "urn:xmpp:extdisco:2"

// Service is one external service.
type Service struct {
	Type       string // stun, stuns, turn, turns
	Host       string
	Port       int    // 0: not said
	Transport  string // udp, tcp or "" (not said)
	Name       string // "" for none
	Restricted bool   // credentials needed (always so with a Secret)
	Secret     string // TURN shared secret; "" for none
}

// Options configure the feature.
type Options struct {
	Services []Service
	// Lifetime is how long the credentials made from a secret are valid.
	Lifetime time.Duration
	// Now returns the time credentials are made at; time.Now when nil.
	Now func() time.Time
}

type handler struct {
	domain string
	opts   Options
}

// Register answers services and credentials queries to the server from
// local users of domain, unless there are no services.
func Register(r *router.Registry, domain jid.JID, opts Options) {
	if len(opts.Services) == 0 {
		return
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &handler{domain: domain.Domainpart(), opts: opts}
	r.Feature(NS)
	r.IQFunc(stanza.GetIQ, router.ToServer, xml.Name{Space: NS, Local: "services"}, h.services)
	r.IQFunc(stanza.GetIQ, router.ToServer, xml.Name{Space: NS, Local: "credentials"}, h.credentials)
}

// local refuses anyone but a local user.
func (h *handler) local(iq *router.Stanza) error {
	if iq.From.Localpart() == "" || iq.From.Domainpart() != h.domain {
		return router.ErrorText(stanza.Auth, stanza.Forbidden, "external services are for this server's users")
	}
	return nil
}

func (h *handler) services(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if err := h.local(iq); err != nil {
		return nil, err
	}
	req, _, err := request(iq)
	if err != nil {
		return nil, err
	}
	typ := attr(req, "type")
	var out []xml.TokenReader
	now := h.opts.Now()
	for i := range h.opts.Services {
		if s := &h.opts.Services[i]; typ == "" || s.Type == typ {
			out = append(out, h.service(s, iq.From.Bare(), now))
		}
	}
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "services"}}
	if typ != "" {
		start.Attr = []xml.Attr{{Name: xml.Name{Local: "type"}, Value: typ}}
	}
	return xmlstream.Wrap(xmlstream.MultiReader(out...), start), nil
}

// credentials answers §3.3: the services matching the <service/> asked
// about (host and type, and port when given) that the server has
// credentials for.
func (h *handler) credentials(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	if err := h.local(iq); err != nil {
		return nil, err
	}
	_, want, err := request(iq)
	if err != nil {
		return nil, err
	}
	host, typ, port := attr(want, "host"), attr(want, "type"), attr(want, "port")
	if host == "" || typ == "" {
		return nil, router.ErrorText(stanza.Modify, stanza.BadRequest, "a <service/> with host and type is required")
	}
	var out []xml.TokenReader
	now := h.opts.Now()
	for i := range h.opts.Services {
		s := &h.opts.Services[i]
		if s.Secret == "" || s.Host != host || s.Type != typ || (port != "" && port != strconv.Itoa(s.Port)) {
			continue
		}
		out = append(out, h.service(s, iq.From.Bare(), now))
	}
	if len(out) == 0 {
		return nil, router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no credentials for such a service")
	}
	return xmlstream.Wrap(xmlstream.MultiReader(out...), xml.StartElement{Name: xml.Name{Space: NS, Local: "credentials"}}), nil
}

// service is one <service/>, with credentials for user when s has a secret.
func (h *handler) service(s *Service, user jid.JID, now time.Time) xml.TokenReader {
	a := []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: s.Type},
		{Name: xml.Name{Local: "host"}, Value: s.Host},
	}
	add := func(name, v string) {
		if v != "" {
			a = append(a, xml.Attr{Name: xml.Name{Local: name}, Value: v})
		}
	}
	if s.Port != 0 {
		add("port", strconv.Itoa(s.Port))
	}
	add("transport", s.Transport)
	add("name", s.Name)
	if s.Restricted || s.Secret != "" {
		add("restricted", "1")
	}
	if s.Secret != "" {
		expires := now.Add(h.opts.Lifetime).Truncate(time.Second)
		username, password := Credentials(s.Secret, user, expires)
		add("username", username)
		add("password", password)
		add("expires", expires.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NS, Local: "service"}, Attr: a})
}

// Credentials returns the TURN REST API credentials for user valid until
// expires, from the TURN server's shared secret: username
// "<expires unix time>:<user's bare JID>", password
// base64(HMAC-SHA1(secret, username)).
func Credentials(secret string, user jid.JID, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user.Bare().String()
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// request returns the query element of iq and its first <service/> child
// (zero when there is none).
func request(iq *router.Stanza) (query, service xml.StartElement, err error) {
	d := iq.Decoder()
	depth := 0
	for {
		tok, terr := d.Token()
		if terr != nil {
			return query, service, router.ErrorText(stanza.Modify, stanza.BadRequest, "")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				query = t.Copy()
			case depth == 3 && t.Name == xml.Name{Space: NS, Local: "service"}:
				return query, t.Copy(), nil
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				return query, service, nil
			}
		}
	}
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
