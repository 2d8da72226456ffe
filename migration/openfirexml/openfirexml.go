// Package openfirexml reads the XML file of Openfire's User
// Import/Export plugin into migration.Data:
//
//	<Openfire>
//	  <User>
//	    <Username>alice</Username>
//	    <Password>secret</Password>
//	    <Email>alice@example.org</Email>
//	    <Name>Alice</Name>
//	    <CreationDate>1700000000000</CreationDate>
//	    <ModifiedDate>1700000000000</ModifiedDate>
//	    <Roster>
//	      <Item jid="bob@example.org" askstatus="-1" recvstatus="-1" substatus="3" name="Bob">
//	        <Group>Friends</Group>
//	      </Item>
//	    </Roster>
//	  </User>
//	</Openfire>
//
// The plugin writes the password only where Openfire can reveal it (a
// plain or encrypted one, not SCRAM keys alone); a user without one is
// reported as unable to keep its password. The file carries no domain:
// the caller gives it. Status codes are Openfire's RosterItem values:
// substatus -1 remove, 0 none, 1 to, 2 from, 3 both; askstatus -1 none,
// 0 subscribe, 1 unsubscribe; recvstatus -1 none, 1 subscribe,
// 2 unsubscribe.
package openfirexml

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// Read reads a User Import/Export file from r (named name in errors) for
// the users of domain. Nothing is returned unless the whole file parsed.
func Read(r io.Reader, name, domain string) (*migration.Data, error) {
	s := migration.NewSafeDecoder(r, name, migration.XMLLimits{RecordDepth: 2})
	d := &migration.Data{Domain: domain}
	root := false
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
			if start.Name.Local != "Openfire" {
				return nil, s.Errorf("the root element is <%s>, not the User Import/Export plugin's <Openfire>", start.Name.Local)
			}
			root = true
		case start.Name.Local == "User":
			u, err := readUser(s, d)
			if err != nil {
				return nil, err
			}
			d.Users = append(d.Users, u)
		default:
			d.Skipped = append(d.Skipped, fmt.Sprintf("<%s> under <Openfire>: not read", start.Name.Local))
			if err := s.Skip(); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

func readUser(s *migration.SafeDecoder, d *migration.Data) (migration.User, error) {
	var u migration.User
	for {
		tok, err := s.Token()
		if err != nil {
			return u, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if u.Username == "" {
				return u, s.Errorf("a <User> without a <Username>")
			}
			if u.Password == "" {
				u.PasswordProblem = "the export file has no password for it (Openfire exports none when it keeps SCRAM keys only)"
			}
			return u, nil
		case xml.StartElement:
			if t.Name.Local == "Roster" {
				if err := readRoster(s, &u); err != nil {
					return u, err
				}
				continue
			}
			text, err := s.Text()
			if err != nil {
				return u, err
			}
			switch t.Name.Local {
			case "Username":
				u.Username = strings.TrimSpace(text)
			case "Password":
				u.Password = text
			case "Email":
				u.Email = strings.TrimSpace(text)
			case "Name":
				u.Name = strings.TrimSpace(text)
			case "CreationDate":
				u.CreatedAt, _ = parseDate(text) // unknown forms leave it to the import's time
			}
		}
	}
}

// parseDate reads the plugin's dates: milliseconds since the epoch, or
// (older versions) a formatted date.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "Jan 2, 2006 3:04:05 PM", time.UnixDate, "Mon Jan 02 15:04:05 MST 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q", s)
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
			if t.Name.Local != "Item" {
				if err := s.Skip(); err != nil {
					return err
				}
				continue
			}
			it, keep, err := item(s, t, u.Username)
			if err != nil {
				return err
			}
			groups, err := s.ChildTexts("Group")
			if err != nil {
				return err
			}
			for _, name := range groups {
				if name = strings.TrimSpace(name); name != "" {
					it.Groups = append(it.Groups, name)
				}
			}
			if keep {
				u.Roster = append(u.Roster, it)
			}
		}
	}
}

// item maps an <Item>'s attributes to a roster item; keep is false for
// an item Openfire was removing (substatus -1).
func item(s *migration.SafeDecoder, t xml.StartElement, user string) (it storage.RosterItem, keep bool, err error) {
	it.Visible = true
	num := func(name string, def int) (int, error) {
		v := attr(t, name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, s.Errorf("user %s: roster item: %s=%q is not a number", user, name, v)
		}
		return n, nil
	}
	it.Contact = strings.TrimSpace(attr(t, "jid"))
	it.Name = attr(t, "name")
	if it.Contact == "" {
		return it, false, s.Errorf("user %s: roster item without jid", user)
	}
	sub, err := num("substatus", 0)
	if err != nil {
		return it, false, err
	}
	ask, err := num("askstatus", -1)
	if err != nil {
		return it, false, err
	}
	recv, err := num("recvstatus", -1)
	if err != nil {
		return it, false, err
	}
	switch sub {
	case -1:
		return it, false, nil
	case 0:
		it.Subscription = "none"
	case 1:
		it.Subscription = "to"
	case 2:
		it.Subscription = "from"
	case 3:
		it.Subscription = "both"
	default:
		return it, false, s.Errorf("user %s: roster item %s: substatus %d", user, it.Contact, sub)
	}
	// Openfire's ASK_SUBSCRIBE is 0: the user asked to subscribe.
	it.Ask = ask == 0 && (it.Subscription == "none" || it.Subscription == "from")
	// RECV_SUBSCRIBE is 1: the contact asked; no answer yet.
	it.PendingIn = recv == 1 && (it.Subscription == "none" || it.Subscription == "to")
	// A contact's request alone, not answered and not in the roster the
	// user sees: kept for the request (the server presents it again).
	it.Visible = !(it.PendingIn && it.Subscription == "none" && !it.Ask)
	return it, true, nil
}

func attr(e xml.StartElement, local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
