package entitytime_test

import (
	"regexp"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestServerTime: the server answers with its UTC time in XEP-0082's
// dateTime format and its offset as XEP-0082's TZD, numeric.
func TestServerTime(t *testing.T) {
	srv := xmpptest.Start(t)
	c := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{})
	before := time.Now().Truncate(time.Millisecond)
	c.Send("<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>")
	e := c.Expect(10*time.Second, "time result", func(e xmpptest.Element) bool { return e.Attr("id") == "t1" })
	after := time.Now()
	m := regexp.MustCompile(`^<time xmlns='urn:xmpp:time'><tzo>([+-]\d\d:\d\d)</tzo><utc>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)</utc></time>$`).FindStringSubmatch(e.Inner)
	if e.Attr("type") != "result" || e.Attr("from") != "localhost" || m == nil {
		t.Fatalf("time result: %s", e.Raw)
	}
	if want := time.Now().Format("-07:00"); m[1] != want {
		t.Errorf("tzo = %s, want the server's %s", m[1], want)
	}
	utc, err := time.Parse(time.RFC3339Nano, m[2])
	if err != nil {
		t.Fatal(err)
	}
	if utc.Before(before) || utc.After(after) {
		t.Errorf("utc = %v, want between %v and %v", utc, before, after)
	}
	// The feature is listed; a time query to an account is not the
	// server's to answer.
	c.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if e := c.Expect(10*time.Second, "disco#info", func(e xmpptest.Element) bool { return e.Attr("id") == "d1" }); !e.Contains("<feature var='urn:xmpp:time'>") {
		t.Errorf("disco#info without urn:xmpp:time: %s", e.Raw)
	}
	c.Send("<iq type='get' id='t2' to='alice@localhost'><time xmlns='urn:xmpp:time'/></iq>")
	if e := c.Expect(10*time.Second, "error", func(e xmpptest.Element) bool { return e.Attr("id") == "t2" }); e.Attr("type") != "error" || !e.Contains("service-unavailable") {
		t.Errorf("time to the account: %s", e.Raw)
	}
}
