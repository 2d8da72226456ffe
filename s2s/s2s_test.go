package s2s_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// fed is two servers federating on loopback: a.test and b.test, each with
// a route to the other.
type fed struct {
	a, b         *xmpptest.Server
	aAddr, bAddr string
}

// federate starts a.test and b.test with the options of each (after the
// federation ones: they may override them).
func federate(t *testing.T, aOpts, bOpts []xmpptest.Option) *fed {
	t.Helper()
	f := &fed{aAddr: xmpptest.FreePort(t), bAddr: xmpptest.FreePort(t)}
	f.a = xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("a.test"), xmpptest.WithS2S(f.aAddr),
		xmpptest.WithS2SRoute("b.test", f.bAddr)}, aOpts...)...)
	f.b = xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("b.test"), xmpptest.WithS2S(f.bAddr),
		xmpptest.WithS2SRoute("a.test", f.aAddr)}, bOpts...)...)
	return f
}

// trusting configures a server with a certificate from ca for its domain
// and subdomains, and ca as a trusted root.
func trusting(ca *xmpptest.CA, domain string) []xmpptest.Option {
	return []xmpptest.Option{withCA(ca), withCAcert(ca, domain)}
}

func withCA(ca *xmpptest.CA) xmpptest.Option {
	return func(c *config.Config) { c.S2S.CAFile = ca.File }
}

// withCAcert issues the certificate when the option is applied (the test
// is not at hand then, so the CA's own).
func withCAcert(ca *xmpptest.CA, domain string) xmpptest.Option {
	cert, key := ca.Issue(ca.T, domain, "conference."+domain, "upload."+domain)
	return xmpptest.WithCert(cert, key)
}

func isMessageFrom(from string) func(xmpptest.Element) bool {
	return func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("from") == from
	}
}

func peers(f *fed) string {
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	return fmt.Sprintf("a out %v in %v; b out %v in %v", ao, ai, bo, bi)
}

// chat sends a message each way between a user of each server and
// checks both arrive.
func chat(t *testing.T, f *fed) (alice, bob *xmpptest.Client) {
	t.Helper()
	aj := f.a.AddUser(t, "alice", "pw")
	bj := f.b.AddUser(t, "bob", "pw")
	alice = f.a.Login(t, aj, "pw", xmpptest.LoginOptions{Resource: "phone"})
	bob = f.b.Login(t, bj, "pw", xmpptest.LoginOptions{Resource: "desk"})
	alice.Send("<presence/>")
	bob.Send("<presence/>")
	alice.Send("<message to='bob@b.test' type='chat' id='m1'><body>hello b</body></message>")
	m := bob.Expect(5*time.Second, "alice's message", isMessageFrom("alice@a.test/phone"))
	if !strings.Contains(m.Inner, "hello b") || m.Attr("to") != "bob@b.test" {
		t.Errorf("bob got %s", m.Raw)
	}
	bob.Send("<message to='alice@a.test/phone' type='chat' id='m2'><body>hello a</body></message>")
	m = alice.Expect(5*time.Second, "bob's message", isMessageFrom("bob@b.test/desk"))
	if !strings.Contains(m.Inner, "hello a") {
		t.Errorf("alice got %s", m.Raw)
	}
	return alice, bob
}

// TestExternal: with certificates both sides verify, the streams both
// ways authenticate with SASL EXTERNAL, and messages cross.
func TestExternal(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), trusting(ca, "b.test"))
	chat(t, f)
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	if !slices.Equal(ao, []string{"a.test -> b.test external"}) || !slices.Equal(bi, []string{"a.test -> b.test external"}) ||
		!slices.Equal(bo, []string{"b.test -> a.test external"}) || !slices.Equal(ai, []string{"b.test -> a.test external"}) {
		t.Errorf("streams: %s", peers(f))
	}
}

// TestDialback: b.test has only its self-signed certificate, so neither
// side can verify b's: both directions authenticate with dialback.
func TestDialback(t *testing.T) {
	ca := xmpptest.NewCA(t)
	f := federate(t, trusting(ca, "a.test"), []xmpptest.Option{withCA(ca)})
	chat(t, f)
	ao, ai := f.a.S2S().Peers()
	bo, bi := f.b.S2S().Peers()
	if !slices.Equal(ao, []string{"a.test -> b.test dialback"}) || !slices.Equal(bi, []string{"a.test -> b.test dialback"}) ||
		!slices.Equal(bo, []string{"b.test -> a.test dialback"}) || !slices.Equal(ai, []string{"b.test -> a.test dialback"}) {
		t.Errorf("streams: %s", peers(f))
	}
}

// TestRefused: with dialback off, a peer whose certificate does not
// verify is not federated with: the sender learns remote-server-not-found.
func TestRefused(t *testing.T) {
	ca := xmpptest.NewCA(t)
	noDialback := func(c *config.Config) { c.S2S.Dialback = false; c.S2S.RetryDelay = config.Duration{} }
	f := federate(t, append(trusting(ca, "a.test"), noDialback), []xmpptest.Option{withCA(ca), noDialback})
	aj := f.a.AddUser(t, "alice", "pw")
	alice := f.a.Login(t, aj, "pw", xmpptest.LoginOptions{})
	alice.Send("<message to='bob@b.test' type='chat' id='m1'><body>hello</body></message>")
	e := alice.Expect(5*time.Second, "bounce", xmpptest.IsStanza("message", "error"))
	if !e.Contains("remote-server-not-found") || e.Attr("from") != "bob@b.test" || e.Attr("id") != "m1" {
		t.Errorf("bounce: %s", e.Raw)
	}
	if ao, _ := f.a.S2S().Peers(); len(ao) != 0 {
		t.Errorf("streams: %s", peers(f))
	}
}

var _ = jid.JID{}
