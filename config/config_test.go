package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const examplePath = "../config.toml.example"

// tomlKeys walks t by reflection and returns every dotted key of its leaves,
// in field order. It fails the test on a field without a toml tag. An
// array of tables ([[extdisco.services]]) is a leaf: its default is empty.
func tomlKeys(t *testing.T, typ reflect.Type, prefix string) []string {
	return tomlKeysIn(t, typ, prefix, false)
}

// tomlKeysIn is tomlKeys; with items, it also returns the keys of the
// tables in arrays of tables (extdisco.services.host), which the docs
// describe.
func tomlKeysIn(t *testing.T, typ reflect.Type, prefix string, items bool) []string {
	t.Helper()
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			t.Errorf("field %s.%s has no toml tag", typ.Name(), f.Name)
			continue
		}
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
			keys = append(keys, tomlKeysIn(t, f.Type, key+".", items)...)
			continue
		}
		keys = append(keys, key)
		if items && f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			keys = append(keys, tomlKeysIn(t, f.Type.Elem(), key+".", items)...)
		}
	}
	return keys
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Validate changed the defaults:\n got %+v\nwant %+v", c, Default())
	}
}

func TestLoadNoFile(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatalf(`Load("") = %v`, err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\") =\n %+v\nwant Default()\n %+v", c, Default())
	}
}

func TestLoadEmptyFile(t *testing.T) {
	c, err := Parse(nil, "empty.toml")
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse(empty) =\n %+v\nwant Default()\n %+v", c, Default())
	}
}

func TestLoadExample(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", examplePath, err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(%s) =\n %+v\nwant Default()\n %+v", examplePath, c, Default())
	}
}

// TestExampleDocumentsEveryKey fails when a key of Config is missing from
// config.toml.example, or is there without a comment above it that gives its
// default.
func TestExampleDocumentsEveryKey(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	md, err := toml.Decode(string(src), &m)
	if err != nil {
		t.Fatal(err)
	}
	srcLines := strings.Split(string(src), "\n")
	lines := keyLines(string(src))
	for _, key := range tomlKeys(t, reflect.TypeFor[Config](), "") {
		if !md.IsDefined(strings.Split(key, ".")...) {
			t.Errorf("%s: key %s is missing; add it with a comment and its default", examplePath, key)
			continue
		}
		// The comment block right above the key must give its default.
		n := lines[key] - 2 // index of the line above
		var comment []string
		for ; n >= 0 && strings.HasPrefix(srcLines[n], "#"); n-- {
			comment = append(comment, srcLines[n])
		}
		if len(comment) < 2 || !strings.Contains(strings.Join(comment, "\n"), "# Default: ") {
			t.Errorf("%s:%d: %s needs a comment above it saying what it means and a line \"# Default: ...\"",
				examplePath, lines[key], key)
		}
	}
}

// TestDocsDescribeEveryKey fails when docs/configuration.md does not name a
// key of Config in a table row.
func TestDocsDescribeEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range tomlKeysIn(t, reflect.TypeFor[Config](), "", true) {
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(key) + "` \\|")
		if !row.Match(doc) {
			t.Errorf("docs/configuration.md has no table row for `%s`", key)
		}
	}
}

// TestSchemaTypes fails when a field has a type decodeValue does not handle.
func TestSchemaTypes(t *testing.T) {
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch {
			case f.Type == reflect.TypeFor[Duration]():
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(f.Type.Elem())
			case f.Type.Kind() == reflect.String, f.Type.Kind() == reflect.Bool, f.Type.Kind() == reflect.Int,
				f.Type == reflect.TypeFor[[]string]():
			default:
				t.Errorf("%s.%s has type %s; decodeValue handles string, bool, int, []string, Duration, structs and slices of structs",
					typ.Name(), f.Name, f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.C2S.Listen = ":99999"
	c.Auth.MaxFailures = -1
	err := c.Validate()
	want := "config: c2s.listen: invalid port \"99999\" (want 1-65535)\n" +
		"config: auth.max_failures: must not be negative (got -1; 0 turns throttling off)"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "c2s.listen" || e.File != "" || e.Line != 0 {
		t.Errorf("errors.As(err, *Error) = %+v, want Key c2s.listen and no file or line", e)
	}
}

func TestValidateNormalisesDomain(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM.":          "example.com",
		"xn--bcher-kva.example": "bücher.example",
		"127.0.0.1":             "127.0.0.1",
		"[::1]":                 "[::1]",
	} {
		c := Default()
		c.Server.Domain = in
		if err := c.Validate(); err != nil {
			t.Errorf("domain %q: Validate() = %v", in, err)
			continue
		}
		if c.Server.Domain != want {
			t.Errorf("domain %q: normalised to %q, want %q", in, c.Server.Domain, want)
		}
	}
}

func TestStorageDSN(t *testing.T) {
	for name, tc := range map[string]struct {
		driver, dsn, dataDir, want string
	}{
		"sqlite default":  {DriverSQLite, "", "/var/lib/xmppd", "/var/lib/xmppd/xmppd.db"},
		"sqlite relative": {DriverSQLite, "", "./data", filepath.Join("data", "xmppd.db")},
		"sqlite set":      {DriverSQLite, "/srv/x.db", "./data", "/srv/x.db"},
		"postgres":        {DriverPostgres, "postgres://xmppd@db/xmppd", "./data", "postgres://xmppd@db/xmppd"},
	} {
		c := Default()
		c.Storage.Driver, c.Storage.DSN, c.Server.DataDir = tc.driver, tc.dsn, tc.dataDir
		if got := c.StorageDSN(); got != tc.want {
			t.Errorf("%s: StorageDSN() = %q, want %q", name, got, tc.want)
		}
	}
}

func TestPublicURL(t *testing.T) {
	for name, tc := range map[string]struct {
		domain, listen, public, want string
	}{
		"derived":        {"example.com", ":5280", "", "http://example.com:5280"},
		"derived host":   {"example.com", "127.0.0.1:8080", "", "http://example.com:8080"},
		"derived ipv6":   {"[::1]", ":5280", "", "http://[::1]:5280"},
		"set":            {"example.com", ":5280", "https://xmpp.example.com", "https://xmpp.example.com"},
		"trailing slash": {"example.com", ":5280", "https://example.com/xmpp/", "https://example.com/xmpp"},
		"disabled":       {"example.com", "", "https://xmpp.example.com", ""},
	} {
		c := Default()
		c.Server.Domain, c.HTTP.Listen, c.HTTP.PublicURL = tc.domain, tc.listen, tc.public
		if got := c.PublicURL(); got != tc.want {
			t.Errorf("%s: PublicURL() = %q, want %q", name, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Errorf(`UnmarshalText("1h30m") = %v, %v; want 1h30m0s, nil`, d, err)
	}
	if err := d.UnmarshalText([]byte("30")); err == nil {
		t.Errorf(`UnmarshalText("30") = nil, want an error (no unit)`)
	}
	b, err := Duration{4 * time.Minute}.MarshalText()
	if err != nil || string(b) != "4m0s" {
		t.Errorf("MarshalText(4m) = %q, %v; want \"4m0s\", nil", b, err)
	}
	if err := d.UnmarshalText(b); err != nil || d.Duration != 4*time.Minute {
		t.Errorf("round trip = %v, %v; want 4m0s", d, err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: open "+path) {
		t.Errorf("Load(missing) = %v, want config: open %s: ... wrapping os.ErrNotExist", err, path)
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.toml")
	if err := os.WriteFile(path, []byte("[c2s]\n\nlisten = \":99999\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:3: c2s.listen: invalid port "99999" (want 1-65535)`
	if err == nil || err.Error() != want {
		t.Errorf("Load() = %v\nwant %s", err, want)
	}
}
