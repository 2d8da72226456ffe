package interop

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

func TestZZExp(t *testing.T) {
	srv := xmpptest.Start(t, func(c *config.Config) { _ = c })
	t.Logf("auth config %+v", srv.Config.Auth)
	srv.AddUser(t, "alice", "pw")
	host, port, _ := net.SplitHostPort(srv.Addr)
	for i := 0; i < 1; i++ {
		start := time.Now()
		cmd := exec.Command(python, "/tmp/exp_login.py", "--host", host, "--port", port, "--domain", "localhost", "--jid", "alice@localhost", "--password", "pw", "--mech", os.Getenv("MECH"))
		out, _ := cmd.Output()
		t.Logf("login %d in %v: %s", i, time.Since(start), out)
	}
}
