package websocket

import "testing"

// TestTranslations: the write side's <open/> and the read side's stream
// header (elements are qualified by internal/xmlsplit).
func TestTranslations(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"open", string(appendOpen(nil, []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x1' from='localhost' version='1.0' xml:lang='en'>"))),
			"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='x1' from='localhost' version='1.0' xml:lang='en'/>"},
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
