package private_test

import (
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/private"
	"xmppd.dev/xmppd/storage"
)

var _ private.Store = (*storage.PrivateXML)(nil)

const wait = 5 * time.Second

func ask(t *testing.T, c *xmpptest.Client, id, format string, args ...any) xmpptest.Element {
	t.Helper()
	c.Send(format, args...)
	return c.Expect(wait, "answer to "+id, func(e xmpptest.Element) bool { return e.Name.Local == "iq" && e.Attr("id") == id })
}

func wantResult(t *testing.T, e xmpptest.Element, inner string) {
	t.Helper()
	if e.Attr("type") != "result" || e.Inner != inner {
		t.Fatalf("got %s\nwant result with %s", e.Raw, inner)
	}
}

func wantError(t *testing.T, e xmpptest.Element, typ, cond string) {
	t.Helper()
	if e.Attr("type") != "error" || !e.Contains("<error type='"+typ+"'><"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>") {
		t.Fatalf("got %s\nwant a %s/%s error", e.Raw, typ, cond)
	}
}

const q = "<query xmlns='jabber:iq:private'>%s</query>"

// TestPrivate: an element is stored per namespace and answered to its
// owner (replaced by the next set of that namespace, several elements of
// one namespace together); nothing stored answers the element asked for,
// empty; another user is forbidden either way; an empty query, a reserved
// namespace, an element over max_bytes and a namespace over max_items are
// refused and change nothing; everything survives a restart; the feature
// is advertised.
func TestPrivate(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			opts := []xmpptest.Option{func(c *config.Config) { c.Private.MaxBytes = 1024; c.Private.MaxItems = 2 }}
			if driver == "postgres" {
				opts = append(opts, xmpptest.WithPostgres(t))
			}
			srv := xmpptest.Start(t, opts...)
			aliceJ := srv.AddUser(t, "alice", "pw")
			bobJ := srv.AddUser(t, "bob", "pw")
			alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
			bob := srv.Login(t, bobJ, "pw", xmpptest.LoginOptions{Resource: "b"})

			const prefs = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"
			wantResult(t, ask(t, alice, "g1", "<iq type='get' id='g1'>"+q+"</iq>", "<exodus xmlns='exodus:prefs'/>"),
				"<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'></exodus></query>")
			wantResult(t, ask(t, alice, "s1", "<iq type='set' id='s1'>"+q+"</iq>", "<exodus xmlns='exodus:prefs'><old/></exodus>"), "")
			wantResult(t, ask(t, alice, "s2", "<iq type='set' id='s2' to='alice@localhost'>"+q+"</iq>", prefs), "")
			wantResult(t, ask(t, alice, "g2", "<iq type='get' id='g2'>"+q+"</iq>", "<exodus xmlns='exodus:prefs'/>"),
				"<query xmlns='jabber:iq:private'>"+prefs+"</query>")
			const notes = "<storage xmlns='storage:rosternotes'><note jid='x@y'>a</note></storage><storage xmlns='storage:rosternotes'><note jid='z@y'>b</note></storage>"
			wantResult(t, ask(t, alice, "s3", "<iq type='set' id='s3'>"+q+"</iq>", notes), "")

			for i, payload := range []string{"<exodus xmlns='exodus:prefs'/>", "<exodus xmlns='exodus:prefs'>x</exodus>"} {
				typ := []string{"get", "set"}[i]
				wantError(t, ask(t, bob, "b"+typ, "<iq type='%s' id='b%s' to='alice@localhost'>"+q+"</iq>", typ, typ, payload), "auth", "forbidden")
			}
			for name, payload := range map[string]string{
				"empty":          "",
				"jabber:client":  "<message xmlns='jabber:client'/>",
				"jabber:server":  "<x xmlns='jabber:server'/>",
				"private itself": "<query xmlns='jabber:iq:private'/>",
				"no namespace":   "<foo/>",
			} {
				for _, typ := range []string{"get", "set"} {
					e := ask(t, alice, "r-"+typ, "<iq type='%s' id='r-%s'>"+q+"</iq>", typ, typ, payload)
					if e.Attr("type") != "error" || !e.Contains("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>") {
						t.Errorf("%s %s: %s", typ, name, e.Raw)
					}
				}
			}
			e := ask(t, alice, "big", "<iq type='set' id='big'>"+q+"</iq>", "<exodus xmlns='exodus:prefs'>"+strings.Repeat("x", 1100)+"</exodus>")
			wantError(t, e, "modify", "not-acceptable")
			if !e.Contains("1024 bytes") {
				t.Errorf("too big: no text naming the limit: %s", e.Raw)
			}
			e = ask(t, alice, "third", "<iq type='set' id='third'>"+q+"</iq>", "<a xmlns='third:ns'/>")
			wantError(t, e, "cancel", "not-allowed")
			// A get names no more namespaces than an account may store
			// (each is a read).
			e = ask(t, alice, "g3", "<iq type='get' id='g3'><query xmlns='jabber:iq:private'><a xmlns='ns:1'/><b xmlns='ns:2'/><c xmlns='ns:3'/></query></iq>")
			wantError(t, e, "modify", "not-acceptable")
			// Replacing one of the two is no new namespace.
			wantResult(t, ask(t, alice, "s4", "<iq type='set' id='s4'>"+q+"</iq>", notes), "")

			for _, to := range []string{"localhost", "alice@localhost"} {
				e := ask(t, alice, "d-"+to, "<iq type='get' id='d-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", to, to)
				if !e.Contains("<feature var='jabber:iq:private'>") {
					t.Errorf("%s's disco#info lacks jabber:iq:private: %s", to, e.Raw)
				}
				// The server wires private storage to PEP: the account
				// keeps bookmarks in step both ways (XEP-0402 §5.3).
				if to != "localhost" && (!e.Contains("'"+private.FeatureCompat+"'") || !e.Contains("'"+private.FeatureCompat+"-pep'")) {
					t.Errorf("%s's disco#info lacks %s and -pep: %s", to, private.FeatureCompat, e.Raw)
				}
			}

			cfg := srv.Config
			srv.Stop(t)
			srv = xmpptest.StartConfig(t, cfg)
			alice = srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
			wantResult(t, ask(t, alice, "g3", "<iq type='get' id='g3'>"+q+"</iq>", "<exodus xmlns='exodus:prefs'/>"),
				"<query xmlns='jabber:iq:private'>"+prefs+"</query>")
			wantResult(t, ask(t, alice, "g4", "<iq type='get' id='g4'>"+q+"</iq>", "<storage xmlns='storage:rosternotes'/>"),
				"<query xmlns='jabber:iq:private'>"+notes+"</query>")
		})
	}
}
