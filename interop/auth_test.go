package interop

import (
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSlixmppBadAuth: logins the server must refuse, each with exactly one
// SASL mechanism, after STARTTLS (testdata/slixmpp_badauth.py). slixmpp
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
			res := runSlixmpp(t, srv, "slixmpp_badauth.py", "--jid", tc.jid, "--password", tc.password, "--mech", tc.mech)
			u := res.get(t, "user")
			if !u.StartTLS {
				t.Errorf("STARTTLS not completed before SASL")
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
