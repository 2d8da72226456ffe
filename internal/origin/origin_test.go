package origin

import "testing"

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name, origin string
		allowed      []string
		want         bool
	}{
		{"same host", "https://xmpp.example.com:5443", nil, true},
		{"public url host", "https://chat.example.com", nil, true},
		{"other host", "https://evil.example.net", nil, false},
		{"listed", "https://evil.example.net", []string{"https://evil.example.net/"}, true},
		{"listed other scheme", "http://evil.example.net", []string{"https://evil.example.net"}, false},
		{"not listed though same host", "https://xmpp.example.com:5443", []string{"https://a.example"}, false},
		{"any", "https://evil.example.net", []string{"*"}, true},
		{"null origin", "null", []string{"https://a.example"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Allowed(tc.origin, tc.allowed, "xmpp.example.com:5443", "https://chat.example.com"); got != tc.want {
				t.Fatalf("Allowed(%q, %q) = %v, want %v", tc.origin, tc.allowed, got, tc.want)
			}
		})
	}
}
