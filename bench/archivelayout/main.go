// Command archivelayout measures what SQLite (modernc.org/sqlite, as
// xmppd uses it) costs per archived message for several table layouts and
// settings, outside the server: it appends -n messages among -users users
// (each writing to 10 others) in batches of -batch messages, as mam's
// writer does, and prints the process's CPU per message every 100,000.
//
//	go run ./bench/archivelayout -layout two -batch 2500 -cache -65536 -ckpt 4000
//
// Layouts: "two" is xmppd's (a row per archive: two per message between
// local users, indexes (owner, seq) and (owner, with_jid, seq)); "twoint"
// and "twonoid" vary its columns; "one", "oneint" and "onepair" keep one row
// per message read by both archives; "noidx" is the table alone. The
// figures in docs/performance.md ("The message archive") come from it.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var layouts = map[string][]string{
	// current: two rows per message, TEXT owners
	"two": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, owner TEXT NOT NULL, id TEXT NOT NULL, with_jid TEXT NOT NULL, with_resource TEXT NOT NULL, outgoing BOOLEAN NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE UNIQUE INDEX archive_owner ON archive (owner, seq)`,
		`CREATE INDEX archive_with ON archive (owner, with_jid, seq)`,
	},
	// two rows, integer owner / with ids
	"twoint": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, owner INTEGER NOT NULL, id TEXT NOT NULL, with_jid INTEGER NOT NULL, with_resource TEXT NOT NULL, outgoing BOOLEAN NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE UNIQUE INDEX archive_owner ON archive (owner, seq)`,
		`CREATE INDEX archive_with ON archive (owner, with_jid, seq)`,
	},
	// two rows, no id column (derived from seq), owner index only + with index
	"twonoid": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, owner TEXT NOT NULL, with_jid TEXT NOT NULL, with_resource TEXT NOT NULL, outgoing BOOLEAN NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE UNIQUE INDEX archive_owner ON archive (owner, seq)`,
		`CREATE INDEX archive_with ON archive (owner, with_jid, seq)`,
	},
	// one shared row
	"one": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, from_jid TEXT NOT NULL, to_jid TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE INDEX a_from ON archive (from_jid, seq)`,
		`CREATE INDEX a_to ON archive (to_jid, seq)`,
	},
	"noidx": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, from_jid TEXT NOT NULL, to_jid TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, stanza BLOB NOT NULL)`,
	},
	"onepair": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, from_jid TEXT, to_jid TEXT, lo TEXT NOT NULL, hi TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE INDEX a_from ON archive (from_jid, seq) WHERE from_jid IS NOT NULL`,
		`CREATE INDEX a_to ON archive (to_jid, seq) WHERE to_jid IS NOT NULL`,
		`CREATE INDEX a_pair ON archive (lo, hi, seq)`,
	},
	"oneint": {
		`CREATE TABLE archive (seq INTEGER PRIMARY KEY, from_jid INTEGER NOT NULL, to_jid INTEGER NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, stanza BLOB NOT NULL)`,
		`CREATE INDEX a_from ON archive (from_jid, seq)`,
		`CREATE INDEX a_to ON archive (to_jid, seq)`,
	},
}

func main() {
	layout := flag.String("layout", "two", "")
	n := flag.Int("n", 300000, "messages")
	batch := flag.Int("batch", 1000, "messages per batch")
	users := flag.Int("users", 1000, "")
	page := flag.Int("page", 4096, "")
	ckpt := flag.Int("ckpt", 1000, "PRAGMA wal_autocheckpoint")
	cache := flag.Int("cache", -2000, "PRAGMA cache_size")
	profile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("archivelayout-%s.db", *layout))
	os.Remove(path)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	db, err := sql.Open("sqlite", "file:"+path+fmt.Sprintf("?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=cache_size(%d)&_pragma=page_size(%d)&_pragma=wal_autocheckpoint(%d)", *cache, *page, *ckpt))
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(1)
	for _, s := range layouts[*layout] {
		if _, err := db.Exec(s); err != nil {
			panic(err)
		}
	}
	stanza := []byte(`<message xmlns="jabber:client" to="user123@localhost/res" from="user456@localhost/res" type="chat" id="abcdefgh1234"><body>` + strings.Repeat("x", 200) + `</body><stanza-id xmlns="urn:xmpp:sid:0" by="user123@localhost" id="0123456789ABCDEFGHIJKL"/></message>`)
	r := rand.New(rand.NewSource(1))
	seq := int64(1_700_000_000_000_000)
	if _, ok := layouts[*layout]; !ok {
		fmt.Fprintf(os.Stderr, "unknown layout %q\n", *layout)
		os.Exit(2)
	}
	cols := map[string]int{"two": 7, "twoint": 7, "twonoid": 6, "one": 6, "oneint": 6, "noidx": 6, "onepair": 8}[*layout]
	if *profile != "" {
		pf, err := os.Create(*profile)
		if err != nil {
			panic(err)
		}
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	start := cpu()
	wall := time.Now()
	var lastCPU time.Duration = start
	for done := 0; done < *n; done += *batch {
		tx, _ := db.Begin()
		// multi-row insert of up to 100 rows per statement
		var sb strings.Builder
		args := []any{}
		rows := 0
		flush := func() {
			if rows == 0 {
				return
			}
			q := sb.String()
			if _, err := tx.Exec(q, args...); err != nil {
				panic(err)
			}
			sb.Reset()
			args = args[:0]
			rows = 0
		}
		add := func(vals ...any) {
			if rows == 0 {
				switch *layout {
				case "two", "twoint":
					sb.WriteString("INSERT INTO archive (seq, owner, id, with_jid, with_resource, outgoing, stanza) VALUES ")
				case "twonoid":
					sb.WriteString("INSERT INTO archive (seq, owner, with_jid, with_resource, outgoing, stanza) VALUES ")
				case "onepair":
					sb.WriteString("INSERT INTO archive (seq, from_jid, to_jid, lo, hi, id, resource, stanza) VALUES ")
				default:
					sb.WriteString("INSERT INTO archive (seq, from_jid, to_jid, id, resource, stanza) VALUES ")
				}
			} else {
				sb.WriteString(",")
			}
			sb.WriteString("(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")")
			args = append(args, vals...)
			rows++
			if rows == 100 {
				flush()
			}
		}
		for i := 0; i < *batch; i++ {
			a := r.Intn(*users)
			b := (a + 1 + r.Intn(10)) % *users
			aj := fmt.Sprintf("user%d@localhost", a)
			bj := fmt.Sprintf("user%d@localhost", b)
			id := "0123456789ABCDEFGHIJKL"
			switch *layout {
			case "two":
				seq++
				add(seq, aj, id, bj, "res", true, stanza)
				seq++
				add(seq, bj, id, aj, "res", false, stanza)
			case "twoint":
				seq++
				add(seq, a, id, b, "res", true, stanza)
				seq++
				add(seq, b, id, a, "res", false, stanza)
			case "twonoid":
				seq++
				add(seq, aj, bj, "res", true, stanza)
				seq++
				add(seq, bj, aj, "res", false, stanza)
			case "one", "noidx":
				seq++
				add(seq, aj, bj, id, "res", stanza)
			case "onepair":
				lo, hi := aj, bj
				if lo > hi {
					lo, hi = hi, lo
				}
				seq++
				add(seq, aj, bj, lo, hi, id, "res", stanza)
			case "oneint":
				seq++
				add(seq, a, b, id, "res", stanza)
			}
		}
		flush()
		if err := tx.Commit(); err != nil {
			panic(err)
		}
		if (done+*batch)%100000 == 0 {
			c := cpu()
			fmt.Printf("  %s at %d: %.1f µs/msg over last 100k\n", *layout, done+*batch, float64((c-lastCPU).Microseconds())/100000)
			lastCPU = c
		}
	}
	c := cpu() - start
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("user %.1fs sys %.1fs\n", float64(ru.Utime.Nano())/1e9, float64(ru.Stime.Nano())/1e9)
	fmt.Printf("%s batch=%d n=%d: %.1f µs CPU/msg, wall %.1fs\n", *layout, *batch, *n, float64(c.Microseconds())/float64(*n), time.Since(wall).Seconds())
}
