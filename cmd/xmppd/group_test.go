package main

import (
	"strings"
	"testing"

	"xmppd.dev/xmppd/storage/storagetest"
)

// TestGroupCommands manages shared roster groups from the command line on
// each storage engine; bad input fails with one line and changes nothing.
func TestGroupCommands(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dsn := e.DSN
			if e.Driver == "sqlite" {
				dsn = ""
			}
			cfg := writeConfig(t, e.Driver, dsn, "")
			for _, u := range []string{"alice", "bob"} {
				if r := xmppd(t, "pw\n", "-config", cfg, "user", "add", u+"@localhost"); r.code != 0 {
					t.Fatalf("user add: %+v", r)
				}
			}
			ok := func(args ...string) string {
				t.Helper()
				r := xmppd(t, "", append([]string{"-config", cfg, "group"}, args...)...)
				if r.code != 0 {
					t.Fatalf("group %v: %+v", args, r)
				}
				return r.stdout
			}
			ok("add", "staff", "-display", "Our staff", "-show-to", "everybody")
			ok("add", "sales")
			ok("set", "sales", "-show-to", "groups", "-groups", "staff, board")
			ok("add-member", "staff", "Alice@localhost", "bob@localhost")
			ok("add-member", "sales", "bob@localhost")
			ok("del-member", "staff", "bob@localhost")
			if out := ok("list"); !strings.Contains(out, "staff") || !strings.Contains(out, "Our staff") || !strings.Contains(out, "everybody") {
				t.Fatalf("group list:\n%s", out)
			}
			ok("set", "sales", "-display", "sales") // members stay
			out := ok("show", "sales")
			for _, want := range []string{"display name: sales", "shown to:     members and those of staff, board", "  bob@localhost"} {
				if !strings.Contains(out, want) {
					t.Fatalf("group show sales: no %q in\n%s", want, out)
				}
			}
			if out := ok("show", "staff"); !strings.Contains(out, "  alice@localhost") || strings.Contains(out, "bob@") {
				t.Fatalf("group show staff:\n%s", out)
			}
			for _, b := range []struct {
				args []string
				want string
			}{
				{[]string{"add", "staff"}, `group "staff" exists`},
				{[]string{"set", "nosuch", "-display", "x"}, `no group "nosuch"`},
				{[]string{"set", "sales", "-show-to", "someone"}, "show_to"},
				{[]string{"add-member", "staff", "carol@localhost"}, "not found"},
				{[]string{"add-member", "staff", "carol@example.org"}, "not at this server's domain"},
				{[]string{"add-member", "nosuch", "alice@localhost"}, "not found"},
				{[]string{"del", "nosuch"}, "not found"},
			} {
				r := xmppd(t, "", append([]string{"-config", cfg, "group"}, b.args...)...)
				if r.code == 0 || !strings.Contains(r.stderr, b.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("group %v: %+v, want a non-zero exit and one line with %q", b.args, r, b.want)
				}
			}
			if out := ok("show", "sales"); !strings.Contains(out, "members and those of staff, board") {
				t.Fatalf("a refused set changed sales:\n%s", out)
			}
			ok("del", "sales")
			if out := ok("list"); strings.Contains(out, "sales") {
				t.Fatalf("after del:\n%s", out)
			}
		})
	}
}
