package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

const (
	arcAlice = "alice@localhost"
	arcBob   = "bob@localhost"
	arcCarol = "carol@localhost"
	arcRoom  = "lounge@conference.localhost"
	arcT0    = int64(1_700_000_000_000_000) // µs
)

// archiveFixture is alice's 20 messages with bob (on two resources) and
// carol, and 5 of a room, 10 µs apart and interleaved. Stanzas hold bytes
// that are not UTF-8, and a NUL, which must come back as they went in.
func archiveFixture() []storage.ArchivedMessage {
	var msgs []storage.ArchivedMessage
	for i := range 25 {
		m := storage.ArchivedMessage{
			Owner:        arcAlice,
			Seq:          arcT0 + int64(i)*10,
			ID:           fmt.Sprintf("id-%d", i),
			With:         arcBob,
			WithResource: []string{"phone", "laptop"}[i%2],
			Outgoing:     i%2 == 0,
			Stanza:       fmt.Appendf(nil, "<message><body>n°%d é ✓ \x00\xff</body></message>", i),
		}
		switch {
		case i >= 20:
			m.Owner, m.With, m.WithResource, m.Outgoing = arcRoom, arcRoom, "nick"+fmt.Sprint(i), false
		case i%3 == 0:
			m.With, m.WithResource = arcCarol, ""
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// archiveWant is what Query should return for q from msgs, worked out in
// Go: the reference the engines' answers are checked against.
func archiveWant(msgs []storage.ArchivedMessage, q storage.ArchiveQuery, paging bool) []storage.ArchivedMessage {
	var out []storage.ArchivedMessage
	for _, m := range msgs {
		switch {
		case m.Owner != q.Owner,
			q.With != "" && m.With != q.With,
			q.With != "" && q.WithResource != "" && m.WithResource != q.WithResource,
			q.Start != 0 && m.Seq < q.Start,
			q.End != 0 && m.Seq > q.End,
			paging && q.After != 0 && m.Seq <= q.After,
			paging && q.Before != 0 && m.Seq >= q.Before,
			q.Seqs != nil && !slices.Contains(q.Seqs, m.Seq):
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y storage.ArchivedMessage) int { return int(x.Seq - y.Seq) })
	if !paging {
		return out
	}
	if q.Newest {
		slices.Reverse(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func seqsOf(msgs []storage.ArchivedMessage) []int64 {
	var s []int64
	for _, m := range msgs {
		s = append(s, (m.Seq-arcT0)/10)
	}
	return s
}

// TestArchiveQuery checks every filter of Query, and Count, against the
// answer worked out in Go, on every engine.
func TestArchiveQuery(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		a := db.Archive()
		msgs := archiveFixture()
		if err := a.Append(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		at := func(i int) int64 { return arcT0 + int64(i)*10 }
		cases := []struct {
			name string
			q    storage.ArchiveQuery
			want []int64 // fixture indexes, to pin the reference on a few cases; nil: trust it
		}{
			{"all", storage.ArchiveQuery{Owner: arcAlice}, nil},
			{"room", storage.ArchiveQuery{Owner: arcRoom}, []int64{20, 21, 22, 23, 24}},
			{"unknown owner", storage.ArchiveQuery{Owner: "nobody@localhost"}, []int64{}},
			{"with bare", storage.ArchiveQuery{Owner: arcAlice, With: arcCarol}, []int64{0, 3, 6, 9, 12, 15, 18}},
			{"with resource", storage.ArchiveQuery{Owner: arcAlice, With: arcBob, WithResource: "phone"}, []int64{2, 4, 8, 10, 14, 16}},
			{"resource alone is ignored", storage.ArchiveQuery{Owner: arcAlice, WithResource: "phone"}, nil},
			{"with nobody", storage.ArchiveQuery{Owner: arcAlice, With: "dave@localhost"}, []int64{}},
			{"start end", storage.ArchiveQuery{Owner: arcAlice, Start: at(5), End: at(8)}, []int64{5, 6, 7, 8}},
			{"start only", storage.ArchiveQuery{Owner: arcAlice, Start: at(17)}, []int64{17, 18, 19}},
			{"after before", storage.ArchiveQuery{Owner: arcAlice, After: at(5), Before: at(8)}, []int64{6, 7}},
			{"after limit", storage.ArchiveQuery{Owner: arcAlice, After: at(5), Limit: 3}, []int64{6, 7, 8}},
			{"before newest limit", storage.ArchiveQuery{Owner: arcAlice, Before: at(8), Limit: 3, Newest: true}, []int64{7, 6, 5}},
			{"limit", storage.ArchiveQuery{Owner: arcAlice, Limit: 2}, []int64{0, 1}},
			{"newest", storage.ArchiveQuery{Owner: arcAlice, Newest: true, Limit: 2}, []int64{19, 18}},
			{"with newest limit", storage.ArchiveQuery{Owner: arcAlice, With: arcBob, Newest: true, Limit: 3}, []int64{19, 17, 16}},
			{"with start after", storage.ArchiveQuery{Owner: arcAlice, With: arcCarol, Start: at(3), After: at(6)}, []int64{9, 12, 15, 18}},
			{"seqs", storage.ArchiveQuery{Owner: arcAlice, Seqs: []int64{at(4), at(1), at(21), 42}}, []int64{1, 4}},
			{"seqs padded", storage.ArchiveQuery{Owner: arcAlice, Seqs: []int64{at(1), at(2), at(3)}}, []int64{1, 2, 3}},
			{"seqs with", storage.ArchiveQuery{Owner: arcAlice, With: arcCarol, Seqs: []int64{at(1), at(3)}}, []int64{3}},
			{"seqs empty", storage.ArchiveQuery{Owner: arcAlice, Seqs: []int64{}}, []int64{}},
			{"seqs paged", storage.ArchiveQuery{Owner: arcAlice, Seqs: []int64{at(1), at(2), at(3)}, After: at(1), Limit: 1}, []int64{2}},
		}
		for _, c := range cases {
			got, err := a.Query(ctx, c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := archiveWant(msgs, c.q, true)
			if c.want != nil && !slices.Equal(seqsOf(want), c.want) {
				t.Fatalf("%s: the reference gives %v, the case says %v", c.name, seqsOf(want), c.want)
			}
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
				t.Errorf("%s: Query = %v, want %v", c.name, seqsOf(got), seqsOf(want))
			}
			n, err := a.Count(ctx, c.q)
			if wantN := len(archiveWant(msgs, c.q, false)); err != nil || n != wantN {
				t.Errorf("%s: Count = %d, %v; want %d", c.name, n, err, wantN)
			}
		}

		var many []int64
		for i := range 100 {
			many = append(many, at(i))
		}
		if got, err := a.Query(ctx, storage.ArchiveQuery{Owner: arcAlice, Seqs: many}); err != nil || len(got) != 20 {
			t.Errorf("Query with 100 seqs = %d rows, %v; want 20", len(got), err)
		}
		many = append(many, at(100))
		if _, err := a.Query(ctx, storage.ArchiveQuery{Owner: arcAlice, Seqs: many}); !errors.Is(err, storage.ErrLimit) {
			t.Errorf("Query with 101 seqs: err = %v, want ErrLimit", err)
		}
		if _, err := a.Count(ctx, storage.ArchiveQuery{Owner: arcAlice, Seqs: many}); !errors.Is(err, storage.ErrLimit) {
			t.Errorf("Count with 101 seqs: err = %v, want ErrLimit", err)
		}
	})
}

// TestArchive runs the rest of the repository, in order, on every engine.
func TestArchive(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		a := db.Archive()
		count := func(owner string) int {
			t.Helper()
			n, err := a.Count(ctx, storage.ArchiveQuery{Owner: owner})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		// Empty.
		if seq, err := a.MaxSeq(ctx); err != nil || seq != 0 {
			t.Fatalf("MaxSeq of an empty archive = %d, %v", seq, err)
		}
		if _, _, ok, err := a.Bounds(ctx, arcAlice); err != nil || ok {
			t.Fatalf("Bounds of an empty archive: ok %v, %v", ok, err)
		}
		if err := a.Append(ctx, nil); err != nil {
			t.Fatal(err)
		}

		msgs := archiveFixture()
		if err := a.Append(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		// Again, and a batch holding one row twice: nothing is stored twice.
		if err := a.Append(ctx, msgs); err != nil {
			t.Fatalf("Append of stored rows: %v", err)
		}
		if err := a.Append(ctx, []storage.ArchivedMessage{msgs[0], msgs[0], msgs[1]}); err != nil {
			t.Fatalf("Append of a row twice: %v", err)
		}
		if n, m := count(arcAlice), count(arcRoom); n != 20 || m != 5 {
			t.Fatalf("after Append three times: %d and %d rows, want 20 and 5", n, m)
		}

		got, err := a.Get(ctx, arcAlice, msgs[7].Seq)
		if err != nil || !reflect.DeepEqual(got, msgs[7]) {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, msgs[7])
		}
		if _, err := a.Get(ctx, arcBob, msgs[7].Seq); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get of another owner's seq: err = %v, want ErrNotFound", err)
		}
		first, last, ok, err := a.Bounds(ctx, arcAlice)
		if err != nil || !ok || !reflect.DeepEqual(first, msgs[0]) || !reflect.DeepEqual(last, msgs[19]) {
			t.Fatalf("Bounds = %d, %d, %v, %v; want %d, %d", first.Seq, last.Seq, ok, err, msgs[0].Seq, msgs[19].Seq)
		}
		if seq, err := a.MaxSeq(ctx); err != nil || seq != msgs[24].Seq {
			t.Fatalf("MaxSeq = %d, %v; want %d", seq, err, msgs[24].Seq)
		}

		// A batch of 237 rows takes every statement size (100, 100, 32, 4, 1).
		var bulk []storage.ArchivedMessage
		for i := range 237 {
			bulk = append(bulk, storage.ArchivedMessage{
				Owner: fmt.Sprintf("u%d@localhost", i%3), Seq: arcT0 + 1000 + int64(i), ID: fmt.Sprint(i),
				With: arcBob, Stanza: []byte("<message/>"),
			})
		}
		if err := a.Append(ctx, bulk); err != nil {
			t.Fatal(err)
		}
		if n := count("u0@localhost") + count("u1@localhost") + count("u2@localhost"); n != 237 {
			t.Fatalf("after a batch of 237: %d rows", n)
		}

		// Trim: at most 50 of each owner's rows, the newest.
		n, err := a.Trim(ctx, 50)
		if err != nil || n != 3*79-3*50 {
			t.Fatalf("Trim(50) = %d, %v; want %d", n, err, 3*79-3*50)
		}
		for i := range 3 {
			owner := fmt.Sprintf("u%d@localhost", i)
			rows, err := a.Query(ctx, storage.ArchiveQuery{Owner: owner})
			if err != nil || len(rows) != 50 || rows[49].Seq != bulk[234+i].Seq {
				t.Fatalf("%s after Trim: %d rows, %v", owner, len(rows), err)
			}
		}
		if n := count(arcAlice); n != 20 {
			t.Fatalf("Trim(50) left alice %d rows, want all 20", n)
		}
		if _, err := a.Trim(ctx, 0); err == nil {
			t.Fatal("Trim(0) succeeded")
		}

		// Delete: one owner's rows before a seq, then all of them.
		if n, err := a.Delete(ctx, arcAlice, msgs[5].Seq); err != nil || n != 5 {
			t.Fatalf("Delete(alice, before 5) = %d, %v; want 5", n, err)
		}
		if first, _, _, _ := a.Bounds(ctx, arcAlice); first.Seq != msgs[5].Seq {
			t.Fatalf("after Delete alice's first row is %d, want %d", first.Seq, msgs[5].Seq)
		}
		if n := count(arcRoom); n != 5 {
			t.Fatalf("Delete of alice's rows took the room's: %d left", n)
		}
		if n, err := a.Delete(ctx, "u0@localhost", 0); err != nil || n != 50 {
			t.Fatalf("Delete(u0, 0) = %d, %v; want 50", n, err)
		}

		// DeleteOlder: every owner's rows before a seq.
		n, err = a.DeleteOlder(ctx, msgs[22].Seq)
		if err != nil || n != 15+2 {
			t.Fatalf("DeleteOlder = %d, %v; want 17 (alice 15, the room 2)", n, err)
		}
		if a, r, u := count(arcAlice), count(arcRoom), count("u1@localhost"); a != 0 || r != 3 || u != 50 {
			t.Fatalf("after DeleteOlder: alice %d, room %d, u1 %d; want 0, 3, 50", a, r, u)
		}
	})
}

// TestArchivePrefs stores, replaces and lists preferences, on every
// engine.
func TestArchivePrefs(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		a := db.Archive()
		if all, err := a.AllPrefs(ctx); err != nil || len(all) != 0 {
			t.Fatalf("AllPrefs of none = %v, %v", all, err)
		}
		want := []storage.ArchivePrefs{
			{Owner: arcAlice, Default: "roster", Always: []string{arcBob, "example.net"}, Never: []string{"mallory@localhost/x"}},
			{Owner: arcBob, Default: "always"},
		}
		for _, p := range []storage.ArchivePrefs{
			want[1],
			{Owner: arcAlice, Default: "never", Always: []string{arcCarol}},
			want[0], // replaces the one before
		} {
			if err := a.SetPrefs(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		all, err := a.AllPrefs(ctx)
		if err != nil || !reflect.DeepEqual(all, want) {
			t.Fatalf("AllPrefs = %+v, %v; want %+v", all, err, want)
		}
		for _, p := range []storage.ArchivePrefs{
			{Default: "always"},
			{Owner: arcAlice, Default: "always", Always: []string{"a@localhost\nb@localhost"}},
			{Owner: arcAlice, Default: "always", Never: []string{""}},
		} {
			if err := a.SetPrefs(ctx, p); err == nil {
				t.Errorf("SetPrefs(%+v) succeeded", p)
			}
		}
	})
}

// TestArchiveAccountDelete checks that deleting an account deletes its
// archive and preferences, and only those.
func TestArchiveAccountDelete(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		a := db.Archive()
		if err := db.Accounts().Create(ctx, storage.Account{JID: arcAlice, Credentials: []storage.Credential{cred("SCRAM-SHA-256", 1)}}); err != nil {
			t.Fatal(err)
		}
		if err := a.Append(ctx, archiveFixture()); err != nil {
			t.Fatal(err)
		}
		for _, o := range []string{arcAlice, arcBob} {
			if err := a.SetPrefs(ctx, storage.ArchivePrefs{Owner: o, Default: "always"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Accounts().Delete(ctx, arcAlice); err != nil {
			t.Fatal(err)
		}
		if n, err := a.Count(ctx, storage.ArchiveQuery{Owner: arcAlice}); err != nil || n != 0 {
			t.Errorf("deleted account's archive: %d rows, %v", n, err)
		}
		if n, err := a.Count(ctx, storage.ArchiveQuery{Owner: arcRoom}); err != nil || n != 5 {
			t.Errorf("room's archive after an account's deletion: %d rows, %v; want 5", n, err)
		}
		if all, err := a.AllPrefs(ctx); err != nil || len(all) != 1 || all[0].Owner != arcBob {
			t.Errorf("AllPrefs after alice's deletion = %+v, %v; want bob's alone", all, err)
		}
		if err := db.Accounts().Delete(ctx, arcAlice); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Delete: err = %v, want ErrNotFound", err)
		}
	})
}

// TestArchiveReopen closes the database and opens it again (the same
// SQLite file, the same PostgreSQL DSN): the rows are still there.
func TestArchiveReopen(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			ctx := t.Context()
			open := func() *storage.DB {
				t.Helper()
				db, err := storage.Open(ctx, e.Driver, e.DSN)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				return db
			}
			msgs := archiveFixture()
			db := open()
			if err := db.Archive().Append(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = open()
			defer db.Close()
			got, err := db.Archive().Query(ctx, storage.ArchiveQuery{Owner: arcAlice})
			if err != nil || !reflect.DeepEqual(got, msgs[:20]) {
				t.Fatalf("after reopening Query = %v, %v; want %v", seqsOf(got), err, seqsOf(msgs[:20]))
			}
		})
	}
}

// TestArchivePlans fills a PostgreSQL archive and checks that the pages
// mam asks for are read from an index in order — no Sort, no Seq Scan —
// both as planned for the values given (custom plan) and as a prepared
// statement plans them for any values (generic plan), since db.query
// prepares them and PostgreSQL switches to the generic plan after five
// runs when it looks no worse.
func TestArchivePlans(t *testing.T) {
	e := storagetest.Postgres(t)
	db := storagetest.Open(t, e)
	ctx := t.Context()
	const owners, perOwner = 100, 200
	var batch []storage.ArchivedMessage
	for o := range owners {
		for i := range perOwner {
			batch = append(batch, storage.ArchivedMessage{
				Owner: fmt.Sprintf("user%d@localhost", o), Seq: arcT0 + int64(i*owners+o), ID: fmt.Sprint(i),
				With: fmt.Sprintf("user%d@localhost", (o+1+i%10)%owners), Outgoing: i%2 == 0,
				Stanza: []byte("<message><body>hello</body></message>"),
			})
		}
		if len(batch) >= 2000 {
			if err := db.Archive().Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := db.Archive().Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, "ANALYZE archive"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		q     storage.ArchiveQuery
		index string
	}{
		{"with newest", storage.ArchiveQuery{Owner: "user7@localhost", With: "user9@localhost", Limit: 51, Newest: true}, "archive_with"},
		{"after", storage.ArchiveQuery{Owner: "user7@localhost", After: arcT0 + 5000, Limit: 51}, "archive_owner"},
		{"with after", storage.ArchiveQuery{Owner: "user7@localhost", With: "user9@localhost", After: arcT0 + 5000, Limit: 51}, ""},
		{"before newest", storage.ArchiveQuery{Owner: "user7@localhost", Before: arcT0 + 15000, Limit: 51, Newest: true}, "archive_owner"},
	}
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, c := range cases {
		query, args, _, err := storage.ArchiveQuerySQL(c.q, false)
		if err != nil {
			t.Fatal(err)
		}
		// A prepared statement of SQL, so that EXPLAIN EXECUTE shows the
		// plan of the very text Query runs, with its arguments bound.
		name := fmt.Sprintf("plan%d", i)
		if _, err := conn.ExecContext(ctx, "PREPARE "+name+" AS "+query); err != nil {
			t.Fatal(err)
		}
		var lits []string
		for _, a := range args {
			switch v := a.(type) {
			case string:
				lits = append(lits, "'"+strings.ReplaceAll(v, "'", "''")+"'")
			default:
				lits = append(lits, fmt.Sprint(v))
			}
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = "+mode); err != nil {
				t.Fatal(err)
			}
			plan := explain(ctx, t, conn, "EXPLAIN EXECUTE "+name+"("+strings.Join(lits, ", ")+")")
			t.Logf("%s, %s:\n%s", c.name, mode, plan)
			if strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "Index") {
				t.Errorf("%s, %s: plan sorts or scans the table:\n%s", c.name, mode, plan)
			}
			if c.index != "" && !strings.Contains(plan, " using "+c.index+" on archive") {
				t.Errorf("%s, %s: plan does not use %s:\n%s", c.name, mode, c.index, plan)
			}
		}
	}
}

// explain returns the plan of q, one node a line.
func explain(ctx context.Context, t *testing.T, conn *sql.Conn, q string) string {
	t.Helper()
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
