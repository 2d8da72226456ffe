package config

import (
	"path/filepath"
	"testing"
	"time"
)

// TestPublicURLWithTLS: with tls_listen the derived public URL is https
// on its port; public_url still wins; no listener, no URL.
func TestPublicURLWithTLS(t *testing.T) {
	for name, tc := range map[string]struct {
		listen, tlsListen, public, want string
	}{
		"tls only":      {"", ":5443", "", "https://example.com:5443"},
		"both":          {":5280", "127.0.0.1:5443", "", "https://example.com:5443"},
		"plain only":    {":5280", "", "", "http://example.com:5280"},
		"set, tls only": {"", ":5443", "https://files.example.com/x/", "https://files.example.com/x"},
		"none, but set": {"", "", "https://files.example.com", ""},
	} {
		c := Default()
		c.Server.Domain = "example.com"
		c.HTTP.Listen, c.HTTP.TLSListen, c.HTTP.PublicURL = tc.listen, tc.tlsListen, tc.public
		if got := c.PublicURL(); got != tc.want {
			t.Errorf("%s: PublicURL() = %q, want %q", name, got, tc.want)
		}
	}
}

// TestUploadDefaults: the effective domain and directory.
func TestUploadDefaults(t *testing.T) {
	c := Default()
	c.Server.Domain, c.Server.DataDir = "example.com", "/var/lib/xmppd"
	if got := c.UploadDomain(); got != "upload.example.com" {
		t.Errorf("UploadDomain() = %q", got)
	}
	if got := c.UploadDir(); got != filepath.Join("/var/lib/xmppd", "uploads") {
		t.Errorf("UploadDir() = %q", got)
	}
	c.HTTPUpload.Domain, c.HTTPUpload.Dir = "files.example.com", "/srv/files"
	if c.UploadDomain() != "files.example.com" || c.UploadDir() != "/srv/files" {
		t.Errorf("set values not used: %q, %q", c.UploadDomain(), c.UploadDir())
	}
}

// TestParseUpload: [httpupload] and http.tls_listen load, normalise and
// refuse what they must, each with its key and line.
func TestParseUpload(t *testing.T) {
	c, err := Parse([]byte("[http]\ntls_listen = \":5443\"\n\n[httpupload]\ndomain = \"Files.Example.COM\"\n"+
		"max_file_size = 1000\nquota_bytes = 5000\nslot_timeout = \"1m\"\nallow_remote = true\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	u := c.HTTPUpload
	if c.HTTP.TLSListen != ":5443" || u.Domain != "files.example.com" || u.MaxFileSize != 1000 || u.QuotaBytes != 5000 ||
		u.SlotTimeout.Duration != time.Minute || !u.AllowRemote {
		t.Errorf("parsed %+v, tls_listen %q", u, c.HTTP.TLSListen)
	}

	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"bad tls_listen": {"[http]\ntls_listen = \"5443\"\n",
			[]string{`test.toml:2: http.tls_listen: invalid address "5443"`}},
		"tls_listen shares a port": {"[http]\nlisten = \":5280\"\ntls_listen = \"127.0.0.1:5280\"\n",
			[]string{`test.toml:3: http.tls_listen: "127.0.0.1:5280" uses the same port as http.listen`}},
		"domain is the server's": {"[server]\ndomain = \"example.com\"\n[httpupload]\ndomain = \"example.com\"\n",
			[]string{`test.toml:4: httpupload.domain: "example.com" is already served`}},
		"domain is the muc's": {"[httpupload]\ndomain = \"conference.localhost\"\n",
			[]string{`test.toml:2: httpupload.domain: "conference.localhost" is already served`}},
		"domain is a JID": {"[httpupload]\ndomain = \"a@b\"\n",
			[]string{`test.toml:2: httpupload.domain: "a@b" is a JID`}},
		"no size": {"[httpupload]\nmax_file_size = 0\n",
			[]string{`test.toml:2: httpupload.max_file_size: 0 is too small (want at least 1)`}},
		"quota below the file size": {"[httpupload]\nmax_file_size = 2000\nquota_bytes = 1000\n",
			[]string{`test.toml:3: httpupload.quota_bytes: 1000 is less than httpupload.max_file_size (2000)`}},
		"durations": {"[httpupload]\nslot_timeout = \"0s\"\nmax_age = \"-1h\"\nsweep_interval = \"0s\"\n",
			[]string{
				`test.toml:2: httpupload.slot_timeout: must be more than 0s`,
				`test.toml:3: httpupload.max_age: must be more than 0s`,
				`test.toml:4: httpupload.sweep_interval: must be more than 0s`,
			}},
		"wrong type": {"[httpupload]\nallow_remote = \"no\"\n",
			[]string{`test.toml:2: httpupload.allow_remote: want true or false`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
		})
	}
}
