package router_test

import (
	"context"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

// TestInfoForms hands out a fresh reader per call, ordered by FORM_TYPE,
// and panics on a FORM_TYPE registered twice.
func TestInfoForms(t *testing.T) {
	reg := router.New(jid.MustParse("localhost"), nil, nil).Registry()
	form := func(ft string) func() xml.TokenReader {
		return func() xml.TokenReader {
			return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "x"},
				Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: ft}}})
		}
	}
	reg.InfoForm("urn:b", form("urn:b"))
	reg.InfoForm("urn:a", form("urn:a"))
	for range 2 { // each call reads afresh
		var got []string
		for _, r := range reg.InfoForms() {
			tok, err := r.Token()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tok.(xml.StartElement).Attr[0].Value)
		}
		if strings.Join(got, " ") != "urn:a urn:b" {
			t.Fatalf("forms = %q, want urn:a urn:b", got)
		}
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "urn:a") {
			t.Fatalf("duplicate form: panic %v, want one naming urn:a", p)
		}
	}()
	reg.InfoForm("urn:a", form("urn:a"))
}

// TestUnavailablePresenceHook sees the client's unavailable presence, or
// nil when the stream ended without one, after the resource has left the
// available ones.
func TestUnavailablePresenceHook(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	type call struct {
		jid       string
		pres      string
		available int
	}
	var calls []call
	r.Registry().OnUnavailablePresence(func(_ context.Context, s router.Session, pres *router.Stanza) {
		c := call{jid: s.JID().String(), available: len(r.AvailableResources(s.JID()))}
		if pres != nil {
			c.pres = string(pres.Raw)
		}
		calls = append(calls, c)
	})
	a := &fakeSession{j: jid.MustParse("alice@localhost/a")}
	b := &fakeSession{j: jid.MustParse("alice@localhost/b")}
	never := &fakeSession{j: jid.MustParse("alice@localhost/never")} // never available
	for _, s := range []*fakeSession{a, b, never} {
		r.Bind(ctx, s)
	}
	r.FromClient(ctx, presence(t, "alice@localhost/a", ""))
	r.FromClient(ctx, presence(t, "alice@localhost/b", ""))
	unavailable := &router.Stanza{Kind: router.KindPresence, Type: "unavailable", From: a.j,
		Raw: []byte("<presence type='unavailable' from='alice@localhost/a'><status>bye</status></presence>")}
	r.FromClient(ctx, unavailable)
	r.Unbind(ctx, never)
	r.Unbind(ctx, b)
	want := []call{
		{"alice@localhost/a", string(unavailable.Raw), 1},
		{"alice@localhost/b", "", 0},
	}
	if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("hook calls = %+v, want %+v", calls, want)
	}
}
