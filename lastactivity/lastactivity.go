// Package lastactivity implements XEP-0012: Last Activity (jabber:iq:last)
// for the server and for local accounts.
//
// An IQ to the server is answered with its uptime (§4). An IQ to an
// account's bare JID is answered by the server on the account's behalf
// (§3), to the account itself and to the accounts subscribed to its
// presence (the roster's from or both, through Router.Subscribes); anyone
// else gets auth/forbidden, as the XEP and Prosody's mod_lastactivity say
// (ejabberd's mod_last answers subscription-required instead). While the
// account has an available resource the answer is seconds='0' and no text
// (§3; ejabberd does the same); otherwise it is the seconds since its last
// available resource went away, with the <status/> of that resource's
// unavailable presence. An account that never logged out since this was
// recorded gets cancel/service-unavailable, as from ejabberd. IQs to a full
// JID go to the client, as for any IQ.
//
// The logout is recorded by an OnUnavailablePresence hook when the last
// available resource goes away (an unavailable presence or the end of its
// stream): one UPSERT through Store, the status cut to MaxStatusBytes.
// Nothing is cached; a query reads one row.
package lastactivity

import (
	"context"
	"encoding/xml"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/router"
)

// NS is the XEP-0012 namespace.
const NS = "jabber:iq:last"

// MaxStatusBytes bounds the status text kept per account.
const MaxStatusBytes = 1024

// Store is what last activity needs from storage; *storage.LastActivity
// implements it.
type Store interface {
	// Record replaces user's last logout.
	Record(ctx context.Context, user string, at time.Time, status string) error
	// Get returns user's last logout; at is zero when none is stored.
	Get(ctx context.Context, user string) (at time.Time, status string, err error)
}

// Service is the last activity feature.
type Service struct {
	store    Store
	router   *router.Router
	start    time.Time // the server's start, for its uptime
	now      func() time.Time
	storeLog *burstlog.Logger
}

// New returns the service; the server's uptime counts from now.
func New(store Store, r *router.Router, log *slog.Logger) *Service {
	return &Service{
		store: store, router: r, start: time.Now(), now: time.Now,
		storeLog: burstlog.New(log, "lastactivity: storage failed", time.Minute),
	}
}

// Register hooks the service into the router.
func (s *Service) Register(r *router.Registry) {
	q := xml.Name{Space: NS, Local: "query"}
	r.Feature(NS)
	r.AccountFeature(NS)
	r.IQFunc(stanza.GetIQ, router.ToServer, q, s.uptime)
	r.IQFunc(stanza.GetIQ, router.ToSelf, q, s.account)
	r.IQFunc(stanza.GetIQ, router.ToBare, q, s.account)
	r.OnUnavailablePresence(s.unavailable)
}

func query(seconds int64, text string) xml.TokenReader {
	var inner xml.TokenReader
	if text != "" {
		inner = xmlstream.Token(xml.CharData(text))
	}
	return xmlstream.Wrap(inner, xml.StartElement{
		Name: xml.Name{Space: NS, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "seconds"}, Value: strconv.FormatInt(max(seconds, 0), 10)}},
	})
}

func (s *Service) uptime(context.Context, *router.Stanza) (xml.TokenReader, error) {
	return query(int64(s.now().Sub(s.start)/time.Second), ""), nil
}

// account answers for an account's bare JID (§3).
func (s *Service) account(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	requester := iq.From.Bare()
	owner := iq.To.Bare()
	if iq.To.Equal(jid.JID{}) {
		owner = requester // ToSelf without a to
	}
	if !owner.Equal(requester) && !s.router.Subscribes(ctx, owner, requester) {
		return nil, router.ErrorText(stanza.Auth, stanza.Forbidden, "not subscribed to this account's presence")
	}
	if len(s.router.AvailableResources(owner)) > 0 {
		return query(0, ""), nil
	}
	at, status, err := s.store.Get(ctx, owner.String())
	if err != nil {
		return nil, err // the router answers wait/internal-server-error
	}
	if at.IsZero() {
		return nil, router.ErrorText(stanza.Cancel, stanza.ServiceUnavailable, "no last activity recorded")
	}
	return query(int64(s.now().Sub(at)/time.Second), status), nil
}

// unavailable records the logout when sess was the account's last
// available resource (the router has already made it unavailable).
func (s *Service) unavailable(ctx context.Context, sess router.Session, pres *router.Stanza) {
	user := sess.JID().Bare()
	if len(s.router.AvailableResources(user)) > 0 {
		return
	}
	status := ""
	if pres != nil {
		status = statusText(pres)
	}
	if err := s.store.Record(ctx, user.String(), s.now(), status); err != nil {
		s.storeLog.Fail(err, "jid", user.String())
		return
	}
	s.storeLog.OK()
}

// statusText returns the text of the presence's first <status/> child
// (as Prosody's get_child_text), cut to MaxStatusBytes on a character
// boundary; "" when it has none.
func statusText(pres *router.Stanza) string {
	d := pres.Decoder()
	depth := 0
	inStatus := false
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				inStatus = t.Name == xml.Name{Space: stanza.NSClient, Local: "status"}
			}
		case xml.CharData:
			// Only the status's own text, as get_child_text reads it.
			if inStatus && depth == 2 && len(text) <= MaxStatusBytes {
				text = append(text, t...)
			}
		case xml.EndElement:
			if inStatus && depth == 2 {
				return cut(string(text), MaxStatusBytes)
			}
			depth--
		}
	}
}

// cut returns s cut to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
