package c2s

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

// TestSMCountersWrap: h counts modulo 2^32 (XEP-0198 §5): acknowledgements
// across the wrap release the right stanzas, and one beyond what was sent
// is refused.
func TestSMCountersWrap(t *testing.T) {
	m := &smState{sent: math.MaxUint32 - 2, acked: math.MaxUint32 - 2}
	for i := range 6 {
		m.push(outItem{b: fmt.Appendf(nil, "<message id='%d'/>", i)})
	}
	if m.sent != 3 { // 2^32 - 2 + 6 - 2^32 - 1
		t.Fatalf("sent = %d after wrapping, want 3", m.sent)
	}
	_, ok := m.ack(1) // acknowledges 4: MaxUint32-1, MaxUint32, 0, 1
	if !ok || len(m.unacked) != 2 || string(m.unacked[0].b) != "<message id='4'/>" {
		t.Fatalf("ack(1): %v, %d left; want the last two left", ok, len(m.unacked))
	}
	if rest, ok := m.since(1); !ok || len(rest) != 2 {
		t.Fatalf("since(1) = %d, %v; want the last two", len(rest), ok)
	}
	if _, ok := m.ack(4); ok {
		t.Fatal("ack(4), one beyond what was sent, was accepted")
	}
	if _, ok := m.ack(3); !ok || len(m.unacked) != 0 || m.unackedBytes != 0 {
		t.Fatalf("ack(3): %v; %d left (%d bytes)", ok, len(m.unacked), m.unackedBytes)
	}
	if _, ok := m.ack(3); !ok || len(m.unacked) != 0 {
		t.Fatalf("repeated ack(3): %v, %d left", ok, len(m.unacked))
	}
	// Callbacks come back, in order, for the acknowledged only.
	var calls []int
	for i := range 3 {
		m.push(outItem{b: []byte("<iq/>"), done: func(w bool) {
			if w {
				calls = append(calls, i)
			}
		}})
	}
	done, _ := m.ack(5)
	for _, f := range done {
		f(true)
	}
	if fmt.Sprint(calls) != "[0 1]" || len(m.unacked) != 1 {
		t.Fatalf("callbacks %v with one left (%d), want [0 1]", calls, len(m.unacked))
	}
}

// TestSMAsks: the server asks for an acknowledgement once smAskAt
// stanzas are unacknowledged, and not again before an answer.
func TestSMAsks(t *testing.T) {
	m := &smState{}
	asked := 0
	for i := range 3 * smAskAt {
		if m.push(outItem{b: []byte("<iq/>")}) {
			asked++
			if i+1 != smAskAt {
				t.Errorf("asked at stanza %d, want %d", i+1, smAskAt)
			}
		}
	}
	if asked != 1 {
		t.Errorf("asked %d times before an answer, want 1", asked)
	}
	m.ack(m.sent)
	for i := range smAskAt {
		if m.push(outItem{b: []byte("<iq/>")}) != (i+1 == smAskAt) {
			t.Errorf("after the answer, stanza %d: asked %v", i+1, i+1 == smAskAt)
		}
	}
}

func TestParseSMElement(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{`<enable xmlns='urn:xmpp:sm:3' resume='true' max='600'/>`, "enable resume=true max=600", ""},
		{`<enable xmlns='urn:xmpp:sm:3'/>`, "enable resume=false max=0", ""},
		{`<a xmlns='urn:xmpp:sm:3' h='4294967295'/>`, "a h=4294967295", ""},
		{`<a xmlns='urn:xmpp:sm:3' h='4294967296'/>`, "", "bad-format"},
		{`<a xmlns='urn:xmpp:sm:3' h='-1'/>`, "", "bad-format"},
		{`<a xmlns='urn:xmpp:sm:3'/>`, "", "bad-format"},
		{`<r xmlns='urn:xmpp:sm:3'><junk/></r>`, "r", ""},
		{`<resume xmlns='urn:xmpp:sm:3' h='3' previd='abc'/>`, "resume h=3 previd=abc", ""},
		{`<inactive xmlns='urn:xmpp:csi:0'/>`, "inactive", ""},
		{`<enabled xmlns='urn:xmpp:sm:3'/>`, "", "unsupported-stanza-type"},
		{`<sleep xmlns='urn:xmpp:csi:0'/>`, "", "unsupported-stanza-type"},
	} {
		d := xml.NewDecoder(strings.NewReader(tc.in))
		tok, _ := d.Token()
		e, err := parseSMElement(d, tok.(xml.StartElement))
		if tc.err != "" {
			if err == nil || !strings.Contains(fmt.Sprint(err), tc.err) {
				t.Errorf("%s: err = %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		got := e.local
		switch e.local {
		case "enable":
			got += fmt.Sprintf(" resume=%v max=%d", e.resume, e.max)
		case "a":
			got += fmt.Sprintf(" h=%d", e.h)
		case "resume":
			got += fmt.Sprintf(" h=%d previd=%s", e.h, e.previd)
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzSMElement: parsing any stream management or client state element
// never panics, and what it accepts is one of the known elements with a
// valid h where one is needed.
func FuzzSMElement(f *testing.F) {
	for _, s := range []string{
		`<enable xmlns='urn:xmpp:sm:3' resume='true' max='600'/>`,
		`<a xmlns='urn:xmpp:sm:3' h='4294967295'/>`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
		`<resume xmlns='urn:xmpp:sm:3' h='3' previd='abc'/>`,
		`<inactive xmlns='urn:xmpp:csi:0'/>`,
		`<a xmlns='urn:xmpp:sm:3' h='1' h='2'><x/></a>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d := xml.NewDecoder(strings.NewReader(string(in)))
		tok, err := d.Token()
		start, ok := tok.(xml.StartElement)
		if err != nil || !ok {
			return
		}
		e, err := parseSMElement(d, start)
		if err != nil {
			return
		}
		switch e.space + " " + e.local {
		case nsSM + " enable", nsSM + " r", nsCSI + " active", nsCSI + " inactive":
		case nsSM + " a", nsSM + " resume":
			if !e.hasH {
				t.Fatalf("%q accepted without h", in)
			}
		default:
			t.Fatalf("%q accepted as %s %s", in, e.space, e.local)
		}
	})
}

// TestScanSMNonza: the fast path takes <r/> and <a h/> in their usual
// shapes without the XML decoder, and leaves anything else to the slow
// path, which reads the same elements the same way.
func TestScanSMNonza(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "r", "a N", or "slow"
	}{
		{`<r xmlns='urn:xmpp:sm:3'/>`, "r"},
		{`<r xmlns="urn:xmpp:sm:3" />`, "r"},
		{`<a xmlns='urn:xmpp:sm:3' h='42'/>`, "a 42"},
		{`<a h="4294967295" xmlns="urn:xmpp:sm:3"/>`, "a 4294967295"},
		{`<a xmlns='urn:xmpp:sm:3' h='4294967296'/>`, "slow"},
		{`<a xmlns='urn:xmpp:sm:3' h='+1'/>`, "slow"},
		{`<a xmlns='urn:xmpp:sm:3' h='&#52;'/>`, "slow"},
		{`<a xmlns='urn:xmpp:sm:3'/>`, "slow"},
		{`<r xmlns='urn:xmpp:sm:3'></r>`, "slow"},
		{`<enable xmlns='urn:xmpp:sm:3'/>`, "slow"},
		{`<a xmlns='urn:xmpp:sm:2' h='1'/>`, "slow"},
	} {
		g := newGuardConn(&chunkConn{r: []byte(tc.in + "<presence/>"), sizes: []int{7}}, 0)
		enc := newStanzaEncoder()
		_, _, err := enc.scan(g, newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}), 8)
		got := "slow"
		if e, ok := err.(*smElement); ok {
			got = e.local
			if e.local == "a" {
				got += fmt.Sprintf(" %d", e.h)
			}
		} else if err != errSlowPath {
			got = fmt.Sprint(err)
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
			continue
		}
		if got != "slow" { // what follows is left for the next read
			g.Reset()
			if st, _, err := enc.scan(g, newAddrCache(jid.MustParse("alice@localhost/r"), &jidCache{}), 8); err != nil || st.Kind != router.KindPresence {
				t.Errorf("%s: then %v, %v; want the presence", tc.in, st, err)
			}
		}
	}
}
