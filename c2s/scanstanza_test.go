package c2s

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
)

// chunkConn is a net.Conn that reads r in chunks of the sizes given, in
// turn, so that elements, names, references and characters are split
// between reads.
type chunkConn struct {
	net.Conn
	r     []byte
	sizes []int
	k     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.r) == 0 {
		return 0, io.EOF
	}
	n := min(c.sizes[c.k%len(c.sizes)], len(p), len(c.r))
	c.k++
	copy(p, c.r[:n])
	c.r = c.r[n:]
	return n, nil
}

// readResult is what reading one element gave: a stanza, a stanza error
// to answer, or the stream's end (closing reason and bytes).
type readResult struct {
	st     *router.Stanza
	answer string // the stanza error's condition
	reason CloseReason
	final  string
}

func (r readResult) String() string {
	switch {
	case r.st != nil:
		return fmt.Sprintf("stanza %s type=%q id=%q to=%q payload=%v %s", r.st.Kind, r.st.Type, r.st.ID, r.st.To, r.st.Payload, r.st.Raw)
	case r.answer != "":
		return "answer " + r.answer
	}
	return fmt.Sprintf("end %v %s", r.reason, r.final)
}

const testMaxStanza = 1 << 16

func classify(st *router.Stanza, err error) readResult {
	if se, ok := err.(stanzaError); ok {
		return readResult{answer: string(se.err.Condition)}
	}
	if err != nil {
		reason, final := classifyReadError(err, testMaxStanza)
		return readResult{reason: reason, final: string(final)}
	}
	return readResult{st: st}
}

// readFast reads in as the read loop does: the fast path, falling back to
// encoding/xml for what it leaves.
func readFast(in []byte, sizes []int, addr *addrCache) []readResult {
	g := newGuardConn(&chunkConn{r: in, sizes: sizes}, testMaxStanza)
	s := &Session{srv: &Server{Limits: Limits{MaxDepth: 8}}, conn: g, addr: addr}
	var out []readResult
	for {
		enc := newStanzaEncoder()
		st, consumed, err := enc.scan(g, addr, 8)
		if err == errSlowPath {
			st, err = s.readSlow(enc, consumed)
		}
		g.Reset()
		out = append(out, classify(st, err))
		if _, ok := err.(stanzaError); err != nil && !ok {
			return out
		}
	}
}

// readDecoder reads in with one encoding/xml decoder for the whole
// stream, as the read loop did before it had a fast path.
func readDecoder(in []byte, sizes []int, addr *addrCache) []readResult {
	g := newGuardConn(&chunkConn{r: in, sizes: sizes}, testMaxStanza)
	g.prefix = []byte(streamPrefix)
	d := xml.NewDecoder(g)
	var out []readResult
	if _, err := d.Token(); err != nil {
		panic(err)
	}
	for {
		tok, err := d.Token()
		var st *router.Stanza
		if err == nil {
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Space == nsStream {
					err = streamElement(d, t)
					break
				}
				st, err = newStanzaEncoder().read(d, t, addr, 8)
			case xml.EndElement:
				err = io.EOF
			case xml.CharData:
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					err = errTextAtTop
				} else {
					continue
				}
			default:
				err = errRestrictedXML
			}
		}
		g.Reset()
		out = append(out, classify(st, err))
		if _, ok := err.(stanzaError); err != nil && !ok {
			return out
		}
	}
}

// xmlTokens is a stanza's XML as a reader sees it: namespaces resolved,
// attributes sorted and without namespace declarations, adjacent text
// joined.
func xmlTokens(raw []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	var out []string
	var text []byte
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if t, ok := tok.(xml.CharData); ok {
			text = append(text, t...)
			continue
		}
		if text != nil {
			out = append(out, "text "+string(text))
			text = nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				attrs = append(attrs, a.Name.Space+" "+a.Name.Local+"="+a.Value)
			}
			slices.Sort(attrs)
			out = append(out, "start "+t.Name.Space+" "+t.Name.Local+" "+strings.Join(attrs, " "))
		case xml.EndElement:
			out = append(out, "end "+t.Name.Space+" "+t.Name.Local)
		default:
			return nil, fmt.Errorf("unexpected token %T", tok)
		}
	}
}

// sameRead reports why two reads of the same input differ, or "".
func sameRead(fast, slow []readResult) string {
	if len(fast) != len(slow) {
		return fmt.Sprintf("%d results, the decoder gave %d", len(fast), len(slow))
	}
	for i := range fast {
		f, s := fast[i], slow[i]
		if (f.st == nil) != (s.st == nil) || f.answer != s.answer || f.reason != s.reason || f.final != s.final {
			return fmt.Sprintf("result %d: %v, the decoder gave %v", i, f, s)
		}
		if f.st == nil {
			continue
		}
		a, b := *f.st, *s.st
		a.Raw, b.Raw = nil, nil
		if !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("stanza %d: %v, the decoder gave %v", i, f, s)
		}
		ft, err := xmlTokens(f.st.Raw)
		if err != nil {
			return fmt.Sprintf("stanza %d is not well-formed: %v: %s", i, err, f.st.Raw)
		}
		st, err := xmlTokens(s.st.Raw)
		if err != nil {
			return fmt.Sprintf("the decoder's stanza %d is not well-formed: %v: %s", i, err, s.st.Raw)
		}
		if !slices.Equal(ft, st) {
			return fmt.Sprintf("stanza %d reads as\n%q\nthe decoder's as\n%q", i, ft, st)
		}
	}
	return ""
}

var scanSeeds = []string{
	benchStanza,
	"<message to='alice@localhost/r' type='chat'><body>hi</body></message>",
	"<presence/><presence><priority>5</priority></presence><presence type='unavailable'/>",
	"<iq type='get' id='1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
	"<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq><iq type='result' id='3'/>",
	"\n <message to=\"bob@localhost\" id=\"x\"\n\ttype=\"chat\" ><body xml:lang=\"de\">Grüße &amp; &lt;3 &#x1F600; &#65;</body ></message >\n",
	"<message to='a@b@c'/>",
	"<message to='Bob@LOCALHOST/Res'><body/></message>",
	"<message from='mallory@localhost'/>",
	"<message from='alice@localhost'/><message from='alice@localhost/r'/>",
	"<!-- c -->",
	"<?php x ?>",
	"<!DOCTYPE x [<!ENTITY a 'b'>]>",
	"<message>&a;&#x0;&#65;</message>",
	"<message><![CDATA[<!-- -->]]></message>",
	"<message><body>a]]>b</body></message>",
	"<x:message xmlns:x='jabber:client'/>",
	"<message xmlns='jabber:server'/>",
	"<message xmlns='jabber:client' id='ns'/>",
	"<message><x:y xmlns:x='urn:x' x:a='1'/><z xmlns=''/></message>",
	"</stream:stream>",
	"</stream:stream >trailing",
	"</message>",
	"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
	"<stream:stream>",
	"text",
	"   text",
	"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
	"<iq type='set' id='s'><a/><b/></iq><iq type='get'><a/></iq><iq id='q' type='x'/><presence type='bogus'/>",
	"<message to='alice@localhost' xml:lang='en' a:b='c' xmlns:a='urn:x'><body>\xff\xfe</body></message>",
	"<message a='1' a='2'/>",
	"<message a='1'b='2'/>",
	"<message a='x\ny'/>",
	"<message a='it&apos;s'/>",
	"<message a=\"it's\" b='say \"hi\"' c='&gt;'/>",
	"<message><a><b><c><d><e><f><g><h><i/></h></g></f></e></d></c></b></a></message>",
	"<message><a><b><c><d><e><f><g/></f></e></d></c></b></a></message>",
	"<message><a></b></message>",
	"<message><a/ ></message>",
	"<message><é/></message>",
	"<message><body>\x01</body></message>",
	"<message><body>\uFFFE</body></message>",
	"<message><body>&#xFFFE;&#0;</body></message>",
	"<message><body>&#1114112;</body></message>",
	"<message><body>&#xD800;</body></message>",
	"<message><body>&amp</body></message>",
	"<message",
	"<message to='x'><body>unterminated",
	"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
}

// TestScanMatchesDecoder reads each seed, split every way that matters,
// with the read loop's fast path and with encoding/xml alone: the results
// (stanzas as a recipient reads them, answers, the stream's end) must be
// the same.
func TestScanMatchesDecoder(t *testing.T) {
	for _, seed := range scanSeeds {
		for _, sizes := range [][]int{{512}, {1}, {2}, {3, 7}, {13, 1, 64}} {
			checkScan(t, []byte(seed), sizes)
			checkScan(t, []byte(seed+seed+"</stream:stream>"), sizes)
		}
	}
}

// FuzzScan is TestScanMatchesDecoder over arbitrary input.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		hung := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("hung on %q", in)) })
		defer hung.Stop()
		checkScan(t, in, []int{int(size%64) + 1, 512})
	})
}

func checkScan(t *testing.T, in []byte, sizes []int) {
	t.Helper()
	newAddr := func() *addrCache { return newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}) }
	fast := readFast(in, sizes, newAddr())
	slow := readDecoder(in, sizes, newAddr())
	if why := sameRead(fast, slow); why != "" {
		t.Errorf("input %q, reads of %v: %s", in, sizes, why)
	}
}

// TestScanFastPath checks that the common shapes are read by the fast
// path and not left to encoding/xml.
func TestScanFastPath(t *testing.T) {
	for _, in := range []string{
		benchStanza,
		"<presence/>",
		"\n <message to=\"bob@localhost\" id=\"x\"\n\ttype=\"chat\" ><body xml:lang=\"de\">Grüße &amp; &lt;3 &#x1F600; &#65;</body ></message >",
		"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>",
	} {
		g := newGuardConn(&chunkConn{r: []byte(in), sizes: []int{5}}, 0)
		st, _, err := newStanzaEncoder().scan(g, newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}), 8)
		if err != nil || st == nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestScanSlowPath checks that what the fast path must not copy as it is
// goes to encoding/xml: forms that encoding/xml accepts although XML does
// not (a copy would pass them on to recipients), and forms it rewrites.
func TestScanSlowPath(t *testing.T) {
	for _, in := range []string{
		"<message><x a='1'b='2'/></message>",        // attributes not separated
		"<message><x a='1' a='2'/></message>",       // duplicate attribute
		"<message><x a='1\n2'/></message>",          // white space XML normalises
		"<message><p:x xmlns:p='urn:p'/></message>", // a prefix
		"<message><x xmlns=''/></message>",          // no namespace
		"<message><x><![CDATA[a]]></x></message>",   // CDATA
		"<message><é/></message>",                   // a non-ASCII name
		"<message><x/ ></message>",
		"<message><x></y></message>",
		"<message to='a&amp;b@localhost'/>", // an escaped header value
		"<message xmlns='jabber:server'/>",
		"<stream:error/>",
	} {
		g := newGuardConn(&chunkConn{r: []byte(in), sizes: []int{512}}, 0)
		if _, _, err := newStanzaEncoder().scan(g, newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}), 8); err != errSlowPath {
			t.Errorf("%q: got %v, want the slow path", in, err)
		}
	}
}

// TestScanKeepalive checks that white space between stanzas, what clients
// send as a keepalive, does not count toward the next stanza's size limit.
func TestScanKeepalive(t *testing.T) {
	in := strings.Repeat(" \n", 200) + "<presence/>"
	g := newGuardConn(&chunkConn{r: []byte(in), sizes: []int{16}}, 64)
	st, _, err := newStanzaEncoder().scan(g, newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}), 8)
	if err != nil || st == nil || st.Kind != router.KindPresence {
		t.Fatalf("scan after %d bytes of keepalives, limit 64: %v, %v", len(in)-11, st, err)
	}
}
