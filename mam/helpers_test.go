package mam_test

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 10 * time.Second

// engines runs f on SQLite and on PostgreSQL.
func engines(t *testing.T, f func(t *testing.T, opts ...xmpptest.Option)) {
	t.Run("sqlite", func(t *testing.T) { f(t) })
	t.Run("postgres", func(t *testing.T) { f(t, xmpptest.WithPostgres(t)) })
}

// user is a logged-in client with its password, to log in again.
type user struct {
	*xmpptest.Client
	name string
	res  string
	n    int
}

func login(t *testing.T, srv *xmpptest.Server, name, res string) *user {
	t.Helper()
	j, err := jid.Parse(name + "@localhost")
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Login(t, j, "pw", xmpptest.LoginOptions{Resource: res})
	return &user{Client: c, name: name, res: res}
}

func addUsers(t *testing.T, srv *xmpptest.Server, names ...string) {
	t.Helper()
	for _, n := range names {
		srv.AddUser(t, n, "pw")
	}
}

// online sends initial presence, so that messages to the bare JID reach
// the session (RFC 6121 §8.5.2.1.1).
func (u *user) online() *user {
	u.Send("<presence/>")
	u.Sync()
	return u
}

// archived is one result of a query, as the client got it.
type archived struct {
	QueryID string
	ID      string
	From    string // the archive that answered
	Stamp   string
	MsgFrom string
	MsgTo   string
	Body    string
	Raw     string
}

// fin is the end of a query.
type fin struct {
	Complete bool
	First    string
	Last     string
	Count    string
	Err      string // the error condition, when the query failed
	Raw      string
}

// queryOpts is one query: its form fields (var → values) and RSM.
type queryOpts struct {
	to     string
	fields [][2]string // var, value; a var may repeat (ids)
	max    int         // -1: no max
	after  string
	before *string // nil: none; "": <before/>
	flip   bool
}

func opts(max int) queryOpts { return queryOpts{max: max} }

func (o queryOpts) with(k, v string) queryOpts {
	o.fields = append(o.fields, [2]string{k, v})
	return o
}

func ptr(s string) *string { return &s }

// query runs one archive query and returns its results and its end.
func (u *user) query(t *testing.T, o queryOpts) ([]archived, fin) {
	t.Helper()
	u.n++
	id := fmt.Sprintf("q%d", u.n)
	qid := fmt.Sprintf("qid%d", u.n)
	var b strings.Builder
	to := ""
	if o.to != "" {
		to = " to='" + o.to + "'"
	}
	fmt.Fprintf(&b, "<iq type='set' id='%s'%s><query xmlns='urn:xmpp:mam:2' queryid='%s'>", id, to, qid)
	if len(o.fields) > 0 {
		b.WriteString("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>")
		byVar := map[string][]string{}
		var order []string
		for _, f := range o.fields {
			if _, ok := byVar[f[0]]; !ok {
				order = append(order, f[0])
			}
			byVar[f[0]] = append(byVar[f[0]], f[1])
		}
		for _, v := range order {
			fmt.Fprintf(&b, "<field var='%s'>", v)
			for _, val := range byVar[v] {
				fmt.Fprintf(&b, "<value>%s</value>", val)
			}
			b.WriteString("</field>")
		}
		b.WriteString("</x>")
	}
	if o.max >= 0 || o.after != "" || o.before != nil {
		b.WriteString("<set xmlns='http://jabber.org/protocol/rsm'>")
		if o.max >= 0 {
			fmt.Fprintf(&b, "<max>%d</max>", o.max)
		}
		if o.after != "" {
			fmt.Fprintf(&b, "<after>%s</after>", o.after)
		}
		if o.before != nil {
			fmt.Fprintf(&b, "<before>%s</before>", *o.before)
		}
		b.WriteString("</set>")
	}
	if o.flip {
		b.WriteString("<flip-page/>")
	}
	b.WriteString("</query></iq>")
	u.Send("%s", b.String())
	var out []archived
	deadline := time.After(wait)
	for {
		var e xmpptest.Element
		select {
		case e = <-u.Elements():
		case <-deadline:
			t.Fatalf("%s: no answer to query %s", u.name, id)
		}
		if e.Name.Local == "iq" && e.Attr("id") == id {
			return out, parseFin(t, e)
		}
		if e.Name.Local == "message" && strings.Contains(e.Raw, "urn:xmpp:mam:2") {
			a := parseResult(t, e)
			if a.QueryID != qid {
				t.Errorf("result with queryid %q, want %q: %s", a.QueryID, qid, e.Raw)
			}
			out = append(out, a)
		}
	}
}

func parseResult(t *testing.T, e xmpptest.Element) archived {
	t.Helper()
	var m struct {
		From   string `xml:"from,attr"`
		Result struct {
			QueryID string `xml:"queryid,attr"`
			ID      string `xml:"id,attr"`
			Fwd     struct {
				Delay struct {
					Stamp string `xml:"stamp,attr"`
				} `xml:"delay"`
				Msg struct {
					From string `xml:"from,attr"`
					To   string `xml:"to,attr"`
					Body string `xml:"body"`
				} `xml:"message"`
			} `xml:"forwarded"`
		} `xml:"result"`
	}
	if err := xml.Unmarshal([]byte(e.Raw), &m); err != nil {
		t.Fatalf("result %s: %v", e.Raw, err)
	}
	r := m.Result
	return archived{QueryID: r.QueryID, ID: r.ID, From: m.From, Stamp: r.Fwd.Delay.Stamp,
		MsgFrom: r.Fwd.Msg.From, MsgTo: r.Fwd.Msg.To, Body: r.Fwd.Msg.Body, Raw: e.Raw}
}

func parseFin(t *testing.T, e xmpptest.Element) fin {
	t.Helper()
	if e.Attr("type") == "error" {
		var iq struct {
			Error struct {
				Inner []struct{ XMLName xml.Name } `xml:",any"`
			} `xml:"error"`
		}
		xml.Unmarshal([]byte(e.Raw), &iq)
		cond := ""
		for _, c := range iq.Error.Inner {
			if c.XMLName.Local != "text" {
				cond = c.XMLName.Local
			}
		}
		return fin{Err: cond, Raw: e.Raw}
	}
	var iq struct {
		Fin struct {
			Complete string `xml:"complete,attr"`
			Set      struct {
				First string `xml:"first"`
				Last  string `xml:"last"`
				Count string `xml:"count"`
			} `xml:"set"`
		} `xml:"fin"`
	}
	if err := xml.Unmarshal([]byte(e.Raw), &iq); err != nil {
		t.Fatalf("fin %s: %v", e.Raw, err)
	}
	f := iq.Fin
	return fin{Complete: f.Complete == "true", First: f.Set.First, Last: f.Set.Last, Count: f.Set.Count, Raw: e.Raw}
}

func bodies(list []archived) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Body)
	}
	return out
}

// stanzaID returns the id of the <stanza-id by=by/> in a received
// message, "" when it has none.
func stanzaID(t *testing.T, raw, by string) string {
	t.Helper()
	var m struct {
		IDs []struct {
			XMLName xml.Name
			By      string `xml:"by,attr"`
			ID      string `xml:"id,attr"`
		} `xml:"stanza-id"`
	}
	if err := xml.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	id := ""
	for _, s := range m.IDs {
		if s.XMLName.Space == "urn:xmpp:sid:0" && s.By == by {
			if id != "" {
				t.Errorf("two stanza-ids by %s: %s", by, raw)
			}
			id = s.ID
		}
	}
	return id
}

func itoa(i int) string { return fmt.Sprint(i) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
