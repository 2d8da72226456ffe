package extdisco_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

const wait = 10 * time.Second

const secret = "coturn-static-auth-secret"

func services(c *config.Config) {
	c.ExtDisco.CredentialLifetime = config.Duration{Duration: time.Hour}
	c.ExtDisco.Services = []config.ExternalService{
		{Type: "stun", Host: "stun.localhost", Transport: "udp"},
		{Type: "turn", Host: "turn.localhost", Transport: "udp", Name: "TURN", Secret: secret},
		{Type: "turns", Host: "turn.localhost", Port: 443, Transport: "tcp", Secret: secret},
		{Type: "turn", Host: "other.localhost", Restricted: true},
	}
}

func ask(t *testing.T, c *xmpptest.Client, id, payload string) xmpptest.Element {
	t.Helper()
	c.Send("<iq type='get' id='%s' to='localhost'>%s</iq>", id, payload)
	return c.Expect(wait, "answer "+id, func(e xmpptest.Element) bool { return e.Attr("id") == id })
}

// credentialRE matches a service with TURN credentials and captures its
// username, password and expires.
var credentialRE = regexp.MustCompile(`username='([^']*)' password='([^']*)' expires='([^']*)'`)

// checkCredentials recomputes the password coturn would expect from the
// username, and checks the username's expiry against expires and the
// lifetime.
func checkCredentials(t *testing.T, service string, before, after time.Time) {
	t.Helper()
	m := credentialRE.FindStringSubmatch(service)
	if m == nil {
		t.Fatalf("no credentials in %s", service)
	}
	username, password, expires := m[1], m[2], m[3]
	stamp, user, ok := strings.Cut(username, ":")
	if !ok || user != "alice@localhost" {
		t.Fatalf("username %q, want <expiry>:alice@localhost", username)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); password != want {
		t.Errorf("password %q, want base64(HMAC-SHA1(secret, %q)) = %q", password, username, want)
	}
	unix, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		t.Fatalf("username %q: %v", username, err)
	}
	exp, err := time.Parse("2006-01-02T15:04:05Z", expires)
	if err != nil {
		t.Fatalf("expires %q is not XEP-0082 UTC: %v", expires, err)
	}
	if exp.Unix() != unix {
		t.Errorf("expires %s is not the username's %d", expires, unix)
	}
	if lo, hi := before.Add(time.Hour).Add(-time.Second), after.Add(time.Hour); exp.Before(lo) || exp.After(hi) {
		t.Errorf("expires %v, want an hour from now (%v to %v)", exp, lo, hi)
	}
}

// TestServices lists the services, all and by type, with TURN
// credentials made from the secret as coturn's use-auth-secret checks
// them.
func TestServices(t *testing.T) {
	srv := xmpptest.Start(t, services)
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})

	before := time.Now()
	e := ask(t, c, "s1", "<services xmlns='urn:xmpp:extdisco:2'/>")
	after := time.Now()
	if e.Attr("type") != "result" {
		t.Fatalf("services: %s", e.Raw)
	}
	re := regexp.MustCompile(`^<services xmlns='urn:xmpp:extdisco:2'>` +
		`(<service type='stun' host='stun.localhost' port='3478' transport='udp'></service>)` +
		`(<service type='turn' host='turn.localhost' port='3478' transport='udp' name='TURN' restricted='1' username='[^']*' password='[^']*' expires='[^']*'></service>)` +
		`(<service type='turns' host='turn.localhost' port='443' transport='tcp' restricted='1' username='[^']*' password='[^']*' expires='[^']*'></service>)` +
		`(<service type='turn' host='other.localhost' port='3478' restricted='1'></service>)` +
		`</services>$`)
	m := re.FindStringSubmatch(e.Inner)
	if m == nil {
		t.Fatalf("services:\n%s\nwant to match\n%s", e.Inner, re)
	}
	checkCredentials(t, m[2], before, after)
	checkCredentials(t, m[3], before, after)

	// By type.
	e = ask(t, c, "s2", "<services xmlns='urn:xmpp:extdisco:2' type='stun'/>")
	if e.Inner != "<services xmlns='urn:xmpp:extdisco:2' type='stun'><service type='stun' host='stun.localhost' port='3478' transport='udp'></service></services>" {
		t.Errorf("stun services: %s", e.Raw)
	}
	e = ask(t, c, "s3", "<services xmlns='urn:xmpp:extdisco:2' type='turn'/>")
	if n := strings.Count(e.Inner, "<service "); n != 2 || strings.Contains(e.Inner, "type='turns'") {
		t.Errorf("turn services: %s", e.Raw)
	}
	e = ask(t, c, "s4", "<services xmlns='urn:xmpp:extdisco:2' type='ftp'/>")
	if e.Inner != "<services xmlns='urn:xmpp:extdisco:2' type='ftp'></services>" {
		t.Errorf("ftp services: %s", e.Raw)
	}

	// Advertised.
	if e := ask(t, c, "d1", "<query xmlns='http://jabber.org/protocol/disco#info'/>"); !e.Contains("<feature var='urn:xmpp:extdisco:2'>") {
		t.Errorf("disco#info: %s", e.Raw)
	}
}

// TestCredentials asks for one service's credentials, by host and type,
// and by port when the host has several; services without a secret and
// unknown ones get item-not-found, a request without host or type
// bad-request.
func TestCredentials(t *testing.T) {
	srv := xmpptest.Start(t, services)
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})

	before := time.Now()
	e := ask(t, c, "c1", "<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.localhost' type='turn'/></credentials>")
	after := time.Now()
	re := regexp.MustCompile(`^<credentials xmlns='urn:xmpp:extdisco:2'>(<service type='turn' host='turn.localhost' port='3478' transport='udp' name='TURN' restricted='1' [^>]*></service>)</credentials>$`)
	m := re.FindStringSubmatch(e.Inner)
	if e.Attr("type") != "result" || m == nil {
		t.Fatalf("credentials: %s", e.Raw)
	}
	checkCredentials(t, m[1], before, after)

	e = ask(t, c, "c2", "<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.localhost' type='turns' port='443'/></credentials>")
	if e.Attr("type") != "result" || strings.Count(e.Inner, "<service ") != 1 || !e.Contains("port='443'") {
		t.Fatalf("credentials by port: %s", e.Raw)
	}
	checkCredentials(t, e.Inner, before, time.Now())

	for _, tc := range []struct{ name, service, cond string }{
		{"wrong port", "<service host='turn.localhost' type='turns' port='5349'/>", "item-not-found"},
		{"no secret", "<service host='other.localhost' type='turn'/>", "item-not-found"},
		{"stun", "<service host='stun.localhost' type='stun'/>", "item-not-found"},
		{"unknown host", "<service host='nowhere.localhost' type='turn'/>", "item-not-found"},
		{"no type", "<service host='turn.localhost'/>", "bad-request"},
		{"no service", "", "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ask(t, c, "c-"+tc.name, "<credentials xmlns='urn:xmpp:extdisco:2'>"+tc.service+"</credentials>")
			if e.Attr("type") != "error" || !e.Contains("<"+tc.cond+" ") || e.Contains("password") {
				t.Errorf("got %s, want a %s error", e.Raw, tc.cond)
			}
		})
	}
}

// TestNoServices: without services the feature is neither listed nor
// answered.
func TestNoServices(t *testing.T) {
	srv := xmpptest.Start(t)
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})
	if e := ask(t, c, "s1", "<services xmlns='urn:xmpp:extdisco:2'/>"); e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("services: %s", e.Raw)
	}
	if e := ask(t, c, "d1", "<query xmlns='http://jabber.org/protocol/disco#info'/>"); e.Contains("extdisco") {
		t.Errorf("disco#info: %s", e.Raw)
	}
}

// TestSecretFile: the secret is read from secret_file at start.
func TestSecretFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "turn-secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := xmpptest.Start(t, func(c *config.Config) {
		c.ExtDisco.CredentialLifetime = config.Duration{Duration: time.Hour}
		c.ExtDisco.Services = []config.ExternalService{{Type: "turn", Host: "turn.localhost", SecretFile: file}}
	})
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})
	before := time.Now()
	e := ask(t, c, "c1", "<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.localhost' type='turn'/></credentials>")
	if e.Attr("type") != "result" {
		t.Fatalf("credentials: %s", e.Raw)
	}
	checkCredentials(t, e.Inner, before, time.Now())
}
