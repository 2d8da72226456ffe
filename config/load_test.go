package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// checkErrorLines fails unless err has exactly one line per entry of want,
// in order, each line starting with its entry, or equal to it when the entry
// ends in $.
func checkErrorLines(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse() = nil error, want:\n%s", strings.Join(want, "\n"))
	}
	got := strings.Split(err.Error(), "\n")
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		if exact, ok2 := strings.CutSuffix(want[i], "$"); ok2 {
			ok = got[i] == exact
		} else {
			ok = strings.HasPrefix(got[i], want[i])
		}
	}
	if !ok {
		t.Errorf("Parse() error:\n%s\nwant lines starting:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("not checked"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	for name, tc := range map[string]struct {
		in   string
		want []string // the error's lines, each a prefix
	}{
		// Unknown keys.
		"typo": {"[c2s]\nlisen = \":5222\"\n",
			[]string{`test.toml:2: c2s.lisen: unknown key (did you mean c2s.listen?)`}},
		"wrong case": {"[log]\nLevel = \"debug\"\n",
			[]string{`test.toml:2: log.Level: unknown key (did you mean log.level?)`}},
		"unknown table": {"[server]\ndomain = \"example.com\"\n\n[c2ss]\nlisten = \":5222\"\n",
			[]string{`test.toml:4: c2ss: unknown key (did you mean c2s?)`}},
		"no suggestion": {"[server]\nflux_capacitor = 1\n",
			[]string{`test.toml:2: server.flux_capacitor: unknown key$`}},
		"key outside its table": {"domain = \"example.com\"\n",
			[]string{`test.toml:1: domain: unknown key (did you mean server.domain?)`}},
		"key in the wrong table": {"[c2s]\nscram_iterations = 10000\n",
			[]string{`test.toml:2: c2s.scram_iterations: unknown key (did you mean auth.scram_iterations?)`}},
		"dotted key": {"c2s.lisen = \":5222\"\n",
			[]string{`test.toml:1: c2s.lisen: unknown key`}},
		"quoted key": {"[c2s]\n\"lis ten\" = 1\n",
			[]string{`test.toml:2: c2s."lis ten": unknown key`}},
		"inline table over lines": {"c2s = {\n  listen = \":5222\",\n  lisen = \":5222\",\n}\n",
			[]string{`test.toml:3: c2s.lisen: unknown key`}},
		"not fooled by a multi-line string": {
			"[storage]\ndsn = \"\"\"\n[c2s]\nlisen = 1\"\"\"\n# [c2s]\n[c2s] # lisen = 2\nlisen = \":5222\"\n",
			[]string{`test.toml:7: c2s.lisen: unknown key`}},

		// Wrong types.
		"string wanted": {"[c2s]\nlisten = 5222\n",
			[]string{`test.toml:2: c2s.listen: want a string in quotes, got integer 5222`}},
		"bool wanted": {"[c2s]\nrequire_starttls = \"yes\"\n",
			[]string{`test.toml:2: c2s.require_starttls: want true or false, got string "yes"`}},
		"int wanted": {"[c2s]\nmax_stanza_bytes = \"256K\"\n",
			[]string{`test.toml:2: c2s.max_stanza_bytes: want an integer, got string "256K"`}},
		"float for int": {"[c2s]\nmax_depth = 64.5\n",
			[]string{`test.toml:2: c2s.max_depth: want an integer, got float 64.5`}},
		"duration as number": {"[c2s]\nping_interval = 240\n",
			[]string{`test.toml:2: c2s.ping_interval: want a duration in quotes such as "30s", got integer 240`}},
		"table wanted": {"c2s = \":5222\"\n",
			[]string{`test.toml:1: c2s: want a table ([c2s]), got string ":5222"`}},
		"array of tables": {"[[c2s]]\nlisten = \":5222\"\n",
			[]string{`test.toml:1: c2s: want a table ([c2s]), got an array of tables`}},
		"table for a value": {"[c2s.listen]\nport = 5222\n",
			[]string{`test.toml:1: c2s.listen: want a string in quotes, got a table`}},

		// Syntax.
		"syntax": {"[c2s]\nlisten = :5222\n",
			[]string{`test.toml:2: TOML syntax: `}},
		"duplicate key": {"[c2s]\nlisten = \":1\"\nlisten = \":2\"\n",
			[]string{`test.toml:3: TOML syntax: `}},

		// Values.
		"bad port": {"[c2s]\nlisten = \":99999\"\n",
			[]string{`test.toml:2: c2s.listen: invalid port "99999" (want 1-65535)`}},
		"port 0": {"[http]\nlisten = \"127.0.0.1:0\"\n",
			[]string{`test.toml:2: http.listen: invalid port "0" (want 1-65535)`}},
		"port by name": {"[c2s]\nlisten = \":xmpp-client\"\n",
			[]string{`test.toml:2: c2s.listen: invalid port "xmpp-client" (want 1-65535)`}},
		"no port": {"[c2s]\ndirect_tls_listen = \"5223\"\n",
			[]string{`test.toml:2: c2s.direct_tls_listen: invalid address "5223" (want host:port`}},
		"bad host": {"[c2s]\nlisten = \"my host:5222\"\n",
			[]string{`test.toml:2: c2s.listen: invalid host "my host"`}},
		"empty listen": {"[c2s]\nlisten = \"\"\n",
			[]string{`test.toml:2: c2s.listen: must not be empty`}},
		"same port twice": {"[c2s]\nlisten = \":5222\"\n[http]\nlisten = \"127.0.0.1:5222\"\n",
			[]string{`test.toml:4: http.listen: "127.0.0.1:5222" uses the same port as c2s.listen (":5222")`}},
		"empty domain": {"[server]\ndomain = \"\"\n",
			[]string{`test.toml:2: server.domain: must not be empty`}},
		"domain is a JID": {"[server]\ndomain = \"admin@example.com\"\n",
			[]string{`test.toml:2: server.domain: "admin@example.com" is a JID, not a domain`}},
		"domain with port": {"[server]\ndomain = \"example.com:5222\"\n",
			[]string{`test.toml:2: server.domain: invalid domain "example.com:5222": `}},
		"domain with empty label": {"[server]\ndomain = \"example..com\"\n",
			[]string{`test.toml:2: server.domain: invalid domain "example..com": empty label`}},
		"empty data_dir": {"[server]\ndata_dir = \"\"\n",
			[]string{`test.toml:2: server.data_dir: must not be empty`}},
		"log level": {"[log]\nlevel = \"verbose\"\n",
			[]string{`test.toml:2: log.level: invalid value "verbose" (want one of "debug", "info", "warn", "error")`}},
		"log format": {"[log]\nformat = \"logfmt\"\n",
			[]string{`test.toml:2: log.format: invalid value "logfmt" (want one of "text", "json")`}},
		"storage driver": {"[storage]\ndriver = \"mysql\"\n",
			[]string{`test.toml:2: storage.driver: invalid value "mysql" (want one of "sqlite", "postgres")`}},
		"postgres without dsn": {"[storage]\ndriver = \"postgres\"\n",
			[]string{`test.toml:1: storage.dsn: required when storage.driver = "postgres"`}},
		"postgres with a path": {"[storage]\ndriver = \"postgres\"\ndsn = \"/var/lib/xmppd/xmppd.db\"\n",
			[]string{`test.toml:3: storage.dsn: not a libpq connection string`}},
		"bad duration": {"[c2s]\nhandshake_timeout = \"30\"\n",
			[]string{`test.toml:2: c2s.handshake_timeout: invalid duration "30" (want a number and a unit`}},
		"duration word": {"[auth]\nlockout = \"five minutes\"\n",
			[]string{`test.toml:2: auth.lockout: invalid duration "five minutes"`}},
		"zero timeout": {"[c2s]\nwrite_timeout = \"0s\"\n",
			[]string{`test.toml:2: c2s.write_timeout: must be more than 0s (got "0s")`}},
		"negative ping_interval": {"[c2s]\nping_interval = \"-1m\"\n",
			[]string{`test.toml:2: c2s.ping_interval: must not be negative (got "-1m0s"; 0s disables pings)`}},
		"negative failure_delay": {"[auth]\nfailure_delay = \"-1s\"\n",
			[]string{`test.toml:2: auth.failure_delay: must not be negative`}},
		"small stanzas": {"[c2s]\nmax_stanza_bytes = 9999\n",
			[]string{`test.toml:2: c2s.max_stanza_bytes: 9999 is too small (want at least 10000`}},
		"send queue smaller than a stanza": {"[c2s]\nmax_stanza_bytes = 100000\nsend_queue_bytes = 50000\n",
			[]string{`test.toml:3: c2s.send_queue_bytes: 50000 is less than c2s.max_stanza_bytes (100000)`}},
		"max_depth": {"[c2s]\nmax_depth = 0\n",
			[]string{`test.toml:2: c2s.max_depth: 0 is too small (want at least 8)`}},
		"send_queue_stanzas": {"[c2s]\nsend_queue_stanzas = 0\n",
			[]string{`test.toml:2: c2s.send_queue_stanzas: 0 is too small (want at least 1)`}},
		"negative max_failures": {"[auth]\nmax_failures = -5\n",
			[]string{`test.toml:2: auth.max_failures: must not be negative (got -5; 0 turns throttling off)`}},
		"absurd max_connections": {"[c2s]\n\nmax_connections = 99999999999\n",
			[]string{`test.toml:3: c2s.max_connections: 99999999999 is absurdly large (want at most 10000000)`}},
		"negative connection rate": {"[c2s]\nconnection_rate_per_address = -1\n",
			[]string{`test.toml:2: c2s.connection_rate_per_address: must not be negative (got -1; 0 sets no limit)`}},
		"per-address above total": {"[c2s]\nmax_connections = 10\nmax_connections_per_address = 20\n",
			[]string{`test.toml:3: c2s.max_connections_per_address: 20 is more than c2s.max_connections (10)`}},
		"absurd failure_delay": {"[auth]\nfailure_delay = \"10m\"\n",
			[]string{`test.toml:2: auth.failure_delay: "10m0s" is too long`}},
		"account limit below the pair limit": {"[auth]\nmax_failures = 10\naccount_max_failures = 3\n",
			[]string{`test.toml:3: auth.account_max_failures: 3 is less than auth.max_failures (10)`}},
		"bad trusted network": {"[auth]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
			[]string{`test.toml:2: auth.trusted_networks: item 2: "10.0.0.0/33" is not a network`}},
		"trusted network not a string": {"[auth]\ntrusted_networks = [10]\n",
			[]string{`test.toml:2: auth.trusted_networks: item 1: want a string in quotes, got integer 10`}},
		"trusted networks not a list": {"[auth]\ntrusted_networks = \"10.0.0.0/8\"\n",
			[]string{`test.toml:2: auth.trusted_networks: want a list of strings`}},
		"archive flush too rare": {"[mam]\nflush_interval = \"2m\"\n",
			[]string{`test.toml:2: mam.flush_interval: 2m0s is more than 1m: a crash would lose that much of the archive`}},
		"bad trusted proxy": {"[http]\ntrusted_proxies = [\"10.0.0.5\", \"proxy.example.org\"]\n",
			[]string{`test.toml:2: http.trusted_proxies: item 2: "proxy.example.org" is not a network`}},
		"proxy protocol without networks": {"[c2s]\nproxy_protocol = true\n",
			[]string{`test.toml:1: c2s.proxy_networks: must list the proxies' networks when c2s.proxy_protocol is true`}},
		"negative offline max_bytes": {"[offline]\nmax_bytes = -1\n",
			[]string{`test.toml:2: offline.max_bytes: -1 is too small (want at least 0, 0 sets no bound in bytes)`}},
		"scram iterations": {"[auth]\nscram_iterations = 1000\n",
			[]string{`test.toml:2: auth.scram_iterations: 1000 is too small (want at least 4096`}},
		"public_url scheme": {"[http]\npublic_url = \"xmpp.example.com\"\n",
			[]string{`test.toml:2: http.public_url: invalid URL "xmpp.example.com" (want an absolute http:// or https:// URL`}},
		"public_url query": {"[http]\npublic_url = \"https://example.com/?x=1\"\n",
			[]string{`test.toml:2: http.public_url: "https://example.com/?x=1" has a query or fragment`}},
		"allowed_origins with a path": {"[http]\nallowed_origins = [\"https://chat.example.com/app\"]\n",
			[]string{`test.toml:2: http.allowed_origins: "https://chat.example.com/app" is more than an origin`}},
		"allowed_origins not a URL": {"[http]\nallowed_origins = [\"chat.example.com\"]\n",
			[]string{`test.toml:2: http.allowed_origins: invalid origin "chat.example.com"`}},
		"cert without key": {"[tls]\ncert_file = \"" + cert + "\"\n",
			[]string{`test.toml:1: tls.key_file: must be set when tls.cert_file is set`}},
		"key without cert": {"[tls]\nkey_file = \"" + cert + "\"\n",
			[]string{`test.toml:1: tls.cert_file: must be set when tls.key_file is set`}},
		"missing cert file": {"[tls]\ncert_file = \"" + missing + "\"\nkey_file = \"" + cert + "\"\n",
			[]string{`test.toml:2: tls.cert_file: cannot read "` + missing + `": no such file or directory`}},
		"cert file is a directory": {"[tls]\ncert_file = \"" + cert + "\"\nkey_file = \"" + dir + "\"\n",
			[]string{`test.toml:3: tls.key_file: "` + dir + `" is a directory (want a PEM file)`}},

		// Several problems: all reported, in the order of the lines.
		"several": {"[server]\ndomain = \"\"\n[c2s]\nlisten = \":99999\"\nlisen = \":5222\"\nping_interval = 30\n" +
			"[storage]\ndriver = \"postgres\"\n",
			[]string{
				`test.toml:2: server.domain: must not be empty`,
				`test.toml:4: c2s.listen: invalid port "99999"`,
				`test.toml:5: c2s.lisen: unknown key`,
				`test.toml:6: c2s.ping_interval: want a duration`,
				`test.toml:7: storage.dsn: required when storage.driver = "postgres"`,
			}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Parse() returned a Config with its error: %+v", c)
			}
		})
	}
}

// TestParseErrorsLineInExample changes one key of the example and checks
// that the error points at its line.
func TestParseErrorsLineInExample(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for _, tc := range []struct{ old, new, want string }{
		{`max_depth = 64`, `max_depth = "deep"`, `c2s.max_depth: want an integer, got string "deep"`},
		{`lockout = "5m"`, `lockout = "5 minutes"`, `auth.lockout: invalid duration "5 minutes"`},
		{`key_file = ""`, `key_fiel = ""`, `tls.key_fiel: unknown key (did you mean tls.key_file?)`},
		{`listen = ":5280"`, `listen = ":65536"`, `http.listen: invalid port "65536" (want 1-65535)`},
	} {
		n := -1
		for i, l := range lines {
			if l == tc.old {
				n = i
			}
		}
		if n < 0 {
			t.Fatalf("%s has no line %q", examplePath, tc.old)
		}
		changed := append([]string(nil), lines...)
		changed[n] = tc.new
		_, err := Parse([]byte(strings.Join(changed, "\n")), "config.toml")
		checkErrorLines(t, err, []string{fmt.Sprintf("config.toml:%d: %s", n+1, tc.want)})
	}
}

func TestParseValid(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("not checked"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		in   string
		want func(*Config)
	}{
		"pings off":     {"[c2s]\nping_interval = \"0s\"\n", func(c *Config) { c.C2S.PingInterval = Duration{} }},
		"no delay":      {"[auth]\nfailure_delay = \"0s\"\n", func(c *Config) { c.Auth.FailureDelay = Duration{} }},
		"no throttling": {"[auth]\nmax_failures = 0\n", func(c *Config) { c.Auth.MaxFailures = 0 }},
		"trusted networks": {"[auth]\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::1\"]\n",
			func(c *Config) { c.Auth.TrustedNetworks = []string{"10.0.0.0/8", "2001:db8::1"} }},
		"proxy protocol": {"[c2s]\nproxy_protocol = true\nproxy_networks = [\"127.0.0.1\"]\n",
			func(c *Config) { c.C2S.ProxyProtocol, c.C2S.ProxyNetworks = true, []string{"127.0.0.1"} }},
		"no direct tls": {"[c2s]\ndirect_tls_listen = \"\"\n", func(c *Config) { c.C2S.DirectTLSListen = "" }},
		"no http":       {"[http]\nlisten = \"\"\n", func(c *Config) { c.HTTP.Listen = "" }},
		"ipv6 listen":   {"[c2s]\nlisten = \"[::1]:5222\"\n", func(c *Config) { c.C2S.Listen = "[::1]:5222" }},
		"host name":     {"[c2s]\nlisten = \"localhost:5222\"\n", func(c *Config) { c.C2S.Listen = "localhost:5222" }},
		"other ports": {"[c2s]\nlisten = \"127.0.0.1:5222\"\ndirect_tls_listen = \"127.0.0.2:5222\"\n", func(c *Config) {
			c.C2S.Listen, c.C2S.DirectTLSListen = "127.0.0.1:5222", "127.0.0.2:5222"
		}},
		"domain normalised": {"[server]\ndomain = \"XMPP.Example.COM\"\n", func(c *Config) { c.Server.Domain = "xmpp.example.com" }},
		"postgres url": {"[storage]\ndriver = \"postgres\"\ndsn = \"postgres://xmppd@localhost/xmppd?sslmode=disable\"\n", func(c *Config) {
			c.Storage = Storage{Driver: DriverPostgres, DSN: "postgres://xmppd@localhost/xmppd?sslmode=disable"}
		}},
		"postgres key=value": {"[storage]\ndriver = \"postgres\"\ndsn = \"host=/run/postgresql dbname=xmppd\"\n", func(c *Config) {
			c.Storage = Storage{Driver: DriverPostgres, DSN: "host=/run/postgresql dbname=xmppd"}
		}},
		"public url": {"[http]\npublic_url = \"https://example.com/xmpp/\"\n", func(c *Config) { c.HTTP.PublicURL = "https://example.com/xmpp/" }},
		"tls files": {"[tls]\ncert_file = '" + cert + "'\nkey_file = '" + key + "'\n", func(c *Config) {
			c.TLS = TLS{CertFile: cert, KeyFile: key}
		}},
		"dotted keys": {"c2s.max_depth = 32\nauth.lockout = \"1h\"\n", func(c *Config) {
			c.C2S.MaxDepth, c.Auth.Lockout = 32, Duration{time.Hour}
		}},
		"inline table": {"log = { level = \"debug\", format = \"json\" }\n", func(c *Config) {
			c.Log = Log{Level: "debug", Format: "json"}
		}},
		"comments and CRLF": {"# xmppd\r\n[c2s] # clients\r\nmax_depth = 16 # deep enough\r\n", func(c *Config) { c.C2S.MaxDepth = 16 }},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in), "test.toml")
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse() =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

func TestParseErrorValues(t *testing.T) {
	_, err := Parse([]byte("[c2s]\nlisten = \":99999\"\n[log]\nlevel = \"loud\"\n"), "x.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	if want := (Error{File: "x.toml", Line: 2, Key: "c2s.listen", Msg: `invalid port "99999" (want 1-65535)`}); e.File != want.File ||
		e.Line != want.Line || e.Key != want.Key || e.Msg != want.Msg {
		t.Errorf("first error = %+v, want %+v", *e, want)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 2 {
		t.Fatalf("Parse() error is not two joined errors: %#v", err)
	}

	_, err = Parse([]byte("[c2s\n"), "x.toml")
	var pe toml.ParseError
	if !errors.As(err, &pe) || !errors.As(err, &e) || e.Line != pe.Position.Line || e.Key != "" {
		t.Errorf("syntax error %v: want an *Error with the line of the toml.ParseError it wraps", err)
	}

	_, err = Parse([]byte("[c2s]\nlisten = \":0\"\n"), "")
	if want := `config: line 2: c2s.listen: invalid port "0" (want 1-65535)`; err == nil || err.Error() != want {
		t.Errorf("Parse(name \"\") = %v, want %s", err, want)
	}
}

func TestUnreadableCertFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read any file")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte("[tls]\ncert_file = '"+cert+"'\nkey_file = '"+key+"'\n"), "test.toml")
	checkErrorLines(t, err, []string{`test.toml:3: tls.key_file: cannot read "` + key + `": permission denied`})
}
