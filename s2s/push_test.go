package s2s_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestPushAcrossServers: XEP-0357 with the app server on another domain,
// as real ones are: bob on a.test registers push.b.test (an external
// component of b.test); a message for bob while he is away becomes a
// notification that crosses to b.test from bob's bare JID, and the app
// server's result crosses back (the registration stays: a second message
// notifies again).
func TestPushAcrossServers(t *testing.T) {
	const app, secret = "push.b.test", "s3cret"
	aAddr, bAddr := xmpptest.FreePort(t), xmpptest.FreePort(t)
	a := xmpptest.Start(t, xmpptest.WithDomain("a.test"), xmpptest.WithS2S(aAddr),
		xmpptest.WithS2SRoute("b.test", bAddr), xmpptest.WithS2SRoute(app, bAddr))
	b := xmpptest.Start(t, xmpptest.WithDomain("b.test"), xmpptest.WithS2S(bAddr),
		xmpptest.WithS2SRoute("a.test", aAddr), xmpptest.WithComponent(app, secret))
	comp, buf := component(t, b.Component, app, secret)
	bob := login(t, a, "bob", "phone")
	bob.Send("<iq type='set' id='p1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='n1'/></iq>", app)
	if e := bob.Expect(5*time.Second, "enable's answer", func(e xmpptest.Element) bool { return e.Attr("id") == "p1" }); e.Attr("type") != "result" {
		t.Fatalf("enable: %s", e.Raw)
	}
	if regs, err := a.DB().Push().List(context.Background(), "bob@a.test"); err != nil || len(regs) != 1 {
		t.Fatalf("bob's registrations: %v, %v", regs, err)
	}
	bob.Close()
	alice := login(t, a, "alice", "a")

	reIQ := regexp.MustCompile(`(?s)<iq\b[^>]*>.*?</iq>`)
	next := func(what string) string {
		t.Helper()
		b := make([]byte, 4096)
		comp.SetReadDeadline(time.Now().Add(5 * time.Second))
		for !reIQ.MatchString(buf.String()) {
			n, err := comp.Read(b)
			buf.Write(b[:n])
			if err != nil {
				t.Fatalf("app server: no %s: %v; got %q", what, err, buf.String())
			}
		}
		s := buf.String()
		loc := reIQ.FindStringIndex(s)
		buf.Reset()
		buf.WriteString(s[loc[1]:])
		return s[loc[0]:loc[1]]
	}
	id := regexp.MustCompile(`\bid=['"]([^'"]+)['"]`)
	for i, answer := range []string{"type='result'/>",
		"type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"} {
		alice.Send("<message to='bob@a.test' type='chat'><body>wake up %d</body></message>", i)
		iq := next("notification")
		for _, want := range []string{"from='bob@a.test'", "to='" + app + "'", "<publish node='n1'>", "urn:xmpp:push:summary",
			"<field var='message-count'><value>" + string(rune('1'+i)) + "</value></field>", "<value>alice@a.test/a</value>"} {
			if !strings.Contains(iq, want) {
				t.Fatalf("notification %d lacks %s: %s", i+1, want, iq)
			}
		}
		comp.Write([]byte("<iq from='" + app + "' to='bob@a.test' id='" + id.FindStringSubmatch(iq)[1] + "' " + answer))
	}
	// The cancel error crossed back and removed the registration: none
	// is stored, and a third message sends no notification.
	xmpptest.WaitFor(t, 5*time.Second, func() error {
		regs, err := a.DB().Push().List(context.Background(), "bob@a.test")
		if err == nil && len(regs) > 0 {
			err = fmt.Errorf("bob still has %d registrations", len(regs))
		}
		return err
	})
	alice.Send("<message to='bob@a.test' type='chat'><body>wake up 3</body></message>")
	comp.SetReadDeadline(time.Now().Add(time.Second))
	rest := make([]byte, 4096)
	if n, _ := comp.Read(rest); strings.Contains(buf.String()+string(rest[:n]), "<iq") {
		t.Errorf("a notification after the app server's cancel error: %s", buf.String()+string(rest[:n]))
	}
}

var reStreamID = regexp.MustCompile(`<stream:stream [^>]*\bid='([^']+)'`)

// component connects an external component for domain to s and returns
// its connection, after the handshake.
func component(t *testing.T, addr, domain, secret string) (net.Conn, *strings.Builder) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>"))
	var buf strings.Builder
	read := func(until func() bool) {
		b := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for !until() {
			n, err := c.Read(b)
			buf.Write(b[:n])
			if err != nil {
				t.Fatalf("component: %v; got %q", err, buf.String())
			}
		}
	}
	read(func() bool { return reStreamID.MatchString(buf.String()) })
	sum := sha1.Sum([]byte(reStreamID.FindStringSubmatch(buf.String())[1] + secret))
	c.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"))
	read(func() bool { return strings.Contains(buf.String(), "<handshake/>") })
	buf.Reset()
	return c, &buf
}
