package vcard

import (
	"testing"
)

// TestRewritePresence pins the presence rewriting on literal stanzas,
// and that a presence left alone is not copied.
func TestRewritePresence(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	const withH = "<x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x>"
	const none = "<x xmlns='vcard-temp:x:update'><photo/></x>"
	cases := []struct {
		name, in, photo string
		force           bool
		want            string // "" when unchanged
	}{
		{"self-closed", "<presence from='a@b/c'/>", h, false, "<presence from='a@b/c'>" + withH + "</presence>"},
		{"no update", "<presence from='a@b/c'><show>away</show></presence>", h, false, "<presence from='a@b/c'><show>away</show>" + withH + "</presence>"},
		{"no photo to advertise", "<presence><show>away</show></presence>", "", false, "<presence><show>away</show>" + none + "</presence>"},
		{"not ready", "<presence><x xmlns='vcard-temp:x:update'/><c xmlns='caps' a='x>y'/></presence>", h, false, "<presence>" + withH + "<c xmlns='caps' a='x>y'/></presence>"},
		{"wrong hash", "<presence><x xmlns=\"vcard-temp:x:update\"><photo>ABC</photo></x></presence>", h, false, "<presence>" + withH + "</presence>"},
		{"upper-case hash", "<presence><x xmlns='vcard-temp:x:update'><photo>0123456789ABCDEF0123456789ABCDEF01234567</photo></x></presence>", h, false, "<presence>" + withH + "</presence>"},
		{"right hash", "<presence><status>hi</status>" + withH + "</presence>", h, false, ""},
		{"right hash with spaces", "<presence><x xmlns='vcard-temp:x:update'>\n <photo> " + h + " </photo>\n</x></presence>", h, false, ""},
		{"empty photo is the client's", "<presence>" + none + "</presence>", h, false, ""},
		{"empty photo overridden after a set", "<presence>" + none + "</presence>", h, true, "<presence>" + withH + "</presence>"},
		{"empty photo, nothing to advertise", "<presence><x xmlns='vcard-temp:x:update'><photo></photo></x></presence>", "", false, ""},
		{"two updates", "<presence><x xmlns='vcard-temp:x:update'/><status>s</status><x xmlns='vcard-temp:x:update'><photo>ab</photo></x></presence>", h, false, "<presence>" + withH + "<status>s</status></presence>"},
		{"namespace by reference", "<presence><x xmlns='vcard-temp&#x3a;x:update'/></presence>", h, false, "<presence>" + withH + "</presence>"},
		{"other x", "<presence><x xmlns='jabber:x:signed'>sig</x><status>vcard-temp:x:update</status></presence>", h, false, "<presence><x xmlns='jabber:x:signed'>sig</x><status>vcard-temp:x:update</status>" + withH + "</presence>"},
		{"photo in another namespace", "<presence><x xmlns='vcard-temp:x:update'><photo xmlns='other'/></x></presence>", h, false, "<presence>" + withH + "</presence>"},
		{"unreadable", "<presence><status>a</status", h, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			out, changed := rewritePresence(in, c.photo, c.force)
			if c.want == "" {
				if changed || &out[0] != &in[0] {
					t.Fatalf("changed to %s", out)
				}
				return
			}
			if !changed || string(out) != c.want {
				t.Fatalf("got %s (changed %v)\nwant %s", out, changed, c.want)
			}
		})
	}
}

// TestRewriteAllocs: a presence that already carries the right element
// costs no allocation.
func TestRewriteAllocs(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	in := []byte("<presence from='alice@localhost/a'><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/><x xmlns='vcard-temp:x:update'><photo>" + h + "</photo></x></presence>")
	if n := testing.AllocsPerRun(100, func() { rewritePresence(in, h, false) }); n != 0 {
		t.Errorf("%v allocations for an unchanged presence", n)
	}
}
