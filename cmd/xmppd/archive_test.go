package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// TestArchivePurge deletes an archive's older part and then all of it,
// leaving other archives alone, on each storage engine; bad arguments are
// refused.
func TestArchivePurge(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dsn := e.DSN
			if e.Driver == "sqlite" {
				dsn = ""
			}
			cfg := writeConfig(t, e.Driver, dsn, "")
			if r := xmppd(t, "", "-config", cfg, "migrate"); r.code != 0 {
				t.Fatalf("migrate: %+v", r)
			}
			if e.Driver == "sqlite" {
				dsn = filepath.Join(filepath.Dir(cfg), "data", "xmppd.db")
			}
			db, err := storage.Open(context.Background(), e.Driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			jan := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC).UnixMicro()
			mar := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC).UnixMicro()
			var rows []storage.ArchivedMessage
			for i, seq := range []int64{jan, jan + 1, mar, mar + 1} {
				for _, owner := range []string{"alice@localhost", "bob@localhost"} {
					rows = append(rows, storage.ArchivedMessage{Owner: owner, Seq: seq + int64(i)*10 + int64(len(owner)), ID: "x", With: "c@localhost", Stanza: []byte("<message/>")})
				}
			}
			if err := db.Archive().Append(t.Context(), rows); err != nil {
				t.Fatal(err)
			}
			count := func(owner string) int {
				n, err := db.Archive().Count(t.Context(), storage.ArchiveQuery{Owner: owner})
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if r := xmppd(t, "", "-config", cfg, "archive", "purge", "alice@localhost", "--before", "2026-02-01"); r.code != 0 || r.stdout != "deleted 2 archived messages of alice@localhost\n" {
				t.Fatalf("purge before February: %+v", r)
			}
			if a, b := count("alice@localhost"), count("bob@localhost"); a != 2 || b != 4 {
				t.Fatalf("after purging alice's January: alice %d, bob %d; want 2 and 4", a, b)
			}
			if r := xmppd(t, "", "-config", cfg, "archive", "purge", "alice@localhost"); r.code != 0 || r.stdout != "deleted 2 archived messages of alice@localhost\n" {
				t.Fatalf("purge all: %+v", r)
			}
			if a, b := count("alice@localhost"), count("bob@localhost"); a != 0 || b != 4 {
				t.Fatalf("after purging alice: alice %d, bob %d; want 0 and 4", a, b)
			}
			for _, args := range [][]string{
				{"archive", "purge", "alice@localhost/phone"},
				{"archive", "purge", "alice@localhost", "--before", "last week"},
				{"archive", "purge"},
			} {
				if r := xmppd(t, "", append([]string{"-config", cfg}, args...)...); r.code == 0 || r.stderr == "" {
					t.Errorf("%q: %+v, want a refusal with a reason", args, r)
				}
			}
		})
	}
}
