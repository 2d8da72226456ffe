package xmlsplit

import "testing"

// TestElementEnd: the depth scanner finds where the first element ends.
func TestElementEnd(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int
	}{
		{"self-closing", "<a/>rest", 4},
		{"nested", "<a><b x='>'/><c>t</c></a><d/>", 25},
		{"quote in value", `<a x="it's"></a>`, 16},
		{"comment", "<a><!-- </a> --></a>", 20},
		{"cdata", "<a><![CDATA[</a>]]></a>", 23},
		{"partial", "<a><b>", -1},
		{"partial tag", "<a x='1", -1},
		{"text", "hello", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ElementEnd([]byte(tc.in)); got != tc.want {
				t.Fatalf("ElementEnd(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// TestAppendQualified: elements get the namespace the stream header gave them.
func TestAppendQualified(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"features", "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"stanza", "<message to='a@b'><body>x</body></message>", "<message xmlns='jabber:client' to='a@b'><body>x</body></message>"},
		{"empty stanza", "<presence/>", "<presence xmlns='jabber:client'/>"},
		{"own namespace", "<r xmlns='urn:xmpp:sm:3'/>", "<r xmlns='urn:xmpp:sm:3'/>"},
		{"declared stream prefix", "<stream:error xmlns:stream='" + NSStream + "'/>", "<stream:error xmlns:stream='" + NSStream + "'/>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendQualified(nil, []byte(tc.in))); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestNext: a buffer of c2s output splits into its parts, whatever the
// boundaries of the writes.
func TestNext(t *testing.T) {
	out := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x1' from='localhost'>" +
		"<stream:features><a/></stream:features> <message><body>1 &lt; 2</body></message></stream:stream>"
	want := []struct {
		k Kind
		s string
	}{
		{Space, "<?xml version='1.0'?>"},
		{Header, "<stream:stream xmlns='jabber:client' id='x1' from='localhost'>"},
		{Element, "<stream:features><a/></stream:features>"},
		{Space, " "},
		{Element, "<message><body>1 &lt; 2</body></message>"},
		{End, "</stream:stream>"},
	}
	b := []byte(out)
	for i, w := range want {
		// Every proper prefix of the part is incomplete.
		for j := 1; j < len(w.s) && w.k != Space; j++ {
			if k, _ := Next(b[:j]); k != Incomplete {
				t.Fatalf("part %d: Next(%q) = %v, want Incomplete", i, b[:j], k)
			}
		}
		k, n := Next(b)
		if k != w.k || string(b[:n]) != w.s {
			t.Fatalf("part %d: %v %q, want %v %q", i, k, b[:n], w.k, w.s)
		}
		b = b[n:]
	}
	if k, n := Next(b); k != Incomplete || n != 0 || len(b) != 0 {
		t.Fatalf("left %q", b)
	}
}

// TestStartTag: names and escaped values.
func TestStartTag(t *testing.T) {
	name, attrs := StartTag([]byte(`<stream:stream id='a1' from="x&amp;y" version='1.0'>`), nil)
	if string(name) != "stream:stream" || len(attrs) != 3 || string(attrs[1].Value) != "x&amp;y" || !HasAttr(attrs, "version") {
		t.Fatalf("%q %q", name, attrs)
	}
}
