package xmppd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection enforces the one-way arrows of
// docs/architecture.md: cmd → server → c2s → router → features → storage.
func TestDependencyDirection(t *testing.T) {
	const mod = "xmppd.dev/xmppd/"
	bad := map[string][]string{
		"router":  {"c2s", "server", "auth", "storage", "disco", "ping", "version", "roster", "offline", "muc", "httpupload"},
		"storage": {"router", "c2s", "server", "auth", "config"},
		"auth":    {"router", "c2s", "server"},
		"config":  {"router", "c2s", "server", "auth", "storage"},
		"disco":   {"c2s", "server"},
		"ping":    {"c2s", "server"},
		"version": {"c2s", "server"},
		"muc":     {"c2s", "server", "config", "auth", "disco", "roster", "offline", "httpupload"},
		"c2s":     {"server", "config"},
	}
	for pkg, forbidden := range bad {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, f := range forbidden {
			for _, d := range deps {
				if d == mod+f {
					t.Errorf("%s imports %s, against the dependency direction", pkg, f)
				}
			}
		}
	}
}
