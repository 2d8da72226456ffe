package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse checks that Parse never panics or hangs, that what it accepts
// passes Validate, and that every error it reports is an *Error within the
// input's lines. It also runs keyLines on input the toml package refuses,
// which Parse never does.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		"[c2s]\nlisen = \":5222\"\n",
		"[c2s]\nlisten = 5222\n",
		"[c2s]\nlisten = \":99999\"\nping_interval = 30\n",
		"[server]\ndomain = \"\"\n[storage]\ndriver = \"postgres\"\n",
		"[[c2s]]\nlisten = \":5222\"\n",
		"c2s = { listen = \":5222\",\n lisen = 1, }\n",
		"c2s.listen.port = 5222\n",
		"[storage]\ndsn = \"\"\"\n[c2s]\nlisen = 1\"\"\"\"\n",
		"a = [ { b = 1 }, [ 'c', \"\"\"d\"\"\" ], 1979-05-27 07:32:00Z ]\n",
		"\"\\e\" = 1\n'x'.\"y\" = { z = [] }\n",
		"[c2s\n",
		"x = \"\"\"\n",
		"= 1\n",
		"[tls]\ncert_file = \"/dev/null\"\nkey_file = \".\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := keyLines(string(data))
		var raw map[string]any
		if md, err := toml.Decode(string(data), &raw); err == nil {
			// keyLines must find every key the toml package found.
			for _, k := range md.Keys() {
				if _, ok := lines[k.String()]; !ok {
					t.Fatalf("keyLines() = %v has no line for key %s", lines, k)
				}
			}
		}

		c, err := Parse(data, "fuzz.toml")
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse accepted a Config that Validate refuses: %v", err)
			}
			return
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		nlines := strings.Count(string(data), "\n") + 1
		for _, err := range errs {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if e.Msg == "" || e.File != "fuzz.toml" || e.Line < 0 || e.Line > nlines {
				t.Fatalf("bad error %+v (input has %d lines)", *e, nlines)
			}
		}
	})
}
