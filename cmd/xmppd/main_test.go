package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage/storagetest"
)

// result is what one command line printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func xmppd(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes a configuration for storage engine e into a temporary
// directory and returns its path.
func writeConfig(t *testing.T, driver, dsn string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`[server]
domain = "localhost"
data_dir = %q

[storage]
driver = %q
dsn = %q

[c2s]
listen = "127.0.0.1:%d"
direct_tls_listen = "127.0.0.1:%d"

[http]
listen = ""

[s2s]
listen = ""
direct_tls_listen = ""
%s`, filepath.Join(dir, "data"), driver, dsn, freePort(t), freePort(t), extra)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUserCommands runs the account commands on each storage engine.
func TestUserCommands(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dsn := e.DSN
			if e.Driver == "sqlite" {
				dsn = "" // the default: <data_dir>/xmppd.db
			}
			cfg := writeConfig(t, e.Driver, dsn, "")

			r := xmppd(t, "correct horse\n", "-config", cfg, "user", "add", "Alice@LocalHost")
			if r.code != 0 || !strings.Contains(r.stdout, "created alice@localhost") {
				t.Fatalf("user add: %+v", r)
			}
			r = xmppd(t, "", "-config", cfg, "user", "list")
			if r.code != 0 || r.stdout != "alice@localhost\n" {
				t.Fatalf("user list = %+v, want alice@localhost", r)
			}

			// Bad input fails with one clear line and changes nothing.
			bad := []struct {
				name  string
				stdin string
				args  []string
				want  string
			}{
				{"duplicate", "other\n", []string{"user", "add", "alice@localhost"}, "user alice@localhost already exists"},
				{"invalid JID", "pw\n", []string{"user", "add", "al ice@localhost"}, "invalid JID"},
				{"no localpart", "pw\n", []string{"user", "add", "localhost"}, "invalid JID"},
				{"other domain", "pw\n", []string{"user", "add", "bob@example.org"}, "not at this server's domain"},
				{"empty password", "\n", []string{"user", "add", "bob@localhost"}, "empty password"},
				{"no password", "", []string{"user", "add", "bob@localhost"}, "no password"},
				{"passwd unknown", "pw\n", []string{"user", "passwd", "nobody@localhost"}, "no such user nobody@localhost"},
				{"del unknown", "", []string{"user", "del", "nobody@localhost"}, "no such user nobody@localhost"},
			}
			for _, b := range bad {
				r := xmppd(t, b.stdin, append([]string{"-config", cfg}, b.args...)...)
				if r.code == 0 || !strings.Contains(r.stderr, b.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("%s: %+v, want a non-zero exit and one line with %q", b.name, r, b.want)
				}
			}
			r = xmppd(t, "", "-config", cfg, "user", "list")
			if r.stdout != "alice@localhost\n" {
				t.Fatalf("after refused commands, user list = %q", r.stdout)
			}

			r = xmppd(t, "new pass\n", "-config", cfg, "user", "passwd", "alice@localhost")
			if r.code != 0 {
				t.Fatalf("user passwd: %+v", r)
			}
			r = xmppd(t, "", "-config", cfg, "user", "del", "alice@localhost")
			if r.code != 0 || !strings.Contains(r.stdout, "deleted alice@localhost") {
				t.Fatalf("user del: %+v", r)
			}
			if r := xmppd(t, "", "-config", cfg, "user", "list"); r.stdout != "" {
				t.Fatalf("user list after del = %q", r.stdout)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body, want string
	}{
		{"typo", "[c2s]\nlisen = \":5222\"\n", "config.toml:2: c2s.lisen"},
		{"wrong type", "[c2s]\nlisten = 5222\n", "config.toml:2: c2s.listen"},
		{"bad port", "[c2s]\nlisten = \":99999\"\n", "config.toml:2: c2s.listen"},
		{"unknown driver", "[storage]\ndriver = \"mysql\"\n", "config.toml:2: storage.driver"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "config.toml")
			os.WriteFile(p, []byte(tc.body), 0o600)
			for _, cmd := range [][]string{{"check-config"}, {"serve"}, {"user", "list"}} {
				r := xmppd(t, "", append([]string{"-config", p}, cmd...)...)
				if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("%v: %+v, want failure naming %q", cmd, r, tc.want)
				}
			}
		})
	}
	r := xmppd(t, "", "-config", writeConfig(t, "sqlite", "", ""), "check-config")
	if r.code != 0 || !strings.Contains(r.stdout, "configuration is valid") {
		t.Fatalf("check-config on a good file: %+v", r)
	}
}

func TestUnreachablePostgres(t *testing.T) {
	cfg := writeConfig(t, "postgres", "postgres://xmppd:hunter2@127.0.0.1:1/xmppd?sslmode=disable", "")
	r := xmppd(t, "pw\n", "-config", cfg, "user", "add", "alice@localhost")
	if r.code == 0 || !strings.Contains(r.stderr, "127.0.0.1:1") || strings.Contains(r.stderr+r.stdout, "hunter2") {
		t.Fatalf("unreachable database: %+v, want the host named and no password", r)
	}
}

func TestMigrateAndVersion(t *testing.T) {
	cfg := writeConfig(t, "sqlite", "", "")
	r := xmppd(t, "", "-config", cfg, "migrate")
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0001_accounts") || !strings.Contains(r.stdout, "schema version") {
		t.Fatalf("migrate: %+v", r)
	}
	r = xmppd(t, "", "-config", cfg, "migrate")
	if r.code != 0 || strings.Contains(r.stdout, "applied") {
		t.Fatalf("second migrate: %+v", r)
	}
	if r := xmppd(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "xmppd ") {
		t.Fatalf("version: %+v", r)
	}
	for _, args := range [][]string{{"-h"}, {"user", "add", "-h"}, {"serve", "-h"}, {"migrate", "-h"}} {
		if r := xmppd(t, "", args...); r.code != 0 {
			t.Errorf("%v: exit %d, want 0 (help)", args, r.code)
		}
	}
	if r := xmppd(t, "", "frobnicate"); r.code == 0 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("unknown command: %+v", r)
	}
}

// TestServeRunsAndStops starts the real server on SQLite, connects to it,
// and stops it as SIGTERM would.
func TestServeRunsAndStops(t *testing.T) {
	cfg := writeConfig(t, "sqlite", "", "")
	raw, _ := os.ReadFile(cfg)
	addr := strings.Split(strings.Split(string(raw), "listen = \"")[1], "\"")[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result)
	go func() {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"-config", cfg}, strings.NewReader(""), &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	var conn net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server never listened on %s: %v", addr, err)
	}
	fmt.Fprint(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='localhost'>")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !strings.Contains(string(buf[:n]), "<stream:stream") {
		t.Fatalf("no stream header from the server: %q", buf[:n])
	}
	conn.Close()
	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("serve exited %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{"listening", "self-signed", "stopped"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("log lacks %q:\n%s", want, r.stderr)
			}
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
