package xmpptest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"slices"
	"strings"
)

// CapsNode is the caps node (XEP-0115 §4) of test clients.
const CapsNode = "https://xmppd.dev/xmpptest"

// Namespaces a test client's disco#info always lists, as real clients do.
const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// capsFeatures is the sorted feature list of a client supporting features.
func capsFeatures(features []string) []string {
	fs := append([]string{nsCaps, nsDiscoInfo}, features...)
	slices.Sort(fs)
	return slices.Compact(fs)
}

// CapsVer is the sha-1 verification string (XEP-0115 §5.1) of a test
// client's disco#info: the identity client/pc named "xmpptest", caps and
// disco#info, and features (for PEP, "node+notify"). It is computed here
// and not by package caps, so that a test does not check the server's
// hashing against itself.
func CapsVer(features ...string) string {
	var b strings.Builder
	b.WriteString("client/pc//xmpptest<")
	for _, f := range capsFeatures(features) {
		b.WriteString(f)
		b.WriteByte('<')
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// capsInfo is the <query/> a test client answers disco#info on node with.
func capsInfo(node string, features []string) string {
	var b strings.Builder
	b.WriteString("<query xmlns='" + nsDiscoInfo + "' node='" + escape(node) + "'><identity category='client' type='pc' name='xmpptest'/>")
	for _, f := range capsFeatures(features) {
		b.WriteString("<feature var='" + escape(f) + "'/>")
	}
	b.WriteString("</query>")
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ServeCaps makes the client answer disco#info for its caps node and the
// ver of features (CapsVer), from now until it closes, and returns the
// <c/> element to put in its presence. The answer is sent by the
// client's reading goroutine as soon as the server's query arrives, and
// the query is not queued for Next or Expect (CapsQueries counts them).
func (c *Client) ServeCaps(features ...string) string {
	return c.ServeCapsVer(CapsVer(features...), features...)
}

// ServeCapsVer is ServeCaps announcing ver whatever features hash to: a
// ver other than CapsVer(features...) is a forged one.
func (c *Client) ServeCapsVer(ver string, features ...string) string {
	node := CapsNode + "#" + ver
	c.mu.Lock()
	if c.caps == nil {
		c.caps = map[string]string{}
	}
	c.caps[node] = capsInfo(node, features)
	c.mu.Unlock()
	return "<c xmlns='" + nsCaps + "' hash='sha-1' node='" + CapsNode + "' ver='" + escape(ver) + "'/>"
}

// AnnounceCaps sends an available presence with the caps of features
// (ServeCaps) and returns their ver. The server knows the features once
// it has the answer to its query, or at once when it had the ver cached:
// SyncCaps waits for either.
func (c *Client) AnnounceCaps(features ...string) string {
	c.t.Helper()
	ver := CapsVer(features...)
	c.Send("<presence>%s</presence>", c.ServeCaps(features...))
	return ver
}

// SyncCaps returns once the server has handled the client's caps
// announced so far, with everything received meanwhile. Two Syncs: the
// server asks for the features while it handles the presence, before the
// first ping, and the client answers while it reads, before it reads the
// first pong; the server handles that answer (and what knowing the caps
// sends, such as PEP's last items) before the second ping. A ver another
// session is being asked for is known once that session has answered.
func (c *Client) SyncCaps() []Element {
	c.t.Helper()
	got := c.Sync()
	return append(got, c.Sync()...)
}

// IsCapsQuery matches the server's disco#info query for a test client's
// caps of ver, for tests that answer it themselves (AnswerCaps) to see
// what happens before the server knows the caps.
func IsCapsQuery(ver string) func(Element) bool {
	return func(e Element) bool {
		return e.Name.Local == "iq" && e.Attrs["type"] == "get" &&
			e.Inner == "<query xmlns='"+nsDiscoInfo+"' node='"+escape(CapsNode+"#"+ver)+"'></query>"
	}
}

// AnswerCaps answers the server's caps query q (see IsCapsQuery) with
// features, and syncs: when it returns, the server has taken the answer.
// It returns what was received meanwhile.
func (c *Client) AnswerCaps(q Element, features ...string) []Element {
	c.t.Helper()
	node, _ := infoNode(q)
	c.Send("<iq type='result' id='%s' to='%s'>%s</iq>", escape(q.Attrs["id"]), escape(q.Attrs["from"]), capsInfo(node, features))
	return c.Sync()
}

// CapsQueries counts the server's disco#info queries that the client
// answered for its caps.
func (c *Client) CapsQueries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capsQueries
}

// infoNode returns the node of a disco#info IQ e, if it is one.
func infoNode(e Element) (string, bool) {
	if e.Name.Local != "iq" || !strings.HasPrefix(e.Inner, "<query xmlns='"+nsDiscoInfo+"'") {
		return "", false
	}
	tok, err := xml.NewDecoder(strings.NewReader(e.Inner)).Token()
	if err != nil {
		return "", false
	}
	for _, a := range tok.(xml.StartElement).Attr {
		if a.Name.Space == "" && a.Name.Local == "node" {
			return a.Value, true
		}
	}
	return "", true
}

// answerCaps answers e if it is the server's disco#info query for a caps
// node the client serves, and reports whether it did. It runs on the
// reading goroutine.
func (c *Client) answerCaps(e Element) bool {
	node, ok := infoNode(e)
	if !ok || e.Attrs["type"] != "get" {
		return false
	}
	c.mu.Lock()
	info, ok := c.caps[node]
	if ok {
		c.capsQueries++
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	// A failed write means the stream is ending; the test sees that.
	c.write("<iq type='result' id='" + escape(e.Attrs["id"]) + "' to='" + escape(e.Attrs["from"]) + "'>" + info + "</iq>")
	return true
}
