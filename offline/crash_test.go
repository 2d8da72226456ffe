package offline_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestCrash runs xmppd as a real process, stores messages for an offline
// user, kills the process with SIGKILL, and restarts it on the same
// database: every message arrives at the user's next login. It then kills
// the process again in the middle of that delivery and restarts it once
// more: every message has still arrived at least once by the end. Both
// storage engines.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the xmppd binary")
	}
	bin := buildXmppd(t)
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dsn := e.DSN
			if e.Driver == "sqlite" {
				dsn = "" // <data_dir>/xmppd.db
			}
			p := &process{t: t, bin: bin, dir: t.TempDir(), driver: e.Driver, dsn: dsn}
			p.run("user", "add", "alice@localhost")
			p.run("user", "add", "bob@localhost")

			// Messages stored, then SIGKILL.
			p.start()
			alice := p.server().Login(t, jid.MustParse("alice@localhost"), "pw", xmpptest.LoginOptions{Resource: "a"})
			const n = 500
			for i := range n {
				alice.Send("<message to='bob@localhost' type='chat' id='%d'><body>message %d</body></message>", i, i)
			}
			// The answer to the ping comes after every message was
			// routed, and each was committed before it was routed on.
			if got := alice.Sync(); len(got) != 0 {
				t.Fatalf("alice got %q, want nothing", got[0].Raw)
			}
			p.kill()
			<-alice.Done()

			// Restarted: bob gets everything, in order. Killed again after
			// the first few.
			p.start()
			bob := p.server().Login(t, jid.MustParse("bob@localhost"), "pw", xmpptest.LoginOptions{Resource: "b"})
			bob.Send("<presence/>")
			count := map[string]int{}
			for i := range 10 {
				m := parse(t, bob.Expect(wait, "message", isMessage))
				if want := fmt.Sprintf("message %d", i); m.Body != want || len(m.Delay) != 1 {
					t.Fatalf("after the first restart, message %d is %q with %d delays, want %q with 1", i, m.Body, len(m.Delay), want)
				}
				count[m.Body]++
			}
			p.kill()
			<-bob.Done()
			for _, el := range drain(bob, 100*time.Millisecond) {
				if isMessage(el) {
					count[parse(t, el).Body]++
				}
			}
			first := len(count)

			// Restarted again: the rest arrives, nothing is lost.
			p.start()
			bob = p.server().Login(t, jid.MustParse("bob@localhost"), "pw", xmpptest.LoginOptions{Resource: "b"})
			bob.Send("<presence/>")
			xmpptest.WaitFor(t, 3*wait, func() error {
				for _, el := range drain(bob, 10*time.Millisecond) {
					if isMessage(el) {
						count[parse(t, el).Body]++
					}
				}
				if len(count) < n {
					return fmt.Errorf("%d of %d messages delivered", len(count), n)
				}
				return nil
			})
			twice := 0
			for _, c := range count {
				if c > 1 {
					twice++
				}
			}
			t.Logf("%d messages delivered before the second kill, %d after; %d twice (written but not yet deleted when killed)", first, n-first, twice)
			p.stop()
		})
	}
}

// buildXmppd builds cmd/xmppd into a temporary directory (quick after the
// first time, from the build cache).
func buildXmppd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xmppd")
	if out, err := exec.Command("go", "build", "-o", bin, "xmppd.dev/xmppd/cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xmppd: %v\n%s", err, out)
	}
	return bin
}

// process is xmppd running as a child process on a data directory.
type process struct {
	t           *testing.T
	bin, dir    string
	driver, dsn string

	addr   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// config writes the configuration file with a fresh port and returns its
// path.
func (p *process) config() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`[server]
domain = "localhost"
data_dir = %q

[log]
level = "debug"

[storage]
driver = %q
dsn = %q

[c2s]
listen = %q
direct_tls_listen = ""
# Batches of 2, so that the second kill falls in the middle of delivery.
send_queue_stanzas = 4

[auth]
failure_delay = "0s"

[http]
listen = ""
`, filepath.Join(p.dir, "data"), p.driver, p.dsn, p.addr)
	path := filepath.Join(p.dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// run runs an xmppd command to its end, with "pw" on standard input.
func (p *process) run(args ...string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, append([]string{"-config", p.config()}, args...)...)
	cmd.Stdin = strings.NewReader("pw\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("xmppd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// start starts xmppd serve and waits until it accepts connections.
func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "-config", p.config(), "serve")
	p.stderr = &bytes.Buffer{}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd, stderr := p.cmd, p.stderr
	p.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if p.t.Failed() {
			p.t.Logf("xmppd (pid %d) log:\n%s", cmd.Process.Pid, stderr)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("xmppd never listened on %s: %v\n%s", p.addr, err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// server is the running process as xmpptest sees it.
func (p *process) server() *xmpptest.Server { return xmpptest.At(p.addr, "localhost") }

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	err := p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		p.t.Fatalf("xmppd did not die of SIGKILL: %v", err)
	}
}

// stop ends the process with SIGTERM and expects a clean exit.
func (p *process) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("xmppd after SIGTERM: %v\n%s", err, p.stderr)
	}
}
