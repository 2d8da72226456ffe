package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestContactAndExtDisco parses contact addresses and external services,
// and refuses bad ones naming the key, the item and the line.
func TestContactAndExtDisco(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "turn-secret")
	if err := os.WriteFile(secretFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	good := `[server.contact]
abuse = ["mailto:abuse@example.org", "xmpp:abuse@example.org"]
status = ["https://status.example.org/"]
security = ["xmpp:security@example.org?message"]

[extdisco]
credential_lifetime = "1h"

[[extdisco.services]]
type = "stun"
host = "stun.example.org"

[[extdisco.services]]
type = "turns"
host = "192.0.2.1"
port = 443
transport = "tcp"
name = "TURN"
secret_file = "` + secretFile + `"
`
	c, err := Parse([]byte(good), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Server.Contact.Abuse; !slices.Equal(got, []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"}) {
		t.Errorf("abuse = %q", got)
	}
	if c.ExtDisco.CredentialLifetime.Duration != time.Hour || len(c.ExtDisco.Services) != 2 {
		t.Fatalf("extdisco = %+v", c.ExtDisco)
	}
	stun, turns := c.ExtDisco.Services[0], c.ExtDisco.Services[1]
	if stun.DefaultPort() != 3478 || turns.DefaultPort() != 443 || turns.Transport != "tcp" || turns.Name != "TURN" {
		t.Errorf("services = %+v", c.ExtDisco.Services)
	}
	if s, err := turns.LoadSecret(); s != "s3cret" || err != nil {
		t.Errorf("LoadSecret = %q, %v", s, err)
	}
	if s, err := stun.LoadSecret(); s != "" || err != nil {
		t.Errorf("LoadSecret without one = %q, %v", s, err)
	}
	if p := (&ExternalService{Type: "turns"}).DefaultPort(); p != 5349 {
		t.Errorf("turns default port = %d", p)
	}

	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"bad URIs": {"[server.contact]\nabuse = [\"abuse@example.org\"]\nadmin = [\"xmpp:admin@example.org\", \"xmpp:@@\"]\nsupport = [\"ftp://example.org\", \"mailto:nobody\", \"https:///x\"]\n",
			[]string{
				`test.toml:2: server.contact.abuse: item 1: "abuse@example.org" is not a URI`,
				`test.toml:3: server.contact.admin: item 2: "xmpp:@@" is not an xmpp: URI with a valid JID`,
				`test.toml:4: server.contact.support: item 1: "ftp://example.org": scheme "ftp" is not one of mailto, xmpp, https, http`,
				`test.toml:4: server.contact.support: item 2: "mailto:nobody" is not a mailto: URI with an address`,
				`test.toml:4: server.contact.support: item 3: "https:///x" has no host`,
			}},
		"contact not a list": {"[server.contact]\nabuse = \"mailto:abuse@example.org\"\n",
			[]string{`test.toml:2: server.contact.abuse: want a list of strings`}},
		"bad service type": {"[[extdisco.services]]\ntype = \"stun\"\nhost = \"a.example\"\n\n[[extdisco.services]]\ntype = \"sip\"\nhost = \"b.example\"\n",
			[]string{`test.toml:2: extdisco.services.type: item 2: invalid value "sip" (want one of "stun", "stuns", "turn", "turns")`}},
		"service fields": {"[[extdisco.services]]\ntype = \"stun\"\nport = 70000\ntransport = \"sctp\"\nsecret = \"x\"\n",
			[]string{
				`test.toml:1: extdisco.services.host: item 1: must not be empty`,
				`test.toml:3: extdisco.services.port: item 1: invalid port 70000`,
				`test.toml:4: extdisco.services.transport: item 1: invalid value "sctp"`,
				`test.toml:5: extdisco.services.secret: item 1: only turn and turns services take a secret (got type "stun")`,
			}},
		"secret file on stun": {"[[extdisco.services]]\ntype = \"stun\"\nhost = \"s.example\"\nsecret_file = \"" + secretFile + "\"\n",
			[]string{`test.toml:4: extdisco.services.secret_file: item 1: only turn and turns services take a secret (got type "stun")`}},
		"bad host": {"[[extdisco.services]]\ntype = \"turn\"\nhost = \"turn example\"\n",
			[]string{`test.toml:3: extdisco.services.host: item 1: invalid host "turn example"`}},
		"secret twice": {"[[extdisco.services]]\ntype = \"turn\"\nhost = \"t.example\"\nsecret = \"x\"\nsecret_file = \"" + secretFile + "\"\n",
			[]string{`test.toml:5: extdisco.services.secret_file: item 1: set with secret`}},
		"empty secret file": {"[[extdisco.services]]\ntype = \"turn\"\nhost = \"t.example\"\nsecret_file = \"" + empty + "\"\n",
			[]string{`test.toml:4: extdisco.services.secret_file: item 1: "` + empty + `" is empty (want the secret)`}},
		"missing secret file": {"[[extdisco.services]]\ntype = \"turn\"\nhost = \"t.example\"\nsecret_file = \"" + filepath.Join(dir, "nope") + "\"\n",
			[]string{`test.toml:4: extdisco.services.secret_file: item 1: open ` + filepath.Join(dir, "nope") + `: no such file or directory`}},
		"unknown key in an item": {"[[extdisco.services]]\ntype = \"stun\"\nhostt = \"a.example\"\n",
			[]string{
				`test.toml:1: extdisco.services.host: item 1: must not be empty`,
				`test.toml:3: extdisco.services.hostt: item 1: unknown key (did you mean extdisco.services.host?)`,
			}},
		"wrong type in an item": {"[[extdisco.services]]\ntype = \"stun\"\nhost = \"a.example\"\nport = \"3478\"\n",
			[]string{`test.toml:4: extdisco.services.port: item 1: want an integer, got string "3478"`}},
		"services not tables": {"[extdisco]\nservices = [\"stun.example.org\"]\n",
			[]string{`test.toml:2: extdisco.services: item 1: want a table, got string "stun.example.org"`}},
		"lifetime": {"[extdisco]\ncredential_lifetime = \"0s\"\n",
			[]string{`test.toml:2: extdisco.credential_lifetime: must be more than 0s`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
		})
	}
}

// TestComponent parses [component] and refuses bad services naming the
// key, the item and the line.
func TestComponent(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "gw-secret")
	if err := os.WriteFile(secretFile, []byte("gw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "[server]\ndomain = \"example.org\"\n\n[component]\nlisten = \"127.0.0.1:5347\"\n\n" +
		"[[component.services]]\ndomain = \"Gateway.Example.org\"\nsecret = \"s\"\n\n" +
		"[[component.services]]\ndomain = \"bot.example.org\"\nsecret_file = \"" + secretFile + "\"\n"
	c, err := Parse([]byte(good), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Component.Services; len(got) != 2 || got[0].Domain != "gateway.example.org" || got[0].Secret != "s" {
		t.Fatalf("services = %+v", got)
	}
	if s, err := c.Component.Services[1].LoadSecret(); s != "gw" || err != nil {
		t.Errorf("LoadSecret = %q, %v", s, err)
	}

	svc := func(domain, rest string) string {
		return "[[component.services]]\ndomain = \"" + domain + "\"\n" + rest
	}
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"no listen": {svc("gw.localhost", "secret = \"s\"\n"),
			[]string{`test.toml:1: component.listen: must be set when [[component.services]] are configured`}},
		"server domain": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("localhost", "secret = \"s\"\n"),
			[]string{`test.toml:4: component.services.domain: item 1: "localhost" is not a subdomain-style name`}},
		"muc domain": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("conference.localhost", "secret = \"s\"\n"),
			[]string{`test.toml:4: component.services.domain: item 1: "conference.localhost" is already served`}},
		"upload domain": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("upload.localhost", "secret = \"s\"\n"),
			[]string{`test.toml:4: component.services.domain: item 1: "upload.localhost" is already served`}},
		"twice": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("gw.localhost", "secret = \"s\"\n") + svc("GW.localhost", "secret = \"t\"\n"),
			[]string{`test.toml:4: component.services.domain: item 2: "GW.localhost" is item 1's domain too`}},
		"jid": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("a@gw.localhost", "secret = \"s\"\n"),
			[]string{`test.toml:4: component.services.domain: item 1: "a@gw.localhost" is a JID, not a domain`}},
		"no secret": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("gw.localhost", ""),
			[]string{`test.toml:3: component.services.secret: item 1: must be set, or secret_file`}},
		"both secrets": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("gw.localhost", "secret = \"s\"\nsecret_file = \""+secretFile+"\"\n"),
			[]string{`test.toml:6: component.services.secret_file: item 1: set with secret`}},
		"missing secret file": {"[component]\nlisten = \"127.0.0.1:5347\"\n" + svc("gw.localhost", "secret_file = \""+filepath.Join(dir, "nope")+"\"\n"),
			[]string{`test.toml:5: component.services.secret_file: item 1: open ` + filepath.Join(dir, "nope") + `: no such file or directory`}},
		"queue": {"[component]\nsend_queue_bytes = 100\n",
			[]string{`test.toml:2: component.send_queue_bytes: 100 is less than c2s.max_stanza_bytes`}},
		"same address": {"[c2s]\nlisten = \"127.0.0.1:5222\"\n[component]\nlisten = \"127.0.0.1:5222\"\n",
			[]string{`test.toml:4: component.listen: "127.0.0.1:5222" uses the same port as c2s.listen`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
		})
	}
}
