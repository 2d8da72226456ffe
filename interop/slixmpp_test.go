// Package interop checks xmppd against client libraries nobody here wrote.
//
// Each scenario is a Python script, testdata/slixmpp_<scenario>.py, that
// drives Debian's python3-slixmpp (only importable with /usr/bin/python3)
// against a real xmppd started in-process by xmpptest, and a Go test that
// runs it and asserts on the one JSON line it prints: what each account saw
// (STARTTLS, the SASL mechanism used, the bound JID, the messages received,
// refusals). testdata/slixmpp_common.py holds what the scripts share;
// testdata/slixmpp_pepcommon.py adds what the PEP scenarios (avatar,
// OMEMO, vCard, bookmarks) share: slixmpp's PEP plugins, the events and
// caps queries an account saw, befriend, and wait_interest. The nbxmpp
// scenarios (testdata/nbxmpp_*.py) print their own JSON line.
//
// To add a scenario: write testdata/slixmpp_<name>.py with
// slixmpp_common.Account and slixmpp_common.run, and a TestSlixmpp<Name>
// that calls runSlixmpp and checks the accounts it returns.
//
// Without slixmpp the tests are skipped, except under CI=true, where that
// is a failure (.ci/run installs python3-slixmpp). slixmpp's log of every
// stanza is in the test log when a test fails, or always with
// INTEROP_DEBUG=1.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// python is Debian's interpreter: the python3 first on PATH may be
// another install that cannot import Debian's python3-slixmpp.
const python = "/usr/bin/python3"

// scriptTimeout bounds one scenario run; the scripts bound each of their
// own waits to 20 s.
const scriptTimeout = 60 * time.Second

// result is the JSON line a scenario script prints.
type result struct {
	SlixmppVersion string             `json:"slixmpp_version"`
	Error          *string            `json:"error"` // nil: the scenario ran to its end
	Accounts       map[string]account `json:"accounts"`
}

// account is what one slixmpp client recorded.
type account struct {
	JID                string       `json:"jid"`
	RequestedMechanism string       `json:"requested_mechanism"` // "": slixmpp's choice
	TLSMax             *string      `json:"tls_max"`
	StartTLS           bool         `json:"starttls"` // STARTTLS completed
	TLSVersion         string       `json:"tls_version"`
	TLSAtAuth          bool         `json:"tls_at_auth"` // the SASL exchange ran over TLS
	OfferedMechanisms  []string     `json:"offered_mechanisms"`
	Mechanism          string       `json:"mechanism"`  // the one that succeeded
	GS2Header          string       `json:"gs2_header"` // SCRAM's: "n,,", "y,,", "p=tls-unique,,"
	Authenticated      bool         `json:"authenticated"`
	BoundJID           string       `json:"bound_jid"`
	SessionStarted     bool         `json:"session_started"`
	Ping               string       `json:"ping"` // XEP-0199 ping of the domain: "result", "error: …", "timeout"
	FailedAuth         []authFail   `json:"failed_auth"`
	FailedAllAuth      bool         `json:"failed_all_auth"`
	StreamErrors       []string     `json:"stream_errors"`
	Received           []rcvMessage `json:"received"`
	Disconnected       bool         `json:"disconnected"`
	// Extra is what a scenario records of its own (record["extra"]),
	// for its test to decode.
	Extra json.RawMessage `json:"extra"`
}

type authFail struct {
	Mechanism string `json:"mechanism"`
	GS2Header string `json:"gs2_header"`
	Condition string `json:"condition"`
	Text      string `json:"text"`
}

type rcvMessage struct {
	From string `json:"from"`
	To   string `json:"to"`
	Type string `json:"type"`
	Body string `json:"body"`
	ID   string `json:"id"`
	// XEP-0203 <delay/>, when the message has one.
	DelayFrom  string `json:"delay_from"`
	DelayStamp string `json:"delay_stamp"`
}

var (
	slixmppOnce    sync.Once
	slixmppVersion string
	slixmppErr     string
)

// requireSlixmpp skips the test when /usr/bin/python3 cannot import
// slixmpp, and fails it instead under CI=true.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	slixmppOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
		if err != nil {
			slixmppErr = strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
			return
		}
		slixmppVersion = strings.TrimSpace(string(out))
	})
	if slixmppErr != "" {
		msg := "interop: " + python + " cannot import slixmpp (apt-get install python3-slixmpp): " + slixmppErr
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; required under CI=true")
		}
		t.Skip(msg + "; skipping (under CI=true this fails)")
	}
	t.Logf("slixmpp %s", slixmppVersion)
}

// runSlixmpp runs testdata/<script> against srv with --host, --port and
// --domain followed by args, and returns the JSON line it printed. A script
// that printed no result fails the test; one that did is returned even
// when it exited non-zero (Error says why), so the caller's checks report
// what each account saw.
func runSlixmpp(t *testing.T, srv *xmpptest.Server, script string, args ...string) result {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatalf("interop: server address %q: %v", srv.Addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	argv := append([]string{"testdata/" + script, "--host", host, "--port", port, "--domain", srv.Domain}, args...)
	cmd := exec.CommandContext(ctx, python, argv...)
	// slixmpp always logs every stanza; the test log shows it when the
	// test fails (or with INTEROP_DEBUG set).
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "INTEROP_DEBUG=1")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	t.Cleanup(func() {
		if s := strings.TrimRight(stderr.String(), "\n"); s != "" && (t.Failed() || os.Getenv("INTEROP_DEBUG") != "") {
			t.Logf("%s standard error (slixmpp's log):\n%s", script, s)
		}
	})
	t.Logf("%s: %v in %v; output: %s", script, exitStatus(runErr), elapsed, strings.TrimSpace(stdout.String()))
	if ctx.Err() != nil {
		t.Fatalf("interop: %s killed after %v", script, scriptTimeout)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	var res result
	if err := json.Unmarshal([]byte(last), &res); err != nil || res.Accounts == nil {
		t.Fatalf("interop: %s (%v) printed no result line: %q (%v)", script, exitStatus(runErr), last, err)
	}
	if res.Error != nil {
		t.Errorf("interop: %s did not run to its end: %s", script, *res.Error)
	} else if runErr != nil {
		t.Errorf("interop: %s: %v", script, runErr)
	}
	return res
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// get returns the named account of res, failing the test if it is absent.
func (res result) get(t *testing.T, name string) account {
	t.Helper()
	a, ok := res.Accounts[name]
	if !ok {
		t.Fatalf("interop: no account %q in the result", name)
	}
	return a
}

// bare strips the resource from a JID.
func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// checkLoggedIn asserts that a logged in over STARTTLS with mech and bound
// a resource of its own JID.
func checkLoggedIn(t *testing.T, name string, a account, mech string) {
	t.Helper()
	if !a.StartTLS || !a.TLSAtAuth {
		t.Errorf("%s: STARTTLS completed = %v, SASL over TLS = %v; want both", name, a.StartTLS, a.TLSAtAuth)
	}
	if !a.Authenticated || a.Mechanism != mech {
		t.Errorf("%s: authenticated = %v with %q (failures %+v); want %s", name, a.Authenticated, a.Mechanism, a.FailedAuth, mech)
	}
	if !contains(a.OfferedMechanisms, mech) {
		t.Errorf("%s: server offered %q, not %s", name, a.OfferedMechanisms, mech)
	}
	if len(a.FailedAuth) != 0 {
		t.Errorf("%s: refused logins before success: %+v", name, a.FailedAuth)
	}
	if !a.SessionStarted || bare(a.BoundJID) != a.JID || a.BoundJID == a.JID {
		t.Errorf("%s: session started = %v, bound %q; want a resource of %s", name, a.SessionStarted, a.BoundJID, a.JID)
	}
	if a.Ping != "result" {
		t.Errorf("%s: ping of the server: %q, want result", name, a.Ping)
	}
	if len(a.StreamErrors) != 0 {
		t.Errorf("%s: stream errors %q", name, a.StreamErrors)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
