package mam

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestScanMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want children
		sids []string // by of each stanza-id, in order
		cut  string   // the message without its stanza-ids
	}{
		{name: "body", raw: `<message to='b@x' type='chat'><body>hi</body></message>`, want: children{body: true}},
		{name: "self-closing", raw: `<message to='b@x'/>`},
		{name: "xhtml body is not a body", raw: `<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>x</body></html></message>`},
		{name: "hints", raw: `<message><store xmlns='urn:xmpp:hints'/><no-store xmlns="urn:xmpp:hints"></no-store><no-permanent-store xmlns='urn:xmpp:hints'/></message>`,
			want: children{store: true, noStore: true, noPermanentStore: true}},
		{name: "nested body does not count", raw: `<message><x xmlns='urn:y'><body>deep</body></x></message>`},
		{name: "quoted >", raw: `<message id='a>b'><thread parent='x>y'>t</thread><body a='>'>x</body></message>`, want: children{body: true}},
		{name: "stanza ids", raw: `<message><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='1'/><stanza-id xmlns='urn:xmpp:sid:0' by="r&amp;d@x" id='2'></stanza-id><origin-id xmlns='urn:xmpp:sid:0' id='o'/></message>`,
			want: children{body: true}, sids: []string{"b@x", "r&d@x"}, cut: `<message><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o'/></message>`},
		{name: "prefixed stanza id goes the slow way", raw: `<message><body>x</body><s:stanza-id xmlns:s='urn:xmpp:sid:0' by='b@x' id='1'/></message>`,
			want: children{body: true}, sids: []string{"b@x"}, cut: `<message><body>x</body></message>`},
		{name: "namespace spelt with a character reference", raw: `<message><body>x</body><stanza-id xmlns='urn:xmpp:&#x73;id:0' by='b@x' id='1'/></message>`,
			want: children{body: true}, sids: []string{"b@x"}, cut: `<message><body>x</body></message>`},
		{name: "comment goes the slow way", raw: `<message><!-- c --><body>x</body></message>`, want: children{body: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scanMessage([]byte(tc.raw))
			if !ok {
				t.Fatalf("scanMessage(%s) failed", tc.raw)
			}
			var bys []string
			var cut []span
			for _, s := range got.sids {
				bys = append(bys, s.by)
				cut = append(cut, s.at)
			}
			got.sids = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("scanMessage = %+v, want %+v", got, tc.want)
			}
			if !reflect.DeepEqual(bys, tc.sids) {
				t.Errorf("stanza-ids by %q, want %q", bys, tc.sids)
			}
			if tc.cut != "" {
				if w := string(without([]byte(tc.raw), cut)); w != tc.cut {
					t.Errorf("without the ids:\n%s\nwant\n%s", w, tc.cut)
				}
			}
			// The fast and the slow scan agree.
			slow, ok := scanSlow([]byte(tc.raw))
			if !ok {
				t.Fatalf("scanSlow failed")
			}
			if len(slow.sids) != len(bys) {
				t.Errorf("slow scan found %d ids, fast %d", len(slow.sids), len(bys))
			}
			slow.sids = nil
			if !reflect.DeepEqual(slow, tc.want) {
				t.Errorf("scanSlow = %+v, want %+v", slow, tc.want)
			}
		})
	}
	for _, bad := range []string{`<message><body>x</body>`, `<message`, `<message><body a='x>`} {
		if _, ok := scanMessage([]byte(bad)); ok {
			t.Errorf("scanMessage(%q) accepted a truncated message", bad)
		}
	}
}

func TestWithStanzaID(t *testing.T) {
	got := string(withStanzaID([]byte(`<message to='b@x'><body>a</body></message>`), "b@x", "ID"))
	want := `<message to='b@x'><body>a</body><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='ID'/></message>`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestIDs(t *testing.T) {
	var c clock
	c.start(0)
	prev := ""
	var prevSeq int64
	seen := map[string]bool{}
	for range 10000 {
		seq := c.next()
		if seq <= prevSeq {
			t.Fatalf("sequence went from %d to %d", prevSeq, seq)
		}
		id := newID(seq)
		if len(id) != idLen || id <= prev || seen[id] {
			t.Fatalf("id %q after %q: want a new, longer-sorting id of %d characters", id, prev, idLen)
		}
		if got, ok := seqOf(id); !ok || got != seq {
			t.Fatalf("seqOf(%q) = %d, %v; want %d", id, got, ok, seq)
		}
		seen[id], prev, prevSeq = true, id, seq
	}
	// Two ids of one sequence differ: the random half.
	if newID(prevSeq) == newID(prevSeq) {
		t.Error("ids are guessable: two ids of one sequence are equal")
	}
	var later clock
	later.start(prevSeq + 1e9) // a stored sequence ahead of the clock
	if s := later.next(); s <= prevSeq+1e9 {
		t.Errorf("a clock started after %d handed out %d", prevSeq+1e9, s)
	}
	for _, bad := range []string{"", "x", strings.Repeat("z", idLen), strings.Repeat("0", idLen)} {
		if _, ok := seqOf(bad); ok {
			t.Errorf("seqOf(%q) accepted it", bad)
		}
	}
}

// FuzzScanMessage: on any message encoding/xml reads, the byte walk finds
// the same children as encoding/xml, and cuts the same stanza-ids.
func FuzzScanMessage(f *testing.F) {
	for _, s := range []string{
		`<message><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='1'/></message>`,
		`<message><store xmlns="urn:xmpp:hints"/><x xmlns='u'><body>y</body></x></message>`,
		`<message a='>'><s:stanza-id xmlns:s='urn:xmpp:sid:0' by='b'/></message>`,
		`<message><stanza-id xmlns='urn:xmpp:&#x73;id:0' by='b&amp;c'/><body/></message>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The router's messages start with their start tag.
		if !bytes.HasPrefix(raw, []byte("<message")) || len(raw) > 8 && raw[8] != ' ' && raw[8] != '>' && raw[8] != '/' {
			return
		}
		slow, ok := scanSlow(raw)
		if !ok {
			return
		}
		fast, ok := scanMessage(raw)
		if !ok {
			return // the walk may refuse what it cannot read; the hook then leaves the message alone
		}
		if len(fast.sids) != len(slow.sids) {
			t.Fatalf("%s: the walk found %d stanza-ids, encoding/xml %d", raw, len(fast.sids), len(slow.sids))
		}
		for i := range fast.sids {
			if fast.sids[i] != slow.sids[i] {
				t.Fatalf("%s: stanza-id %d: walk %+v, encoding/xml %+v", raw, i, fast.sids[i], slow.sids[i])
			}
		}
		fast.sids, slow.sids = nil, nil
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: walk %+v, encoding/xml %+v", raw, fast, slow)
		}
	})
}

func BenchmarkScanMessage(b *testing.B) {
	raw := []byte(`<message from='alice@localhost/a' to='bob@localhost/b' type='chat' id='x1'><body>0123456789012345678901234567890123456789012345678901234567890123</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><request xmlns='urn:xmpp:receipts'/></message>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := scanMessage(raw); !ok {
			b.Fatal("scan failed")
		}
	}
}
