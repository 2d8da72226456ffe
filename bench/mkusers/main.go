// Command mkusers creates benchmark accounts in xmppd's database directly,
// through auth.Service.Create (the code behind `xmppd user add`), on several
// goroutines at once. xmppd has no in-band registration, and `xmppd user
// add` opens the database and migrates once per account; this is the fast
// path for the thousands of accounts cmd/xmppbench logs in.
//
// Usage:
//
//	mkusers -config FILE [-n 1000] [-user user%d] [-first 1] [-password benchpass] [-workers 2]
//
// Accounts that exist are left as they are. It prints one JSON line:
// created, existing, failed, seconds and accounts per second.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/storage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkusers:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfgPath  = flag.String("config", "", "xmppd configuration file (its [storage] and [auth] are used)")
		n        = flag.Int("n", 1000, "number of accounts")
		pattern  = flag.String("user", "user%d", "local part pattern; %d is the account number")
		first    = flag.Int("first", 1, "number of the first account")
		password = flag.String("password", "benchpass", "password of every account")
		label    = flag.String("label", "", "label copied into the result line")
		workers  = flag.Int("workers", runtime.GOMAXPROCS(0), "accounts created at once")
	)
	flag.Parse()
	if *cfgPath == "" || flag.NArg() != 0 {
		flag.Usage()
		return errors.New("-config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, cfg.Storage.Driver, cfg.StorageDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	svc := auth.New(db.Accounts(), cfg.Auth.SCRAMIterations)

	start := time.Now()
	var next, created, existed, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(*workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				j, err := jid.New(fmt.Sprintf(*pattern, *first+i), cfg.Server.Domain, "")
				if err == nil {
					err = svc.Create(ctx, j, *password)
				}
				switch {
				case errors.Is(err, auth.ErrUserExists):
					existed.Add(1)
				case err != nil:
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				default:
					created.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	out := map[string]any{
		"phase":          "accounts",
		"label":          *label,
		"method":         "mkusers (auth.Service.Create)",
		"driver":         cfg.Storage.Driver,
		"n":              *n,
		"created":        created.Load(),
		"existed":        existed.Load(),
		"failed":         failed.Load(),
		"wall_s":         float64(int(secs*1000)) / 1000,
		"accounts_per_s": float64(int(float64(created.Load()+existed.Load())/secs*10)) / 10,
	}
	if firstErr != nil {
		out["error"] = firstErr.Error()
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	if failed.Load() > 0 {
		return fmt.Errorf("%d accounts failed: %v", failed.Load(), firstErr)
	}
	return nil
}
