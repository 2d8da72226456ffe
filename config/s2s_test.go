package config

import (
	"slices"
	"testing"
)

// TestS2S: the [s2s] table parses, normalises domains, and each problem
// names its key (and its item).
func TestS2S(t *testing.T) {
	good := "[s2s]\ninsecure_domains = [\"Test.Example\"]\ndeny = [\"spam.example\"]\nretry_delay = \"0s\"\n\n" +
		"[[s2s.routes]]\ndomain = \"Peer.Example\"\naddress = \"10.0.0.2:5269\"\n"
	c, err := Parse([]byte(good), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.S2S.InsecureDomains, []string{"test.example"}) || c.S2S.Routes[0].Domain != "peer.example" ||
		c.S2S.Listen != ":5269" || !c.S2S.RequireTLS || !c.S2S.Dialback {
		t.Errorf("s2s = %+v", c.S2S)
	}
	route := func(domain, addr string) string {
		return "[[s2s.routes]]\ndomain = \"" + domain + "\"\naddress = \"" + addr + "\"\n"
	}
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"listen":         {"[s2s]\nlisten = \"5269\"\n", []string{`test.toml:2: s2s.listen: invalid address "5269"`}},
		"same port":      {"[c2s]\nlisten = \":5222\"\n[s2s]\nlisten = \":5222\"\n", []string{`test.toml:4: s2s.listen: ":5222" uses the same port as c2s.listen`}},
		"deny jid":       {"[s2s]\ndeny = [\"a@b.example\"]\n", []string{`test.toml:2: s2s.deny: item 1: "a@b.example" is a JID, not a domain`}},
		"timeout":        {"[s2s]\nconnect_timeout = \"0s\"\n", []string{`test.toml:2: s2s.connect_timeout: must be more than 0s`}},
		"queue":          {"[s2s]\nqueue_stanzas = 0\n", []string{`test.toml:2: s2s.queue_stanzas: 0 is too small`}},
		"ca file":        {"[s2s]\nca_file = \"/nonexistent/ca.pem\"\n", []string{`test.toml:2: s2s.ca_file:`}},
		"route address":  {route("peer.example", ":5269"), []string{`test.toml:3: s2s.routes.address: item 1: a route needs a host`}},
		"route no port":  {route("peer.example", "peer.example"), []string{`test.toml:3: s2s.routes.address: item 1: invalid address`}},
		"route twice":    {route("peer.example", "a:1") + route("PEER.example", "b:2"), []string{`test.toml:2: s2s.routes.domain: item 2: "PEER.example" is item 1's domain too`}},
		"negative rate":  {"[s2s]\nread_rate = -1\n", []string{`test.toml:2: s2s.read_rate: must not be negative`}},
		"small stanzas":  {"[s2s]\nmax_stanza_bytes = 100\n", []string{`test.toml:2: s2s.max_stanza_bytes: 100 is too small`}},
		"negative retry": {"[s2s]\nretry_delay = \"-1s\"\n", []string{`test.toml:2: s2s.retry_delay: must not be negative`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
		})
	}
}
