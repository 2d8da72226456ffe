package storage

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps statements prepared on the pool, by query text.
//
// Without it, lib/pq sends every query unnamed: PostgreSQL parses and plans
// it afresh each time, which was about a third of PostgreSQL's CPU per
// login (three lookups: credentials, roster, offline messages). A
// prepared statement is parsed once per connection and, after a few
// executions, runs a cached plan. database/sql prepares it on each pooled
// connection as that connection first runs it.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// get returns the statement for q, preparing it on first use. A failed
// prepare is not remembered: the next call tries again.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	st := c.stmts[q]
	c.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.stmts[q]; prev != nil {
		st.Close() // another caller prepared it meanwhile
		return prev, nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[q] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
}

// query runs q through a prepared statement where the engine benefits
// (PostgreSQL); q must be one of a fixed set of texts, never built from
// data, since each distinct text stays prepared for the life of the pool.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if db.stmts == nil {
		return db.sql.QueryContext(ctx, q, args...)
	}
	st, err := db.stmts.get(ctx, db.sql, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// txExec runs q inside tx, through the pool-wide prepared statement where
// the engine benefits (PostgreSQL); q must be one of a fixed set of texts,
// as for query. The first use of a text prepares it on a connection of the
// pool besides tx's own, which then needs one to be free.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if db.stmts == nil {
		return tx.ExecContext(ctx, q, args...)
	}
	st, err := db.stmts.get(ctx, db.sql, q)
	if err != nil {
		return nil, err
	}
	// Tx.StmtContext reuses the statement where it is already prepared on
	// tx's connection, and prepares it there (for good) otherwise.
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}
