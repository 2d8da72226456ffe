package lastactivity

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/router"
)

// TestStatusText reads the first <status/> of jabber:client, and cuts a
// long one on a character boundary.
func TestStatusText(t *testing.T) {
	long := strings.Repeat("a", MaxStatusBytes-1) + "é and more"
	for name, tc := range map[string]struct{ in, want string }{
		"none":            {"<presence type='unavailable'/>", ""},
		"first":           {"<presence type='unavailable'><status>one &lt;1&gt;</status><status xml:lang='fr'>deux</status></presence>", "one <1>"},
		"other ns":        {"<presence type='unavailable'><status xmlns='urn:x'>no</status><status>yes</status></presence>", "yes"},
		"child in status": {"<presence type='unavailable'><status>a<x xmlns='urn:x'>no</x>b</status></presence>", "ab"},
		"nested":          {"<presence type='unavailable'><x xmlns='urn:x'><status>no</status></x></presence>", ""},
		"cut":             {"<presence type='unavailable'><status>" + long + "</status></presence>", strings.Repeat("a", MaxStatusBytes-1)},
		"empty status":    {"<presence type='unavailable'><status/></presence>", ""},
		"prefixed root":   {"<c:presence xmlns:c='jabber:client' type='unavailable'><c:status>p</c:status></c:presence>", "p"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := statusText(&router.Stanza{Kind: router.KindPresence, Raw: []byte(tc.in)}); got != tc.want {
				t.Errorf("statusText = %q, want %q", got, tc.want)
			}
		})
	}
}
