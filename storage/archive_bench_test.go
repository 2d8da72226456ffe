package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// benchArchiveRowsEnv sets how many rows BenchmarkArchive fills each
// engine's archive with before measuring, 1,000 per user.
const benchArchiveRowsEnv = "XMPPD_BENCH_ARCHIVE_ROWS"

// BenchmarkArchive fills an archive on each engine (1,000,000 rows
// unless $XMPPD_BENCH_ARCHIVE_ROWS says otherwise: 1,000 users, each
// with 1,000 rows over 10 correspondents), then measures
//
//   - Page: the first page of one conversation as mam asks for it (owner
//     and with, newest first, 51 rows: 50 and one to tell whether there
//     are more), with p50 and p99 latency;
//   - Append500: Append of a batch of 500 rows, as the archive writer
//     sends them, in rows/s and CPU per row (this process, and on
//     PostgreSQL its backends).
//
// It fills each engine once per run, which takes a minute or so: run it
// on its own, go test -run '^$' -bench Archive ./storage.
func BenchmarkArchive(b *testing.B) {
	total := 1_000_000
	if s := os.Getenv(benchArchiveRowsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("%s=%q: want a number of rows, at least 1000", benchArchiveRowsEnv, s)
		}
		total = n
	}
	users := total / 1000
	for _, e := range storagetest.Engines(b) {
		b.Run(e.Name, func(b *testing.B) {
			db := storagetest.Open(b, e)
			ctx := b.Context()
			a := db.Archive()
			g := benchGen{users: users}

			start, cpu0 := time.Now(), processCPU()
			for done := 0; done < total; {
				batch := g.next(min(5000, total-done))
				if err := a.Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
				done += len(batch)
			}
			took := time.Since(start)
			b.Logf("filled %d rows for %d users in %v: %.0f rows/s, this process %.1f µs CPU/row",
				total, users, took.Round(time.Millisecond), float64(total)/took.Seconds(),
				float64((processCPU()-cpu0).Microseconds())/float64(total))
			if e.Driver == storage.DriverPostgres {
				// As autovacuum would soon after a bulk load.
				if _, err := db.SQL().ExecContext(ctx, "ANALYZE archive"); err != nil {
					b.Fatal(err)
				}
			}
			logArchiveSize(ctx, b, db)
			start = time.Now()
			if _, err := a.MaxSeq(ctx); err != nil {
				b.Fatal(err)
			}
			b.Logf("MaxSeq took %v", time.Since(start).Round(time.Microsecond))

			b.Run("Page", func(b *testing.B) {
				rnd := rand.New(rand.NewPCG(1, 2))
				var durs []time.Duration
				for b.Loop() {
					o := rnd.IntN(users)
					q := storage.ArchiveQuery{Owner: benchUser(o), With: benchUser(benchWith(o, rnd.IntN(10), users)), Limit: 51, Newest: true}
					t0 := time.Now()
					msgs, err := a.Query(ctx, q)
					durs = append(durs, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					if len(msgs) != 51 {
						b.Fatalf("%s with %s: %d rows, want 51", q.Owner, q.With, len(msgs))
					}
				}
				reportPercentiles(b, durs)
			})

			b.Run("Append500", func(b *testing.B) {
				const batch = 500
				pg := newBackendCPU(ctx, b, db)
				cpu0 := processCPU()
				var durs []time.Duration
				for b.Loop() {
					msgs := g.next(batch)
					t0 := time.Now()
					if err := a.Append(ctx, msgs); err != nil {
						b.Fatal(err)
					}
					durs = append(durs, time.Since(t0))
				}
				var sum time.Duration
				for _, d := range durs {
					sum += d
				}
				rows := float64(batch * len(durs))
				b.ReportMetric(rows/sum.Seconds(), "rows/s")
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/rows, "client-µs-CPU/row")
				if pg != nil {
					b.ReportMetric(float64(pg.used(ctx, b).Microseconds())/rows, "pg-µs-CPU/row")
				}
				reportPercentiles(b, durs)
			})
		})
	}
}

// benchGen makes archive rows as a server would archive them: seq
// increasing, one message in turn from each user to one of ten
// correspondents.
type benchGen struct {
	users int
	i     int // rows made so far
}

func (g *benchGen) next(n int) []storage.ArchivedMessage {
	body := strings.Repeat("lorem ipsum ", 12)
	msgs := make([]storage.ArchivedMessage, n)
	for j := range msgs {
		o, k := g.i%g.users, g.i/g.users
		seq := arcT0 + int64(g.i)
		with := benchUser(benchWith(o, k%10, g.users))
		msgs[j] = storage.ArchivedMessage{
			Owner: benchUser(o), Seq: seq, ID: strconv.FormatInt(seq, 36),
			With: with, WithResource: "res" + strconv.Itoa(k%3), Outgoing: k%2 == 0,
			Stanza: fmt.Appendf(nil, `<message xmlns='jabber:client' from='%s/res%d' to='%s' type='chat' id='%d'><body>%s%d</body><origin-id xmlns='urn:xmpp:sid:0' id='%d'/></message>`,
				with, k%3, benchUser(o), seq, body, k, seq),
		}
		g.i++
	}
	return msgs
}

func benchUser(i int) string { return "user" + strconv.Itoa(i) + "@example.org" }

// benchWith is user o's c-th correspondent, 0 ≤ c < 10.
func benchWith(o, c, users int) int { return (o + 1 + c*(users/10+1)) % users }

func reportPercentiles(b *testing.B, durs []time.Duration) {
	slices.Sort(durs)
	at := func(p float64) float64 {
		return float64(durs[int(p*float64(len(durs)-1))].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func logArchiveSize(ctx context.Context, b *testing.B, db *storage.DB) {
	q := `SELECT pg_total_relation_size('archive')`
	if db.Driver() == storage.DriverSQLite {
		q = `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`
	}
	var size int64
	if err := db.SQL().QueryRowContext(ctx, q).Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("database size %.0f MiB", float64(size)/(1<<20))
}

// backendCPU measures the CPU the PostgreSQL backends serving this
// database use, from /proc: a rough figure, for a server on this machine.
type backendCPU struct {
	start map[int]time.Duration
	db    *storage.DB
}

func newBackendCPU(ctx context.Context, b *testing.B, db *storage.DB) *backendCPU {
	if db.Driver() != storage.DriverPostgres {
		return nil
	}
	c := &backendCPU{db: db}
	c.start = c.read(ctx, b)
	return c
}

func (c *backendCPU) used(ctx context.Context, b *testing.B) time.Duration {
	var d time.Duration
	for pid, t := range c.read(ctx, b) {
		d += t - c.start[pid]
	}
	return d
}

func (c *backendCPU) read(ctx context.Context, b *testing.B) map[int]time.Duration {
	rows, err := c.db.SQL().QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cpu := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // not on this machine, or gone
		}
		// Fields 14 and 15, utime and stime, in clock ticks (100 Hz),
		// counted after the parenthesised command name.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		cpu[pid] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return cpu
}
