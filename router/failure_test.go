package router_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

// failingAccounts answers from known, or fails with err when it is set.
type failingAccounts struct {
	mu    sync.Mutex
	known map[string]bool
	err   error
}

func (a *failingAccounts) Exists(_ context.Context, j jid.JID) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return false, a.err
	}
	return a.known[j.String()], nil
}

func (a *failingAccounts) fail(err error) { a.mu.Lock(); a.err = err; a.mu.Unlock() }

// stanzaError is the error of a bounced stanza as the sender's client
// reads it.
type stanzaError struct {
	Type  string `xml:"type,attr"`
	Error struct {
		Type  string `xml:"type,attr"`
		Inner []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"error"`
}

// condition returns the error's type, its condition and its text.
func condition(t *testing.T, raw string) (typ, cond, text string) {
	t.Helper()
	var e stanzaError
	if err := xml.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	if e.Type != "error" {
		t.Fatalf("%q is not an error", raw)
	}
	for _, c := range e.Error.Inner {
		if c.XMLName.Local == "text" {
			text = c.Text
		} else {
			cond = c.XMLName.Local
		}
	}
	return e.Error.Type, cond, text
}

// TestStorageFailureIsNotAMissingAccount: when the account lookup or an
// Undeliverable, OutboundPresence or InboundPresence hook fails, the
// sender is told wait/internal-server-error with a text, not
// cancel/service-unavailable (which says the account does not exist); a
// burst of failed lookups is logged once; once storage answers again the
// same stanzas are handled as before.
func TestStorageFailureIsNotAMissingAccount(t *testing.T) {
	ctx := context.Background()
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	accts := &failingAccounts{known: map[string]bool{"bob@localhost": true, "carol@localhost": true}}
	r := router.New(jid.MustParse("localhost"), accts, log)
	var stored []string
	var storeErr bool
	hook := func(_ context.Context, st *router.Stanza) router.Result {
		if storeErr {
			return router.Failed
		}
		stored = append(stored, string(st.Raw))
		return router.Handled
	}
	r.Registry().Undeliverable(hook)
	presenceFails := false
	presenceHook := func(_ context.Context, st *router.Stanza) router.Result {
		if presenceFails && st.Type == "subscribe" {
			return router.Failed
		}
		return router.Continue
	}
	r.Registry().OutboundPresence(presenceHook)
	r.Registry().InboundPresence(presenceHook)
	r.Registry().IQFunc("get", router.ToBare, xml.Name{Space: "urn:x", Local: "q"},
		func(context.Context, *router.Stanza) (xml.TokenReader, error) { return nil, nil })
	alice := &fakeSession{j: jid.MustParse("alice@localhost/a")}
	r.Bind(ctx, alice)

	const wait = "wait internal-server-error temporary storage failure; try again later"
	iq := func(to string) *router.Stanza {
		raw := "<iq type='get' id='q1' from='alice@localhost/a' to='" + to + "'><q xmlns='urn:x'/></iq>"
		return &router.Stanza{Kind: router.KindIQ, Type: "get", ID: "q1", From: alice.j, To: jid.MustParse(to),
			Payload: xml.Name{Space: "urn:x", Local: "q"}, Raw: []byte(raw)}
	}
	subscribe := func(to string) *router.Stanza {
		st, err := router.Build(router.KindPresence, "subscribe", "p1", alice.j, jid.MustParse(to), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	cases := []struct {
		name  string
		setup func() // makes storage fail
		st    *router.Stanza
		from  bool // sent by alice's client (FromClient) rather than routed
		want  string
	}{
		{"message, lookup fails", func() { accts.fail(errors.New("connection refused")) }, msg(t, "chat", "alice@localhost/a", "bob@localhost"), false, wait},
		{"message to full JID, lookup fails", func() { accts.fail(errors.New("connection refused")) }, msg(t, "chat", "alice@localhost/a", "bob@localhost/r"), false, wait},
		{"message, hook fails", func() { storeErr = true }, msg(t, "chat", "alice@localhost/a", "bob@localhost"), false, wait},
		{"iq to bare JID, lookup fails", func() { accts.fail(errors.New("connection refused")) }, iq("bob@localhost"), false, wait},
		{"outbound presence hook fails", func() { presenceFails = true }, subscribe("bob@localhost"), true, wait},
		{"inbound presence hook fails", func() { presenceFails = true }, subscribe("bob@localhost"), false, wait},
		{"message to unknown account", func() {}, msg(t, "chat", "alice@localhost/a", "nobody@localhost"), false, "cancel service-unavailable "},
		{"iq to unknown account", func() {}, iq("nobody@localhost"), false, "cancel service-unavailable "},
		{"message stored", func() {}, msg(t, "chat", "alice@localhost/a", "carol@localhost"), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			accts.fail(nil)
			storeErr, presenceFails = false, false
			tc.setup()
			if tc.from {
				r.FromClient(ctx, tc.st)
			} else {
				r.Route(ctx, tc.st)
			}
			got := alice.take()
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("sender got %q, want nothing", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("sender got %q, want one error", got)
			}
			typ, cond, text := condition(t, got[0])
			if s := typ + " " + cond + " " + text; s != tc.want {
				t.Errorf("sender got %q, want %q", s, tc.want)
			}
		})
	}
	if len(stored) != 1 {
		t.Errorf("the hook stored %d messages, want 1 (carol's)", len(stored))
	}

	// A burst: fifty failed lookups, one ERROR line; the success after it
	// ends the burst with one INFO line counting them.
	logBuf.Reset()
	accts.fail(errors.New("connection refused"))
	for range 50 {
		r.Route(ctx, msg(t, "chat", "alice@localhost/a", "bob@localhost"))
	}
	if got := len(alice.take()); got != 50 {
		t.Fatalf("sender got %d errors for 50 messages", got)
	}
	accts.fail(nil)
	r.Route(ctx, msg(t, "chat", "alice@localhost/a", "bob@localhost"))
	if got := alice.take(); len(got) != 0 {
		t.Fatalf("after recovery the sender got %q, want nothing (the message is stored)", got)
	}
	out := logBuf.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines for a burst of 50 failed lookups, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `level=INFO msg="router: account lookup failed: recovered" failures=50 suppressed=49`) {
		t.Errorf("no recovery line counting the burst:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Reset()         { s.mu.Lock(); s.b.Reset(); s.mu.Unlock() }
