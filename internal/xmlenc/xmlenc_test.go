package xmlenc

import "testing"

func TestAppendDeclaringNS(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`<message to='b@x'><body>a</body></message>`, `<message xmlns='jabber:client' to='b@x'><body>a</body></message>`},
		{`<message/>`, `<message xmlns='jabber:client'/>`},
		{`<message>x</message>`, `<message xmlns='jabber:client'>x</message>`},
		{`<message xmlns='jabber:client' to='b@x'/>`, `<message xmlns='jabber:client' to='b@x'/>`},
		{`<message to='b@x'><x xmlns='urn:y'/></message>`, `<message xmlns='jabber:client' to='b@x'><x xmlns='urn:y'/></message>`},
	} {
		if got := string(AppendDeclaringNS([]byte("<f>"), []byte(tc.raw), "jabber:client")); got != "<f>"+tc.want {
			t.Errorf("AppendDeclaringNS(%s) = %s, want <f>%s", tc.raw, got, tc.want)
		}
	}
}
