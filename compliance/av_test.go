package compliance_test

import (
	"testing"

	"xmppd.dev/xmppd/config"
)

// The A/V Calling suite (XEP-0479 §2.5): its one server requirement.

// withTURN configures a TURN service with a shared secret, for XEP-0215.
func withTURN(c *config.Config) {
	c.ExtDisco.Services = []config.ExternalService{{Type: "turn", Host: "turn.localhost", Transport: "udp", Secret: "compliance-secret"}}
}

// checkXEP0215: urn:xmpp:extdisco:2 on the server (§6); the services
// query (§3.1) lists the TURN service with time-limited credentials, and
// the credentials query (§3.3) gives them for it.
func checkXEP0215(t *testing.T, e *env) {
	contains(t, "server disco#info", e.alice.discoInfo(domain, ""), feature("urn:xmpp:extdisco:2"))
	got := e.alice.ok("get", domain, "<services xmlns='urn:xmpp:extdisco:2'/>")
	contains(t, "services", got, "<service type='turn' host='turn.localhost' port='3478' transport='udp'", "restricted='1'", "username='", "password='", "expires='")
	got = e.alice.ok("get", domain, "<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.localhost' type='turn'/></credentials>")
	contains(t, "credentials", got, "<credentials xmlns='urn:xmpp:extdisco:2'><service ", "username='", "password='")
}
