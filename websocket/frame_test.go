package websocket

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
			if got := elementEnd([]byte(tc.in)); got != tc.want {
				t.Fatalf("elementEnd(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// TestTranslations: the write side's <open/> and namespace declarations.
func TestTranslations(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"open", string(appendOpen(nil, []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x1' from='localhost' version='1.0' xml:lang='en'>"))),
			"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='x1' from='localhost' version='1.0' xml:lang='en'/>"},
		{"features", string(appendQualified(nil, []byte("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"))),
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"stanza", string(appendQualified(nil, []byte("<message to='a@b'><body>x</body></message>"))),
			"<message xmlns='jabber:client' to='a@b'><body>x</body></message>"},
		{"empty stanza", string(appendQualified(nil, []byte("<presence/>"))), "<presence xmlns='jabber:client'/>"},
		{"own namespace", string(appendQualified(nil, []byte("<r xmlns='urn:xmpp:sm:3'/>"))), "<r xmlns='urn:xmpp:sm:3'/>"},
		{"header", string(appendHeader(nil, mustFraming(t, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0' xml:lang='en'/>").attrs)),
			"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

func mustFraming(t *testing.T, s string) framingElement {
	t.Helper()
	f, ok, err := parseFraming([]byte(s))
	if !ok || err != nil {
		t.Fatalf("parseFraming(%q): %v %v", s, ok, err)
	}
	return f
}
