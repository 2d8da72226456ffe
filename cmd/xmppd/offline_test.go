package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestOfflineList shows the offline queue of each account, on each storage
// engine.
func TestOfflineList(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dsn := e.DSN
			if e.Driver == "sqlite" {
				dsn = "" // the default: <data_dir>/xmppd.db
			}
			cfg := writeConfig(t, e.Driver, dsn, "")
			for _, u := range []string{"bob@localhost", "alice@localhost", "carol@localhost"} {
				if r := xmppd(t, "pw\n", "-config", cfg, "user", "add", u); r.code != 0 {
					t.Fatalf("user add %s: %+v", u, r)
				}
			}
			if r := xmppd(t, "", "-config", cfg, "offline", "list"); r.code != 0 || r.stdout != "" {
				t.Fatalf("offline list with nothing stored = %+v, want no output", r)
			}

			if e.Driver == "sqlite" {
				dsn = filepath.Join(filepath.Dir(cfg), "data", "xmppd.db")
			}
			db, err := storage.Open(context.Background(), e.Driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for u, n := range map[string]int{"alice@localhost": 3, "bob@localhost": 1} {
				for range n {
					if _, err := db.Offline().Push(t.Context(), u, time.Now(), []byte("<message><body>x</body></message>"), storage.OfflineLimits{}); err != nil {
						t.Fatal(err)
					}
				}
			}

			r := xmppd(t, "", "-config", cfg, "offline", "list")
			if want := "alice@localhost  offline=3\nbob@localhost  offline=1\n"; r.code != 0 || r.stdout != want {
				t.Fatalf("offline list = %+v, want stdout %q", r, want)
			}
		})
	}
}

func TestOfflineUsage(t *testing.T) {
	for _, args := range [][]string{{"offline", "-h"}, {"offline", "list", "-h"}} {
		if r := xmppd(t, "", args...); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "offline") {
			t.Errorf("%v: %+v, want exit 0 and help", args, r)
		}
	}
	for _, args := range [][]string{{"offline"}, {"offline", "frobnicate"}, {"offline", "list", "extra"}} {
		if r := xmppd(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "usage: xmppd [-config FILE] offline") {
			t.Errorf("%v: %+v, want exit 2 and the usage", args, r)
		}
	}
	if r := xmppd(t, "", "-h"); !strings.Contains(r.stderr+r.stdout, "offline list") {
		t.Errorf("xmppd -h does not mention offline list: %+v", r)
	}
}
