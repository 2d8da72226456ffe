// Command importbench times migration.Write, the writer behind every
// `xmppd import`, on generated data: the scale is 10,000 users with
// 50 roster items each, imported in at most 60 s.
//
// Usage:
//
//	importbench -driver sqlite|postgres -dsn DSN [-users 10000] [-items 50]
//	            [-passwords] [-workers 0] [-twice]
//
// The database must be empty (a fresh SQLite file, or a fresh PostgreSQL
// database). Without -passwords each user carries SCRAM-SHA-1 keys as
// Openfire keeps them (copied as they are, as an Openfire import does);
// with it, a password, from which SCRAM-SHA-1 and SCRAM-SHA-256 keys are
// derived (4,096 PBKDF2 iterations each), as an import of plain or
// decrypted Openfire passwords does. -twice imports the same data again
// and times that too (everything is there: upserts). It prints one JSON
// line.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "importbench:", err)
		os.Exit(1)
	}
}

func run() error {
	driver := flag.String("driver", storage.DriverSQLite, "storage driver")
	dsn := flag.String("dsn", "", "database (an empty one)")
	users := flag.Int("users", 10000, "users")
	items := flag.Int("items", 50, "roster items per user")
	passwords := flag.Bool("passwords", false, "users carry passwords (keys derived) rather than SCRAM-SHA-1 keys")
	workers := flag.Int("workers", 0, "users written at once (0: GOMAXPROCS)")
	twice := flag.Bool("twice", false, "import a second time and time that too")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the import to FILE")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, *driver, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	d, err := generate(ctx, *users, *items, *passwords)
	if err != nil {
		return err
	}
	opts := migration.WriteOptions{Iterations: auth.MinIterations, Workers: *workers}
	start := time.Now()
	rep, err := migration.Write(ctx, db, d, opts)
	if err != nil {
		return err
	}
	first := time.Since(start)
	out := map[string]any{
		"driver": *driver, "users": rep.Users, "roster_items": rep.RosterItems, "passwords": *passwords,
		"seconds": first.Seconds(), "users_per_second": float64(rep.Users) / first.Seconds(),
	}
	if *twice {
		start = time.Now()
		if _, err := migration.Write(ctx, db, d, opts); err != nil {
			return err
		}
		out["second_run_seconds"] = time.Since(start).Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// generate builds n users at localhost, each with m roster items (other
// users, as a company's roster is), an offline message and a vCard.
func generate(ctx context.Context, n, m int, passwords bool) (*migration.Data, error) {
	d := &migration.Data{Domain: "localhost", Users: make([]migration.User, n)}
	// One set of SCRAM-SHA-1 keys, shared: deriving 10,000 would time the
	// generator, not the import.
	var keys []storage.Credential
	if !passwords {
		creds, err := auth.NewCredentials("pw", auth.MinIterations)
		if err != nil {
			return nil, err
		}
		for _, cr := range creds {
			if cr.Mechanism == auth.SCRAMSHA1 {
				keys = []storage.Credential{cr}
			}
		}
	}
	stamp := time.Now().Add(-time.Hour)
	for i := range d.Users {
		u := &d.Users[i]
		u.Username = fmt.Sprintf("user%d", i)
		u.Name = fmt.Sprintf("User %d", i)
		if passwords {
			u.Password = fmt.Sprintf("password-%d", i)
		} else {
			u.Credentials = keys
		}
		for k := range m {
			u.Roster = append(u.Roster, storage.RosterItem{
				Contact: fmt.Sprintf("user%d@localhost", (i+k+1)%n), Name: fmt.Sprintf("User %d", (i+k+1)%n),
				Groups: []string{"Staff"}, Subscription: "both", Visible: true,
			})
		}
		u.Offline = []storage.OfflineMessage{{Stamp: stamp, Stanza: fmt.Appendf(nil,
			"<message from='user%d@localhost/pc' to='user%d@localhost' type='chat'><body>hello</body></message>", (i+1)%n, i)}}
	}
	return d, nil
}
