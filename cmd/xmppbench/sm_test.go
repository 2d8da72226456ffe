package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConn is a net.Conn that keeps what is written to it.
type writeConn struct {
	net.Conn
	buf bytes.Buffer
}

func (w *writeConn) Write(p []byte) (int, error) { return w.buf.Write(p) }

func smClient(every uint32) (*client, *writeConn, *smCounters) {
	w := &writeConn{}
	cnt := &smCounters{}
	return &client{conn: w, sm: &smState{every: every, cnt: cnt}}, w, cnt
}

func TestSMRead(t *testing.T) {
	c, w, cnt := smClient(3)
	msg := []byte("<message from='a@b/c' type='chat'><body>xbm:1:2:x</body></message>")
	for _, el := range []string{string(msg), "<presence from='a@b/c'/>", "<iq type='get' id='p'/>", "<message/>"} {
		if c.smRead([]byte(el)) {
			t.Errorf("%s taken as stream management", el)
		}
	}
	// Three stanzas: one unprompted <a/>; the fourth is counted.
	if got, want := w.buf.String(), "<a xmlns='urn:xmpp:sm:3' h='3'/>"; got != want {
		t.Errorf("after 4 stanzas wrote %q, want %q", got, want)
	}
	w.buf.Reset()
	if !c.smRead([]byte("<r xmlns='urn:xmpp:sm:3'/>")) {
		t.Error("<r/> not taken")
	}
	if got, want := w.buf.String(), "<a xmlns='urn:xmpp:sm:3' h='4'/>"; got != want {
		t.Errorf("answer to <r/> %q, want %q", got, want)
	}
	// Not stanzas: not counted.
	w.buf.Reset()
	for _, el := range []string{"<enabled xmlns='urn:xmpp:sm:3'/>", "<stream:error/>", "<a xmlns='urn:xmpp:sm:3' h='0'/>"} {
		c.smRead([]byte(el))
	}
	if c.sm.in != 4 || w.buf.Len() != 0 {
		t.Errorf("in = %d, wrote %q; want 4 and nothing", c.sm.in, w.buf.String())
	}
	if cnt.reqsRecv.Load() != 1 || cnt.acksSent.Load() != 2 || cnt.acksRecv.Load() != 1 || cnt.badH.Load() != 0 {
		t.Errorf("counters %+v", cnt.figures())
	}

	// h is modulo 2^32 both ways.
	c.sm.in, c.sm.inSince = 1<<32-1, 0
	c.smRead(msg)
	c.smRead(msg)
	c.smRead(msg)
	if got, want := w.buf.String(), "<a xmlns='urn:xmpp:sm:3' h='2'/>"; got != want {
		t.Errorf("after wrapping wrote %q, want %q", got, want)
	}
	c.sm.out.Store(1) // sent 2^32 + 1 stanzas
	c.sm.lastH = 1<<32 - 10
	for _, tc := range []struct {
		h   string
		bad bool
	}{
		{"4294967290", false}, // six unacked
		{"4294967280", true},  // back
		{"0", false},          // wrapped
		{"1", false},
		{"2", true}, // more than sent
		{"x", true},
		{"4294967296", true},
	} {
		b0 := cnt.badH.Load()
		c.smRead([]byte("<a xmlns='urn:xmpp:sm:3' h='" + tc.h + "'/>"))
		if bad := cnt.badH.Load() > b0; bad != tc.bad {
			t.Errorf("h=%s: bad %v, want %v", tc.h, bad, tc.bad)
		}
	}
}

func TestSMSent(t *testing.T) {
	c, _, cnt := smClient(5)
	var got []bool
	for _, k := range []uint32{1, 1, 1, 1, 1, 2, 2, 1, 1, 5} {
		got = append(got, c.smSent(k))
	}
	// Counts 1 2 3 4 5 7 9 10 11 16: an <r/> at 5, across 10 and across 15.
	want := []bool{false, false, false, false, true, false, false, true, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("smSent: %v, want %v", got, want)
			break
		}
	}
	if cnt.reqsSent.Load() != 3 {
		t.Errorf("reqsSent = %d, want 3", cnt.reqsSent.Load())
	}
	c, w, _ := smClient(2)
	c.sendStanzas("<presence/>", 1)
	c.sendStanzas("<presence/>", 1)
	if got, want := w.buf.String(), "<presence/><presence/><r xmlns='urn:xmpp:sm:3'/>"; got != want {
		t.Errorf("sendStanzas wrote %q, want %q", got, want)
	}
}

// Stream management adds no allocation per stanza to the generator.
func TestSMAllocs(t *testing.T) {
	c, w, _ := smClient(5)
	msg := []byte("<message from='a@b/c' type='chat'><body>xbm:1:2:x</body></message>")
	ack := []byte("<a xmlns='urn:xmpp:sm:3' h='0'/>")
	c.smRead(msg)
	for range 10 {
		c.smRead(msg) // the ack buffer and the writer's grow once
	}
	if n := testing.AllocsPerRun(1000, func() {
		w.buf.Reset()
		c.smRead(msg)
		c.smRead(ack)
		c.smSent(1)
	}); n != 0 {
		t.Errorf("%v allocations per stanza", n)
	}
}

func TestTableSM(t *testing.T) {
	lines := `{"phase":"login","label":"prosody","n":1000,"logins_per_s":200,"sm":true,"sm_ack_every":5}
{"phase":"chat","label":"prosody","n":1000,"gen_cpu_s_per_10k":0.9,"sm":true,"sm_ack_every":5}
{"phase":"login","label":"xmppd-sqlite","n":1000,"logins_per_s":1000}
`
	f := filepath.Join(t.TempDir(), "r.jsonl")
	os.WriteFile(f, []byte(lines), 0o644)
	var out bytes.Buffer
	if err := writeTable(&out, []string{f}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| figure | prosody (SM) | xmppd-sqlite | xmppd-sqlite ÷ prosody (SM) |",
		"| stream management: <a/> and <r/> every … stanzas | 5 | off | – |",
		"| 1:1 at chat rate: generator CPU-s per 10k msgs | 0.90 | n/a | – |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEnableSM(t *testing.T) {
	feats := []byte("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>")
	o := &options{smAckEvery: 4}
	for _, tc := range []struct {
		feats, answer string
		resumable     bool
		err           string
	}{
		{string(feats), "<enabled xmlns='urn:xmpp:sm:3' id='some-id' resume='true' max='300'/>", true, ""},
		{string(feats), "<enabled xmlns='urn:xmpp:sm:3' resume='1' id='x'/>", true, ""},
		{string(feats), "<enabled xmlns='urn:xmpp:sm:3'/>", false, ""},
		{string(feats), "<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>", false, "sm: enable failed: <failed"},
		{string(feats), "<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", false, "sm: stream error"},
		{"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>", "", false, errNoSM.Error()},
	} {
		w := &writeConn{}
		c := &client{conn: w, sp: newSplitter(strings.NewReader("<stream:stream>"+tc.answer), 64)}
		err := c.enableSM(o, []byte(tc.feats), &smCounters{})
		switch {
		case tc.err != "":
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %s…", tc.answer, err, tc.err)
			}
			if c.sm != nil {
				t.Errorf("%s: stream management on after an error", tc.answer)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.answer, err)
		case c.sm == nil || c.sm.resumeOK != tc.resumable || c.sm.every != 4:
			t.Errorf("%s: state %+v, want resumable %v, every 4", tc.answer, c.sm, tc.resumable)
		case w.buf.String() != "<enable xmlns='urn:xmpp:sm:3' resume='true'/>":
			t.Errorf("sent %q", w.buf.String())
		}
	}
}
