package interop

import (
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppBadAuth: logins the server must refuse, each with exactly one
// SASL mechanism, after STARTTLS (testdata/slixmpp_login.py). slixmpp
// must see a <failure/> with not-authorized (its failed_auth event), then
// give up (failed_all_auth), and never start a session.
func TestSlixmppBadAuth(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "right password")

	for _, tc := range []struct {
		name, jid, password, mech string
	}{
		{"wrong password SCRAM-SHA-256", alice.String(), "wrong password", "SCRAM-SHA-256"},
		{"wrong password PLAIN", alice.String(), "wrong password", "PLAIN"},
		{"unknown user SCRAM-SHA-256", "nobody@" + srv.Domain, "right password", "SCRAM-SHA-256"},
		{"unknown user PLAIN", "nobody@" + srv.Domain, "right password", "PLAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runSlixmpp(t, srv, "slixmpp_login.py", "--jid", tc.jid, "--password", tc.password, "--mech", tc.mech)
			u := res.get(t, "user")
			if !u.StartTLS || !u.TLSAtAuth {
				t.Errorf("STARTTLS completed = %v, SASL over TLS = %v; want both", u.StartTLS, u.TLSAtAuth)
			}
			if u.Authenticated || u.SessionStarted {
				t.Fatalf("login accepted (authenticated = %v with %q, session = %v, bound %q)", u.Authenticated, u.Mechanism, u.SessionStarted, u.BoundJID)
			}
			if len(u.FailedAuth) != 1 {
				t.Fatalf("failed_auth %d times, want once: %+v", len(u.FailedAuth), u.FailedAuth)
			}
			if f := u.FailedAuth[0]; f.Mechanism != tc.mech || f.Condition != "not-authorized" {
				t.Errorf("refusal: %+v; want mechanism %s, condition not-authorized", f, tc.mech)
			}
			if !u.FailedAllAuth {
				t.Errorf("slixmpp did not give up (failed_all_auth)")
			}
			if len(u.StreamErrors) != 0 {
				t.Errorf("stream errors %q", u.StreamErrors)
			}
		})
	}
}

// TestSlixmppChannelBinding: SCRAM -PLUS with slixmpp's channel binding,
// tls-unique, the only one slixmpp 1.8 has: TLS is capped at 1.2, where
// xmppd offers it (on TLS 1.3 it offers tls-exporter only).
func TestSlixmppChannelBinding(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "password")
	for _, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
		t.Run(mech, func(t *testing.T) {
			res := runSlixmpp(t, srv, "slixmpp_login.py", "--jid", alice.String(), "--password", "password", "--mech", mech, "--tls-max", "1.2")
			u := res.get(t, "user")
			checkLoggedIn(t, "alice", u, mech)
			if u.TLSVersion != "TLSv1.2" {
				t.Errorf("TLS version %q, want TLSv1.2", u.TLSVersion)
			}
			if u.GS2Header != "p=tls-unique,," {
				t.Errorf("GS2 header %q, want p=tls-unique,,", u.GS2Header)
			}
		})
	}
}

// TestSlixmppDefaultLogin: slixmpp as a user would run it, choosing its
// SASL mechanism itself, logs in twice in a row under the default
// [auth] throttling.
//
// slixmpp 1.8 on TLS 1.3 tries SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with
// tls-unique (refused: TLS 1.3 has none), then SCRAM-SHA-256 and SCRAM-SHA-1
// with the GS2 flag "y" (refused as a downgrade, RFC 5802 §6), then PLAIN.
// Those four refusals come before any credential is checked, and the
// throttle counts only wrong credentials: neither login waits for a failure
// delay or is locked out (counted, the four would cost 1+2+3+4 s by
// default, and the second login would be refused).
func TestSlixmppDefaultLogin(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t, func(c *config.Config) { c.Auth = config.Default().Auth })
	alice := srv.AddUser(t, "alice", "password")
	for i := 1; i <= 2; i++ {
		start := time.Now()
		res := runSlixmpp(t, srv, "slixmpp_login.py", "--jid", alice.String(), "--password", "password")
		u := res.get(t, "user")
		t.Logf("login %d in %v: %q after refusals %+v", i, time.Since(start).Round(time.Millisecond), u.Mechanism, u.FailedAuth)
		if !u.Authenticated || !u.SessionStarted {
			t.Fatalf("login %d failed: refusals %+v", i, u.FailedAuth)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("login %d took %v", i, d)
		}
	}
}
