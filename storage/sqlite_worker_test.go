package storage

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatementCache: the same query text used again while rows of it are
// still open on the connection (inside one transaction) reads its own
// rows, and cached statements see writes made between two uses.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	db, err := openSQLite(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	const ins = "INSERT INTO t (k, v) VALUES (?, ?)"
	for k, v := range []string{"a", "b", "c"} {
		if _, err := db.ExecContext(ctx, ins, k, v); err != nil {
			t.Fatal(err)
		}
	}
	const q = "SELECT v FROM t WHERE k >= ? ORDER BY k"
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var v string
		outer.Scan(&v)
		// The same text while outer is open: a statement of its own.
		var inner string
		if err := tx.QueryRowContext(ctx, q, 2).Scan(&inner); err != nil {
			t.Fatal(err)
		}
		got = append(got, v+inner)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if want := "ac bc cc"; strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := tx.ExecContext(ctx, ins, 3, "d"); err != nil {
		t.Fatal(err)
	}
	var last string
	if err := tx.QueryRowContext(ctx, q, 3).Scan(&last); err != nil || last != "d" {
		t.Fatalf("after insert: %q, %v; want d", last, err)
	}
}
