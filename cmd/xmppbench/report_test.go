package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The keys bench/compare and docs/performance.md rely on.
func TestResultShape(t *testing.T) {
	cpu := 1.5
	cases := map[string]struct {
		v    any
		keys []string
	}{
		"login":    {LoginResult{Common: Common{Phase: "login", ServerCPUS: &cpu}}, []string{"phase", "n", "wall_s", "gen_cpu_s", "gen_cores", "server_cpu_s", "ok", "failed", "logins_per_s", "p50_ms", "p99_ms", "mech", "starttls", "primed"}},
		"register": {RegisterResult{Common: Common{Phase: "register"}}, []string{"phase", "created", "existed", "failed", "accounts_per_s"}},
		"hold":     {HoldResult{Common: Common{Phase: "hold"}, RSSBeforeKB: 1, RSSAfterKB: 2, BytesPerConn: 3}, []string{"phase", "alive", "server_rss_before_kb", "server_rss_after_kb", "server_bytes_per_conn", "gen_rss_kb"}},
		"chat":     {ChatResult{Common: Common{Phase: "chat"}, CPUPer10k: 0.5}, []string{"phase", "target_rate", "sent", "expected", "delivered", "bounced", "lost", "delivered_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "send_lag_p99_ms", "server_cpu_s_per_10k", "disconnects"}},
		"chatmax":  {MaxResult{Common: Common{Phase: "chatmax"}}, []string{"phase", "max_rate", "p99_ms", "steps", "p99_limit_ms"}},
	}
	for name, c := range cases {
		var buf bytes.Buffer
		o := &output{w: &buf}
		if err := o.emit(c.v); err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("%s: not one line: %q", name, line)
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, k := range c.keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no key %q in %s", name, k, line)
			}
		}
		if m["phase"] != name {
			t.Errorf("%s: phase = %v", name, m["phase"])
		}
	}
	// Without a PID there are no server figures at all (not zeros).
	var buf bytes.Buffer
	(&output{w: &buf}).emit(LoginResult{Common: Common{Phase: "login"}})
	if strings.Contains(buf.String(), "server_") {
		t.Errorf("server figures without a PID: %s", buf.String())
	}
}

func TestTable(t *testing.T) {
	lines := `{"phase":"login","label":"prosody","n":1000,"logins_per_s":200,"p99_ms":500,"other_cores":0.25}
{"phase":"login","label":"ejabberd","n":1000,"logins_per_s":500,"p99_ms":100,"other_cores":0.75,"other_procs_cores":0.01}
{"phase":"login","label":"xmppd-sqlite","n":1000,"logins_per_s":1000,"p99_ms":50,"other_cores":0.5,"other_procs_cores":0.02}
{"phase":"register","label":"prosody","n":1000,"accounts_per_s":150}
{"phase":"muc","label":"xmppd-sqlite","n":1000,"join_failed":50,"p99_ms":0}
{"phase":"muc","label":"ejabberd","n":1000,"p99_ms":2.5}
not json, ignored
`
	f := filepath.Join(t.TempDir(), "r.jsonl")
	os.WriteFile(f, []byte(lines), 0o644)
	var out bytes.Buffer
	if err := writeTable(&out, []string{f}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"N = 1000",
		"| figure | prosody | ejabberd | xmppd-sqlite | xmppd-sqlite ÷ prosody | xmppd-sqlite ÷ ejabberd |",
		"| logins/s | 200 | 500 | 1000 | 5.00× | 2.00× |",
		"| login p99 ms | 500 | 100 | 50.0 | 0.10× | 0.50× |",
		"| accounts created /s (see method) | 150 | n/a | n/a | – | – |",
		"| MUC: p99 ms | n/a | 2.50 | n/a | – | – |",
		// The exact count where a line has it, the tick-sampled one where not.
		"| login: other processes' cores (noise) | 0.25 | 0.01 | 0.02 | – | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
