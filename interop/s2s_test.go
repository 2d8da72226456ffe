package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// Federation with Prosody and ejabberd from Debian's packages: each serves
// its own domain on a loopback address of its own; xmppd reaches it through
// an [s2s] route, and it reaches xmppd.test through an /etc/hosts of its
// own, bind-mounted in a mount namespace (unshare), on port 5269 of
// 127.0.0.2, where xmppd listens for servers. Both peers authenticate with
// dialback over TLS, as neither trusts the other's certificate.

const (
	xmppdS2S = "127.0.0.2:5269"
	peerIP   = "127.0.0.3"
)

// requirePeer skips the test (fails it under CI=true) when bin is missing
// or the test cannot make a mount namespace (it must run as root).
func requirePeer(t *testing.T, bin string) {
	t.Helper()
	var msg string
	switch _, err := exec.LookPath(bin); {
	case err != nil:
		msg = bin + " is not installed (apt-get install prosody ejabberd)"
	case os.Geteuid() != 0:
		msg = "federation interop needs root (unshare --mount for the peer's /etc/hosts)"
	}
	if msg == "" {
		if _, err := exec.LookPath("unshare"); err != nil {
			msg = "unshare is not installed"
		}
	}
	if msg == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; required under CI=true")
	}
	t.Skip(msg + "; skipping (under CI=true this fails)")
}

// peerDir makes a directory the peer's own user can read (t.TempDir's
// parents are private to root).
func peerDir(t *testing.T, owner string) string {
	t.Helper()
	d, err := os.MkdirTemp("", "xmppd-s2s-"+owner+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	return d
}

// chownR gives the peer's user its files.
func chownR(t *testing.T, dir, user string) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", user+":"+user, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
}

// hostsFile writes the peer's /etc/hosts: xmppd.test and its conference
// domain at xmppd's address.
func hostsFile(t *testing.T, dir, peerDomain string) string {
	t.Helper()
	p := filepath.Join(dir, "hosts")
	hosts := "127.0.0.1 localhost\n127.0.0.2 xmppd.test conference.xmppd.test\n" + peerIP + " " + peerDomain + "\n"
	if err := os.WriteFile(p, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startInNamespace runs argv (as user, "" for root) with hosts as its
// /etc/hosts, until the test ends.
func startInNamespace(t *testing.T, hosts, user, dir string, argv ...string) *bytes.Buffer {
	t.Helper()
	cmdline := "mount --bind " + hosts + " /etc/hosts && exec "
	if user != "" {
		cmdline += "setpriv --reuid=" + user + " --regid=" + user + " --init-groups "
	}
	cmdline += strings.Join(argv, " ")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", cmdline)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", argv[0], out.String())
		}
	})
	return &out
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := dialTCP(addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s; output:\n%s", addr, out.String())
}

// startXMPPD starts xmppd.test with its s2s listener where the peer's
// hosts file points and a route to the peer's s2s port.
func startXMPPD(t *testing.T, peerDomain string, opts ...xmpptest.Option) *xmpptest.Server {
	t.Helper()
	return xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithDomain("xmppd.test"), xmpptest.WithS2S(xmppdS2S),
		xmpptest.WithS2SRoute(peerDomain, peerIP+":5269"), xmpptest.WithS2SRoute("conference."+peerDomain, peerIP+":5269")}, opts...)...)
}

// federationExchange: alice on xmppd and carol on the peer subscribe to
// each other, see each other's presence and exchange messages both ways.
func federationExchange(t *testing.T, srv *xmpptest.Server, peer *xmpptest.Server) {
	t.Helper()
	const wait = 15 * time.Second
	aliceJID := srv.AddUser(t, "alice", "alice-pw")
	alice := srv.Login(t, aliceJID, "alice-pw", xmpptest.LoginOptions{Resource: "a"})
	carolJID := jid.MustParse("carol@" + peer.Domain)
	carol := peer.Login(t, carolJID, "carol-pw", xmpptest.LoginOptions{Resource: "c", Mechs: []sasl.Mechanism{sasl.ScramSha1}})
	for _, c := range []*xmpptest.Client{alice, carol} {
		c.Send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
		c.Expect(wait, "the roster", func(e xmpptest.Element) bool { return e.Attr("id") == "roster" })
		c.Send("<presence/>")
	}
	isPresence := func(from, typ string) func(xmpptest.Element) bool {
		return func(e xmpptest.Element) bool {
			return e.Name.Local == "presence" && e.Attr("from") == from && e.Attr("type") == typ
		}
	}
	alice.Send("<presence to='%s' type='subscribe'/>", carolJID)
	carol.Expect(wait, "alice's subscription request", isPresence(aliceJID.String(), "subscribe"))
	carol.Send("<presence to='%s' type='subscribed'/>", aliceJID)
	alice.Expect(wait, "carol's presence after approving", isPresence(carolJID.String()+"/c", ""))
	carol.Send("<presence to='%s' type='subscribe'/>", aliceJID)
	alice.Expect(wait, "carol's subscription request", isPresence(carolJID.String(), "subscribe"))
	alice.Send("<presence to='%s' type='subscribed'/>", carolJID)
	carol.Expect(wait, "alice's presence after approving", isPresence(aliceJID.String()+"/a", ""))

	alice.Send("<message to='%s' type='chat' id='to-peer'><body>hello from xmppd</body></message>", carolJID)
	m := carol.Expect(wait, "alice's message", func(e xmpptest.Element) bool { return e.Name.Local == "message" && e.Contains("hello from xmppd") })
	if m.Attr("from") != aliceJID.String()+"/a" {
		t.Errorf("carol got %s", m.Raw)
	}
	carol.Send("<message to='%s' type='chat' id='to-xmppd'><body>hello from %s</body></message>", aliceJID, peer.Domain)
	m = alice.Expect(wait, "carol's message", func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Contains("hello from "+peer.Domain)
	})
	if m.Attr("from") != carolJID.String()+"/c" {
		t.Errorf("alice got %s", m.Raw)
	}
	for _, c := range []struct {
		cl      *xmpptest.Client
		contact jid.JID
	}{{alice, carolJID}, {carol, aliceJID}} {
		c.cl.Send("<iq type='get' id='roster2'><query xmlns='jabber:iq:roster'/></iq>")
		e := c.cl.Expect(wait, "the roster", func(e xmpptest.Element) bool { return e.Attr("id") == "roster2" })
		if !e.Contains("jid='"+c.contact.String()+"'") || !e.Contains("subscription='both'") {
			t.Errorf("%s's roster: %s", c.cl.JID, e.Raw)
		}
	}
	carol.Close()
	alice.Expect(wait, "carol's unavailable presence", isPresence(carolJID.String()+"/c", "unavailable"))
	out, in := srv.S2S().Peers()
	t.Logf("xmppd's streams: out %v, in %v", out, in)
}

// TestProsodyS2S: federation with Prosody, by dialback (neither trusts the
// other's certificate) and by SASL EXTERNAL (both trust a test CA that
// issued both certificates).
func TestProsodyS2S(t *testing.T) {
	requirePeer(t, "prosody")
	for _, c := range []struct {
		name     string
		external bool
	}{{"dialback", false}, {"external", true}} {
		t.Run(c.name, func(t *testing.T) { prosodyS2S(t, c.external) })
	}
}

func prosodyS2S(t *testing.T, external bool) {
	const domain = "prosody.test"
	dir := peerDir(t, "prosody")
	ca := xmpptest.NewCA(t)
	cert, key := ca.Issue(t, domain)
	copyFile(t, cert, filepath.Join(dir, "cert.pem"))
	copyFile(t, key, filepath.Join(dir, "key.pem"))
	copyFile(t, ca.File, filepath.Join(dir, "ca.pem"))
	cafile := ""
	if external {
		cafile = `; cafile = "` + dir + `/ca.pem"`
	}
	c2s := peerIP + ":15222"
	cfg := fmt.Sprintf(`pidfile = "%[1]s/prosody.pid"
data_path = "%[1]s/data"
log = { debug = "%[1]s/prosody.log" }
interfaces = { "%[2]s" }
c2s_ports = { 15222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence" }
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = %[5]v
unbound = { hoststxt = "/etc/hosts" } -- the namespace's hosts file: xmppd.test
authentication = "internal_hashed"
ssl = { certificate = "%[1]s/cert.pem"; key = "%[1]s/key.pem"%[4]s }
VirtualHost "%[3]s"
`, dir, peerIP, domain, cafile, external)
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "prosody.cfg.lua"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	chownR(t, dir, "prosody")
	reg := exec.Command("setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups",
		"prosodyctl", "--config", filepath.Join(dir, "prosody.cfg.lua"), "register", "carol", domain, "carol-pw")
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("prosodyctl register: %v: %s", err, out)
	}
	var opts []xmpptest.Option
	if external {
		xc, xk := ca.Issue(t, "xmppd.test", "conference.xmppd.test")
		opts = append(opts, xmpptest.WithCert(xc, xk), func(c *config.Config) { c.S2S.CAFile = ca.File; c.S2S.Dialback = false })
	}
	srv := startXMPPD(t, domain, opts...)
	out := startInNamespace(t, hostsFile(t, dir, domain), "prosody", dir, "prosody", "--config", filepath.Join(dir, "prosody.cfg.lua"), "-F")
	waitListening(t, c2s, out)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
			t.Logf("prosody.log:\n%s", b)
		}
	})
	federationExchange(t, srv, xmpptest.At(c2s, domain))
	want := "dialback"
	if external {
		want = "external"
	}
	outS, inS := srv.S2S().Peers()
	if !slices.Contains(outS, "xmppd.test -> prosody.test "+want) || !slices.Contains(inS, "prosody.test -> xmppd.test "+want) {
		t.Errorf("streams: out %v, in %v; want both %s", outS, inS, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func dialTCP(addr string) (interface{ Close() error }, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}

// TestEjabberdS2S: federation with ejabberd.
func TestEjabberdS2S(t *testing.T) {
	requirePeer(t, "ejabberdctl")
	const domain = "ejabberd.test"
	dir := peerDir(t, "ejabberd")
	ca := xmpptest.NewCA(t)
	cert, key := ca.Issue(t, domain)
	cb, _ := os.ReadFile(cert)
	kb, _ := os.ReadFile(key)
	if err := os.WriteFile(filepath.Join(dir, "combined.pem"), append(cb, kb...), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	os.MkdirAll(filepath.Join(dir, "log"), 0o755)
	ctl := fmt.Sprintf(`ERL_MAX_PORTS=4096
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
ERLANG_NODE=xs2s@localhost
EJABBERD_BYPASS_WARNINGS=true
EJABBERD_PID_PATH=%s/ejabberd.pid
`, dir)
	yml := fmt.Sprintf(`hosts:
  - %[3]s
loglevel: info
log_rotate_count: 0
certfiles:
  - "%[1]s/combined.pem"
s2s_use_starttls: required
s2s_access: all
listen:
  -
    port: 15222
    ip: "%[2]s"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: 5269
    ip: "%[2]s"
    module: ejabberd_s2s_in
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
auth_password_format: scram
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_s2s_dialback: {}
`, dir, peerIP, domain)
	for name, content := range map[string]string{"ejabberdctl.cfg": ctl, "ejabberd.yml": yml} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile("/etc/ejabberd/inetrc"); err == nil {
		os.WriteFile(filepath.Join(dir, "inetrc"), b, 0o644)
	}
	chownR(t, dir, "ejabberd")
	ctlArgs := []string{"ejabberdctl", "--config-dir", dir, "--ctl-config", filepath.Join(dir, "ejabberdctl.cfg"),
		"--config", filepath.Join(dir, "ejabberd.yml"), "--logs", filepath.Join(dir, "log"), "--spool", filepath.Join(dir, "db")}
	srv := startXMPPD(t, domain)
	out := startInNamespace(t, hostsFile(t, dir, domain), "ejabberd", dir, append(ctlArgs, "foreground")...)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log", "ejabberd.log"))
			t.Logf("ejabberd.log:\n%s", b)
		}
	})
	c2s := peerIP + ":15222"
	waitListening(t, c2s, out)
	reg := exec.Command("setpriv", append([]string{"--reuid=ejabberd", "--regid=ejabberd", "--init-groups"}, append(ctlArgs, "register", "carol", domain, "carol-pw")...)...)
	reg.Dir, reg.Env = dir, append(os.Environ(), "HOME="+dir)
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("ejabberdctl register: %v: %s", err, out)
	}
	federationExchange(t, srv, xmpptest.At(c2s, domain))
	outS, inS := srv.S2S().Peers()
	if !slices.Contains(outS, "xmppd.test -> ejabberd.test dialback") || !slices.Contains(inS, "ejabberd.test -> xmppd.test dialback") {
		t.Errorf("streams: out %v, in %v; want dialback both ways", outS, inS)
	}
}
