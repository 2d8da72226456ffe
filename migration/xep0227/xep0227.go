// Package xep0227 reads and writes XEP-0227 portable import/export files
// (urn:xmpp:pie:0): one host's users with their credentials, rosters,
// offline messages, vCards and private XML, to and from migration.Data.
//
// Credentials are written as Prosody's mod_storage_xep0227 and Tigase
// write them, one <scram-credentials xmlns='urn:xmpp:pie:0#scram'
// mechanism='SCRAM-SHA-1'/> per mechanism with base64 <salt/>,
// <server-key/>, <stored-key/> and an <iter-count/>; a plaintext
// password attribute on <user/> is read too (XEP-0227 §4). Roster state
// that jabber:iq:roster cannot say (pending inbound requests,
// pre-approval, rows kept only for a request) travels in attributes of
// xmppd's own namespace, which other servers ignore.
//
// The reader is built for files from elsewhere: see migration.SafeDecoder.
package xep0227

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// Namespaces of the format.
const (
	NS        = "urn:xmpp:pie:0"
	NSSCRAM   = "urn:xmpp:pie:0#scram"
	NSRoster  = "jabber:iq:roster"
	NSPrivate = "jabber:iq:private"
	NSVCard   = "vcard-temp"
	NSClient  = "jabber:client"
	NSDelay   = "urn:xmpp:delay"
	// NSXMPPD holds the roster attributes jabber:iq:roster has no word
	// for, and the account's creation time.
	NSXMPPD = "https://xmppd.dev/ns/pie"
)

// Read reads a XEP-0227 file from r (named name in errors). The file must
// hold exactly one <host/>: xmppd serves one domain. Nothing is returned
// unless the whole file parsed.
func Read(r io.Reader, name string) (*migration.Data, error) {
	s := migration.NewSafeDecoder(r, name, migration.XMLLimits{RecordDepth: 3})
	d := &migration.Data{}
	root := false
	hosts := 0
	for {
		tok, err := s.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case !root:
			if start.Name != (xml.Name{Space: NS, Local: "server-data"}) {
				return nil, s.Errorf("the root element is <%s xmlns='%s'>, not XEP-0227's <server-data xmlns='%s'>", start.Name.Local, start.Name.Space, NS)
			}
			root = true
		case start.Name == xml.Name{Space: NS, Local: "host"}:
			hosts++
			if hosts > 1 {
				return nil, s.Errorf("a second <host/>: xmppd serves one domain; split the file")
			}
			d.Domain = attr(start, "", "jid")
			if d.Domain == "" {
				return nil, s.Errorf("<host/> without a jid")
			}
			if err := readHost(s, d); err != nil {
				return nil, err
			}
		default:
			d.Skipped = append(d.Skipped, fmt.Sprintf("<%s xmlns='%s'> under <server-data/>: not read", start.Name.Local, start.Name.Space))
			if err := s.Skip(); err != nil {
				return nil, err
			}
		}
	}
	if hosts == 0 {
		return nil, fmt.Errorf("%s: no <host/> in the file", name)
	}
	return d, nil
}

func readHost(s *migration.SafeDecoder, d *migration.Data) error {
	for {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NS, Local: "user"}) {
				d.Skipped = append(d.Skipped, fmt.Sprintf("<%s xmlns='%s'> under <host/>: not read", t.Name.Local, t.Name.Space))
				if err := s.Skip(); err != nil {
					return err
				}
				continue
			}
			u, err := readUser(s, d.Domain, t, &d.Skipped)
			if err != nil {
				return err
			}
			d.Users = append(d.Users, u)
		}
	}
}

func readUser(s *migration.SafeDecoder, domain string, start xml.StartElement, skipped *[]string) (migration.User, error) {
	u := migration.User{Username: attr(start, "", "name"), Password: attr(start, "", "password")}
	if u.Username == "" {
		return u, s.Errorf("<user/> without a name")
	}
	if c := attr(start, NSXMPPD, "created"); c != "" {
		t, err := time.Parse(time.RFC3339Nano, c)
		if err != nil {
			return u, s.Errorf("user %s: created %q is not a date", u.Username, c)
		}
		u.CreatedAt = t.UTC()
	}
	for {
		tok, err := s.Token()
		if err != nil {
			return u, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if u.Password == "" && len(u.Credentials) == 0 {
				u.PasswordProblem = "the file has neither a password nor SCRAM credentials for it"
			}
			return u, nil
		case xml.StartElement:
			var err error
			switch t.Name {
			case xml.Name{Space: NSSCRAM, Local: "scram-credentials"}:
				var c storage.Credential
				c, err = readSCRAM(s, t)
				if err == nil {
					if slices.ContainsFunc(u.Credentials, func(x storage.Credential) bool { return x.Mechanism == c.Mechanism }) {
						return u, s.Errorf("user %s: two %s credentials", u.Username, c.Mechanism)
					}
					u.Credentials = append(u.Credentials, c)
				}
			case xml.Name{Space: NSRoster, Local: "query"}:
				err = readRoster(s, &u)
			case xml.Name{Space: NS, Local: "offline-messages"}:
				err = readOffline(s, domain, &u)
			case xml.Name{Space: NSVCard, Local: "vCard"}:
				u.VCard, err = s.Raw(t)
			case xml.Name{Space: NSPrivate, Local: "query"}:
				err = readPrivate(s, &u)
			default:
				*skipped = append(*skipped, fmt.Sprintf("user %s: <%s xmlns='%s'>: not read", u.Username, t.Name.Local, t.Name.Space))
				err = s.Skip()
			}
			if err != nil {
				return u, err
			}
		}
	}
}

func readSCRAM(s *migration.SafeDecoder, start xml.StartElement) (storage.Credential, error) {
	c := storage.Credential{Mechanism: attr(start, "", "mechanism")}
	if c.Mechanism != "SCRAM-SHA-1" && c.Mechanism != "SCRAM-SHA-256" {
		return c, s.Errorf("scram-credentials for mechanism %q: only SCRAM-SHA-1 and SCRAM-SHA-256 are known", c.Mechanism)
	}
	for {
		tok, err := s.Token()
		if err != nil {
			return c, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if c.Iterations <= 0 || len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 {
				return c, s.Errorf("%s credentials lack iter-count, salt, server-key or stored-key", c.Mechanism)
			}
			return c, nil
		case xml.StartElement:
			text, err := s.Text()
			if err != nil {
				return c, err
			}
			text = strings.TrimSpace(text)
			switch t.Name.Local {
			case "iter-count":
				c.Iterations, err = strconv.Atoi(text)
			case "salt":
				c.Salt, err = base64.StdEncoding.DecodeString(text)
			case "server-key":
				c.ServerKey, err = base64.StdEncoding.DecodeString(text)
			case "stored-key":
				c.StoredKey, err = base64.StdEncoding.DecodeString(text)
			}
			if err != nil {
				return c, s.Errorf("%s credentials: <%s/> %q: %v", c.Mechanism, t.Name.Local, text, err)
			}
		}
	}
}

func readRoster(s *migration.SafeDecoder, u *migration.User) error {
	for {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NSRoster, Local: "item"}) {
				if err := s.Skip(); err != nil {
					return err
				}
				continue
			}
			it := storage.RosterItem{
				Contact:      attr(t, "", "jid"),
				Name:         attr(t, "", "name"),
				Subscription: attr(t, "", "subscription"),
				Ask:          attr(t, "", "ask") == "subscribe",
				PendingIn:    attr(t, NSXMPPD, "pending-in") == "true",
				Approved:     attr(t, NSXMPPD, "approved") == "true" || attr(t, "", "approved") == "true",
				Visible:      attr(t, NSXMPPD, "visible") != "false",
				Request:      attr(t, NSXMPPD, "request"),
			}
			switch it.Subscription {
			case "":
				it.Subscription = "none"
			case "none", "to", "from", "both":
			case "remove":
				it.Contact = ""
			default:
				return s.Errorf("user %s: roster item %s: subscription %q", u.Username, it.Contact, it.Subscription)
			}
			groups, err := s.ChildTexts("group")
			if err != nil {
				return err
			}
			it.Groups = append(it.Groups, groups...)
			if it.Contact != "" {
				u.Roster = append(u.Roster, it)
			}
		}
	}
}

func readOffline(s *migration.SafeDecoder, domain string, u *migration.User) error {
	for {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NSClient, Local: "message"}) {
				if err := s.Skip(); err != nil {
					return err
				}
				continue
			}
			m, err := readMessage(s, domain, t)
			if err != nil {
				return err
			}
			u.Offline = append(u.Offline, m)
		}
	}
}

// readMessage reads an offline message as xmppd stores one (serialised
// with jabber:client the default namespace), taking its stamp from, and
// dropping, the server's own <delay/> (from the host, or from no one).
func readMessage(s *migration.SafeDecoder, domain string, start xml.StartElement) (storage.OfflineMessage, error) {
	var m storage.OfflineMessage
	enc := xmlenc.Encoder{Default: NSClient}
	if err := enc.EncodeToken(start); err != nil {
		return m, s.Errorf("message: %v", err)
	}
	for depth := 1; depth > 0; {
		tok, err := s.Token()
		if err != nil {
			return m, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && m.Stamp.IsZero() && t.Name == (xml.Name{Space: NSDelay, Local: "delay"}) {
				if from := attr(t, "", "from"); from == "" || from == domain {
					st, err := time.Parse(time.RFC3339Nano, attr(t, "", "stamp"))
					if err != nil {
						return m, s.Errorf("message: delay stamp %q: %v", attr(t, "", "stamp"), err)
					}
					m.Stamp = st.UTC()
					if err := s.Skip(); err != nil {
						return m, err
					}
					continue
				}
			}
			depth++
		case xml.EndElement:
			depth--
		}
		if err := enc.EncodeToken(tok); err != nil {
			return m, s.Errorf("message: %v", err)
		}
	}
	if m.Stamp.IsZero() {
		m.Stamp = time.Now().UTC().Truncate(time.Millisecond)
	}
	m.Stanza = bytes.Clone(enc.Buf)
	return m, nil
}

func readPrivate(s *migration.SafeDecoder, u *migration.User) error {
	for {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			enc := xmlenc.Encoder{Default: NSPrivate}
			if err := enc.EncodeToken(t); err != nil {
				return s.Errorf("private XML: %v", err)
			}
			for depth := 1; depth > 0; {
				tok, err := s.Token()
				if err != nil {
					return err
				}
				switch tok.(type) {
				case xml.StartElement:
					depth++
				case xml.EndElement:
					depth--
				}
				if err := enc.EncodeToken(tok); err != nil {
					return s.Errorf("private XML: %v", err)
				}
			}
			if u.Private == nil {
				u.Private = map[string][]byte{}
			}
			u.Private[t.Name.Space] = append(u.Private[t.Name.Space], enc.Buf...)
		}
	}
}

func attr(e xml.StartElement, space, local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == space {
			return a.Value
		}
	}
	return ""
}

// Write writes d as a XEP-0227 file to w: one <host/>, its users with
// their SCRAM credentials (and password, where d has one), roster,
// offline messages (each with a <delay/> from the host giving when it
// was stored), vCard and private XML.
func Write(w io.Writer, d *migration.Data) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte
	b = append(b, "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='"+NS+"' xmlns:xmppd='"+NSXMPPD+"'>\n<host jid='"...)
	b = migration.AppendEscaped(b, d.Domain)
	b = append(b, "'>\n"...)
	for i := range d.Users {
		b = appendUser(b, d.Domain, &d.Users[i])
		if len(b) > 32<<10 {
			if _, err := bw.Write(b); err != nil {
				return fmt.Errorf("xep0227: write: %w", err)
			}
			b = b[:0]
		}
	}
	b = append(b, "</host>\n</server-data>\n"...)
	if _, err := bw.Write(b); err != nil {
		return fmt.Errorf("xep0227: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("xep0227: write: %w", err)
	}
	return nil
}

func appendUser(b []byte, domain string, u *migration.User) []byte {
	b = append(b, "<user name='"...)
	b = migration.AppendEscaped(b, u.Username)
	b = append(b, '\'')
	if u.Password != "" {
		b = append(b, " password='"...)
		b = migration.AppendEscaped(b, u.Password)
		b = append(b, '\'')
	}
	if !u.CreatedAt.IsZero() {
		b = append(b, " xmppd:created='"...)
		b = append(b, u.CreatedAt.UTC().Format(time.RFC3339Nano)...)
		b = append(b, '\'')
	}
	b = append(b, ">\n"...)
	for _, c := range u.Credentials {
		b = fmt.Appendf(b, "<scram-credentials xmlns='%s' mechanism='", NSSCRAM)
		b = migration.AppendEscaped(b, c.Mechanism)
		b = fmt.Appendf(b, "'><iter-count>%d</iter-count><salt>%s</salt><server-key>%s</server-key><stored-key>%s</stored-key></scram-credentials>\n",
			c.Iterations, base64.StdEncoding.EncodeToString(c.Salt),
			base64.StdEncoding.EncodeToString(c.ServerKey), base64.StdEncoding.EncodeToString(c.StoredKey))
	}
	if len(u.Roster) > 0 {
		b = append(b, "<query xmlns='"+NSRoster+"'>\n"...)
		for _, it := range u.Roster {
			b = appendAttrs(b, "<item", "jid", it.Contact)
			if it.Name != "" {
				b = appendAttrs(b, "", "name", it.Name)
			}
			sub := it.Subscription
			if sub == "" {
				sub = "none"
			}
			b = appendAttrs(b, "", "subscription", sub)
			if it.Ask {
				b = append(b, " ask='subscribe'"...)
			}
			if it.PendingIn {
				b = append(b, " xmppd:pending-in='true'"...)
			}
			if it.Approved {
				b = append(b, " approved='true'"...)
			}
			if !it.Visible {
				b = append(b, " xmppd:visible='false'"...)
			}
			if it.Request != "" {
				b = appendAttrs(b, "", "xmppd:request", it.Request)
			}
			b = append(b, '>')
			for _, g := range it.Groups {
				b = append(b, "<group>"...)
				b = migration.AppendEscaped(b, g)
				b = append(b, "</group>"...)
			}
			b = append(b, "</item>\n"...)
		}
		b = append(b, "</query>\n"...)
	}
	if len(u.Offline) > 0 {
		b = append(b, "<offline-messages>\n"...)
		for _, m := range u.Offline {
			b = appendMessage(b, domain, m)
			b = append(b, '\n')
		}
		b = append(b, "</offline-messages>\n"...)
	}
	if len(u.VCard) > 0 {
		b = append(b, u.VCard...) // stored with its namespace declared
		b = append(b, '\n')
	}
	if len(u.Private) > 0 {
		b = append(b, "<query xmlns='"+NSPrivate+"'>"...)
		nss := make([]string, 0, len(u.Private))
		for ns := range u.Private {
			nss = append(nss, ns)
		}
		slices.Sort(nss)
		for _, ns := range nss {
			b = append(b, u.Private[ns]...) // each element declares its namespace
		}
		b = append(b, "</query>\n"...)
	}
	return append(b, "</user>\n"...)
}

// appendMessage appends m's stanza (stored with jabber:client implied)
// declaring jabber:client, with a <delay/> from domain stamped when it
// was stored as its last child.
func appendMessage(b []byte, domain string, m storage.OfflineMessage) []byte {
	st := m.Stanza
	rest, ok := bytes.CutPrefix(st, []byte("<message"))
	if !ok {
		return b // not a message as xmppd stores them; cannot happen
	}
	b = append(b, "<message xmlns='"+NSClient+"'"...)
	delay := appendAttrs(nil, "<delay xmlns='"+NSDelay+"'", "from", domain)
	delay = appendAttrs(delay, "", "stamp", m.Stamp.UTC().Format("2006-01-02T15:04:05.000Z"))
	delay = append(delay, "/>"...)
	if body, ok := bytes.CutSuffix(rest, []byte("/>")); ok && !bytes.HasSuffix(rest, []byte("</message>")) {
		b = append(b, body...)
		b = append(b, '>')
		b = append(b, delay...)
		return append(b, "</message>"...)
	}
	body, _ := bytes.CutSuffix(rest, []byte("</message>"))
	b = append(b, body...)
	b = append(b, delay...)
	return append(b, "</message>"...)
}

func appendAttrs(b []byte, prefix, name, value string) []byte {
	b = append(b, prefix...)
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = migration.AppendEscaped(b, value)
	return append(b, '\'')
}
