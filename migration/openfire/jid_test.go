package openfire

import (
	"bytes"
	"encoding/xml"
	"testing"
)

func TestRewriteJID(t *testing.T) {
	r := rewriter{from: "of.example", to: "new.example"}
	for in, want := range map[string]string{
		"alice@of.example":                  "alice@new.example",
		"alice@OF.example/res@x/y":          "alice@new.example/res@x/y",
		"lounge@conference.of.example/Nick": "lounge@conference.new.example/Nick",
		"of.example":                        "new.example",
		"bob@notof.example":                 "bob@notof.example",
		"bob@of.example.org":                "bob@of.example.org",
		"frank@remote.example":              "frank@remote.example",
	} {
		if got := r.jid(in); got != want {
			t.Errorf("jid(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRewriteXML: stored XML is rewritten or left alone, never broken:
// what parsed before parses after.
func FuzzRewriteXML(f *testing.F) {
	f.Add([]byte(offline1))
	f.Add([]byte(offline2))
	f.Add([]byte(bookmarks))
	f.Add([]byte(`<a from='x@of.example' xmlns:p="u" p:to="y@of.example"><b to="of.example"/> text </a>`))
	r := rewriter{from: "of.example", to: "new.example"}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := r.xml(b)
		if wellFormed(b) && !wellFormed(out) {
			t.Fatalf("%q rewritten to %q, which does not parse", b, out)
		}
		if !bytes.Contains(bytes.ToLower(b), []byte("of.example")) && !bytes.Equal(b, out) {
			t.Fatalf("%q changed to %q", b, out)
		}
	})
}

func wellFormed(b []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err != nil {
			return err.Error() == "EOF"
		}
	}
}
