package c2s_test

import (
	"fmt"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestSessionsHaveSendRoom: sessions over STARTTLS and direct TLS find the
// socket under their TLS connection, so deliveries to them can be written
// by the delivering goroutine; a session without one would silently fall
// back to a flush goroutine for every stanza.
func TestSessionsHaveSendRoom(t *testing.T) {
	srv := xmpptest.Start(t)
	alice := srv.AddUser(t, "alice", "pw")
	a := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "starttls"})
	b := srv.Login(t, alice, "pw", xmpptest.LoginOptions{Resource: "direct", DirectTLS: true})
	a.Send("<message to='alice@localhost/direct' type='chat'><body>hi</body></message>")
	b.Expect(wait, "hi", isChat("hi"))
	xmpptest.WaitFor(t, wait, func() error {
		if n, without := srv.C2S().SessionsWithoutSendRoom(); n != 2 || without != 0 {
			return fmt.Errorf("%d sessions started, %d of them without a send room; want 2 and 0", n, without)
		}
		return nil
	})
}
