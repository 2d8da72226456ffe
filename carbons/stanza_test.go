package carbons

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"

	"xmppd.dev/xmppd/router"
)

func TestStripPrivate(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		0: {"<message><body>x</body></message>", "<message><body>x</body></message>"},
		1: {"<message><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", "<message><body>x</body></message>"},
		2: {"<message><private xmlns='urn:xmpp:carbons:2'></private><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", "<message><body>x</body></message>"},
		// Deeper or in another namespace: kept.
		3: {"<message><x><private xmlns='urn:xmpp:carbons:2'/></x></message>", "<message><x><private xmlns='urn:xmpp:carbons:2'/></x></message>"},
		4: {"<message><private xmlns='urn:xmpp:carbons:1'/><y xmlns='urn:xmpp:carbons:2'/></message>", "<message><private xmlns='urn:xmpp:carbons:1'/><y xmlns='urn:xmpp:carbons:2'/></message>"},
	} {
		got, _ := stripPrivate([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("%d: stripPrivate(%s) = %s, want %s", i, tc.in, got, tc.want)
		}
	}
}

// FuzzStripPrivate: stripping never panics, keeps a well-formed message
// well-formed, and leaves no top-level <private/> behind.
func FuzzStripPrivate(f *testing.F) {
	f.Add([]byte("<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>"))
	f.Add([]byte("<message><private xmlns='urn:xmpp:carbons:2'>a<b/></private></message>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, changed := stripPrivate(raw)
		if !changed {
			if !bytes.Equal(out, raw) {
				t.Fatal("unchanged but different bytes")
			}
			return
		}
		if _, err := router.Parse(raw); err != nil || !wellFormed(raw) {
			// Not a stanza: only well-formedness below would apply.
			// (router.Parse stops at the first child, so it accepts
			// bytes after the element when there is one.)
			return
		}
		st, err := router.Parse(out)
		if err != nil {
			t.Fatalf("stripped %q into %q, which does not parse: %v", raw, out, err)
		}
		if c, ok := scan(st); ok && c.private {
			t.Fatalf("stripped %q into %q, still private", raw, out)
		}
		shouldCopy(st)
	})
}

// wellFormed reports whether raw is XML to its end (what c2s hands on).
func wellFormed(raw []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}
