package push

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Namespaces whose presence makes a message worth a notification without
// a readable body (Prosody's mod_cloud_notify, is_important).
var important = map[xml.Name]bool{
	{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}: true, // OMEMO (legacy)
	{Space: "urn:xmpp:omemo:0", Local: "encrypted"}:               true,
	{Space: "urn:xmpp:omemo:2", Local: "encrypted"}:               true,
	{Space: "jabber:x:encrypted", Local: "x"}:                     true, // XEP-0027
	{Space: "urn:xmpp:openpgp:0", Local: "openpgp"}:               true, // XEP-0373
	{Space: "urn:xmpp:jingle-message:0", Local: "propose"}:        true, // XEP-0353: a call
}

const nsCarbons = "urn:xmpp:carbons:2"

// summary is what a notification tells of a message.
type summary struct {
	important bool
	sender    string
	body      string
}

// inspect decides whether the message m matters to a sleeping client, as
// Prosody does: a body that is not empty, an encrypted payload or a call
// proposal, not in a headline or a group chat subject change; a carbon
// copy of a message received elsewhere counts as that message, one of a
// message sent does not.
func inspect(m *router.Stanza) summary {
	d := m.Decoder()
	tok, err := d.Token()
	if err != nil {
		return summary{}
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return summary{}
	}
	return inspectMessage(d, start, m.From.String())
}

// inspectMessage reads a message element whose start was read.
func inspectMessage(d *xml.Decoder, start xml.StartElement, from string) summary {
	sum := summary{sender: from}
	typ := ""
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "type" {
			typ = a.Value
		}
		if a.Name.Space == "" && a.Name.Local == "from" && from == "" {
			sum.sender = a.Value
		}
	}
	subject, hasBody := false, false
	for {
		tok, err := d.Token()
		if err != nil {
			return summary{}
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if typ == "headline" || (typ == "groupchat" && subject) {
				return summary{}
			}
			sum.important = sum.important || hasBody
			return sum
		case xml.StartElement:
			switch {
			case t.Name == xml.Name{Space: stanza.NSClient, Local: "body"}:
				var text string
				if d.DecodeElement(&text, &t) != nil {
					return summary{}
				}
				if text != "" && !hasBody {
					hasBody, sum.body = true, text
				}
				continue
			case t.Name == xml.Name{Space: stanza.NSClient, Local: "subject"}:
				subject = true
			case important[t.Name]:
				sum.important = true
			case t.Name == xml.Name{Space: nsCarbons, Local: "sent"}:
				return summary{} // the user's own message, from another client
			case t.Name == xml.Name{Space: nsCarbons, Local: "received"}:
				if inner, ok := forwarded(d); ok {
					return inner
				}
				return summary{}
			}
			if d.Skip() != nil {
				return summary{}
			}
		}
	}
}

// forwarded reads <forwarded><message/></forwarded> inside a carbon and
// inspects the message.
func forwarded(d *xml.Decoder) (summary, bool) {
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return summary{}, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name == (xml.Name{Space: stanza.NSClient, Local: "message"}) {
				return inspectMessage(d, t, ""), true
			}
			if depth > 2 {
				if d.Skip() != nil {
					return summary{}, false
				}
				depth--
			}
		case xml.EndElement:
			depth--
			if depth < 0 {
				return summary{}, false
			}
		}
	}
}

// notify sends a notification for m, a message for user, to each of
// user's registrations, when m matters.
func (s *Service) notify(ctx context.Context, user string, m *router.Stanza) {
	a := s.lookup(user)
	if a == nil {
		return
	}
	sum := inspect(m)
	if !sum.important {
		return
	}
	s.send(ctx, user, sum, 1)
}

// send sends each of user's registrations a notification for n more
// messages, the last of them summarised by sum.
func (s *Service) send(ctx context.Context, user string, sum summary, n int) {
	a := s.lookup(user)
	if a == nil {
		return
	}
	regs, err := s.registrations(ctx, user)
	if err != nil {
		s.storeLog.Fail(err, "user", user)
		return
	}
	s.storeLog.OK()
	if len(regs) == 0 {
		return
	}
	count := a.pending.Add(int64(n))
	from, err := jid.Parse(user)
	if err != nil {
		return
	}
	for _, r := range regs {
		to, err := jid.Parse(r.Service)
		if err != nil {
			continue
		}
		payload := s.payload(r, count, sum)
		k := key{r.Service, r.Node}
		err = s.router.RequestFrom(ctx, from, "set", to, xml.NewDecoder(bytes.NewReader(payload)), s.opts.Timeout,
			func(ctx context.Context, reply *router.Stanza, err error) { s.answered(ctx, user, k, reply, err) })
		if err != nil {
			s.log.Warn("push notification not sent", "user", user, "service", r.Service, "err", err)
		}
	}
}

// registrations returns user's registrations, reading them on first need.
func (s *Service) registrations(ctx context.Context, user string) ([]storage.PushRegistration, error) {
	s.mu.Lock()
	a := s.accounts[user]
	if a != nil && a.loaded {
		regs := append([]storage.PushRegistration(nil), a.regs...)
		s.mu.Unlock()
		return regs, nil
	}
	s.mu.Unlock()
	s.change.Lock()
	defer s.change.Unlock()
	s.mu.Lock()
	a = s.accounts[user]
	loaded := a != nil && a.loaded
	s.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	if !loaded {
		regs, err := s.store.List(ctx, user)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		a.regs, a.loaded = regs, true
		if len(regs) == 0 {
			delete(s.accounts, user)
			s.owners.Store(int64(len(s.accounts)))
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]storage.PushRegistration(nil), a.regs...), nil
}

// payload is the pubsub publish of a notification (§7, Example 8).
func (s *Service) payload(r storage.PushRegistration, count int64, sum summary) []byte {
	var b strings.Builder
	b.WriteString("<pubsub xmlns='" + NSPubsub + "'><publish node='")
	escape(&b, r.Node)
	b.WriteString("'><item><notification xmlns='" + NS + "'><x xmlns='jabber:x:data' type='submit'>")
	field := func(name, value string) {
		b.WriteString("<field var='" + name + "'><value>")
		escape(&b, value)
		b.WriteString("</value></field>")
	}
	field("FORM_TYPE", NSSummary)
	field("message-count", strconv.FormatInt(count, 10))
	if sum.sender != "" {
		field("last-message-sender", sum.sender)
	}
	if s.opts.IncludeBody && sum.body != "" {
		field("last-message-body", sum.body)
	}
	b.WriteString("</x></notification></item></publish>")
	if r.Options != "" {
		b.WriteString("<publish-options>" + r.Options + "</publish-options>")
	}
	b.WriteString("</pubsub>")
	return []byte(b.String())
}

// answered handles the app server's answer to a notification: a result
// clears the registration's failures; an error that says the app server
// no longer takes them removes the registration; a wait error other than
// an unreachable server (a busy app server) counts for nothing; an
// unreachable app server or no answer counts as a failure, and
// MaxFailures in a row remove it.
func (s *Service) answered(ctx context.Context, user string, k key, reply *router.Stanza, err error) {
	switch {
	case err == nil && reply.Type == "result":
		s.mu.Lock()
		if a := s.accounts[user]; a != nil {
			delete(a.failures, k)
		}
		s.mu.Unlock()
		return
	case err != nil && !errors.Is(err, router.ErrRequestTimeout):
		return
	}
	why := "no answer"
	transient := true
	if err == nil {
		typ, cond := stanzaError(reply)
		why = typ + "/" + cond
		if typ == "wait" && !strings.HasPrefix(cond, "remote-server-") {
			// The app server is busy (a rate limit): it still takes
			// notifications, so this counts against nothing (as in
			// Prosody); a burst of messages must not unregister a phone.
			s.log.Debug("push notification deferred by the app server", "user", user, "service", k.service, "why", why)
			return
		}
		transient = strings.HasPrefix(cond, "remote-server-")
	}
	if transient {
		s.mu.Lock()
		n := 0
		if a := s.accounts[user]; a != nil {
			if a.failures == nil {
				a.failures = map[key]int{}
			}
			a.failures[k]++
			n = a.failures[k]
		}
		s.mu.Unlock()
		if n < s.opts.MaxFailures {
			s.log.Debug("push notification failed", "user", user, "service", k.service, "why", why, "failures", n)
			return
		}
	}
	s.change.Lock()
	defer s.change.Unlock()
	if _, err := s.store.Disable(ctx, user, k.service, k.node); err != nil {
		s.storeLog.Fail(err, "user", user)
		return
	}
	s.forgetLocked(user, k.service, k.node)
	s.log.Info("push registration removed: the app server refused a notification", "user", user, "service", k.service, "why", why)
}

// stanzaError returns the type and condition of an error stanza.
func stanzaError(st *router.Stanza) (typ, cond string) {
	d := st.Decoder()
	depth := 0
	inError := false
	for {
		tok, err := d.Token()
		if err != nil {
			return typ, cond
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Local == "error":
				inError = true
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "type" {
						typ = a.Value
					}
				}
			case depth == 3 && inError && t.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && t.Name.Local != "text":
				cond = t.Name.Local
			}
		case xml.EndElement:
			depth--
			if depth == 1 {
				inError = false
			}
		}
	}
}
