package storage

import (
	"context"
	"database/sql/driver"
)

// modernc.org/sqlite is SQLite translated to Go: its call stacks are deep,
// and a goroutine that once ran a query keeps the grown stack until the
// garbage collector shrinks it. Queries are made from the goroutines of
// client sessions (roster gets, presence broadcast, offline storage), so
// every session that ever touched the database would carry 8 KiB or more
// of stack while idle. To avoid that, each SQLite connection gets one
// goroutine of its own, and every driver call on it runs there; the
// caller only waits on a channel. database/sql never uses a driver
// connection from two goroutines at once, so a connection's calls are
// already serialised and the worker runs them one by one.

// sqliteConnector opens connections through the worker wrapper.
type sqliteConnector struct {
	dsn string
	drv driver.Driver
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	w := newConnWorker()
	var conn driver.Conn
	var err error
	w.do(func() { conn, err = c.drv.Open(c.dsn) })
	if err != nil {
		w.stop()
		return nil, err
	}
	return &workerConn{w: w, c: conn}, nil
}

func (c sqliteConnector) Driver() driver.Driver { return c.drv }

// connWorker runs the calls of one connection on its own goroutine.
type connWorker struct {
	jobs chan func()
	done chan struct{} // one call at a time, so one reusable signal
}

func newConnWorker() *connWorker {
	w := &connWorker{jobs: make(chan func()), done: make(chan struct{})}
	go func() {
		for f := range w.jobs {
			f()
			w.done <- struct{}{}
		}
	}()
	return w
}

func (w *connWorker) do(f func()) {
	w.jobs <- f
	<-w.done
}

func (w *connWorker) stop() { close(w.jobs) }

// workerConn is a driver.Conn whose calls run on its worker. It keeps
// the statements it has run prepared: modernc parses a statement anew for
// every query and exec otherwise, which was a tenth of the server's CPU
// during a burst of logins. xmppd's queries are a fixed set of texts, and
// the cache is bounded for any others.
type workerConn struct {
	w     *connWorker
	c     driver.Conn
	stmts map[string]*cachedStmt // owned by the worker
}

// cachedStmt is a prepared statement of the cache; busy while rows read
// from it are open (another use of the same text then prepares afresh).
type cachedStmt struct {
	s    driver.Stmt
	busy bool
}

// maxCachedStmts bounds the statement cache of one connection.
const maxCachedStmts = 128

// cached returns the cached statement for query, preparing it if there is
// room, or nil. Runs on the worker.
func (c *workerConn) cached(ctx context.Context, query string) *cachedStmt {
	cs := c.stmts[query]
	if cs == nil {
		if len(c.stmts) >= maxCachedStmts {
			return nil
		}
		p, ok := c.c.(driver.ConnPrepareContext)
		if !ok {
			return nil
		}
		s, err := p.PrepareContext(ctx, query)
		if err != nil {
			return nil // the uncached path reports it
		}
		_, qok := s.(driver.StmtQueryContext)
		_, eok := s.(driver.StmtExecContext)
		if !qok || !eok {
			s.Close()
			return nil
		}
		if c.stmts == nil {
			c.stmts = map[string]*cachedStmt{}
		}
		cs = &cachedStmt{s: s}
		c.stmts[query] = cs
	}
	if cs.busy {
		return nil
	}
	return cs
}

var (
	_ driver.ConnBeginTx        = (*workerConn)(nil)
	_ driver.ConnPrepareContext = (*workerConn)(nil)
	_ driver.ExecerContext      = (*workerConn)(nil)
	_ driver.QueryerContext     = (*workerConn)(nil)
	_ driver.Pinger             = (*workerConn)(nil)
	_ driver.SessionResetter    = (*workerConn)(nil)
	_ driver.Validator          = (*workerConn)(nil)
)

func (c *workerConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *workerConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var s driver.Stmt
	var err error
	c.w.do(func() {
		if p, ok := c.c.(driver.ConnPrepareContext); ok {
			s, err = p.PrepareContext(ctx, query)
		} else {
			s, err = c.c.Prepare(query)
		}
	})
	if err != nil {
		return nil, err
	}
	return &workerStmt{w: c.w, s: s}, nil
}

func (c *workerConn) Close() error {
	var err error
	c.w.do(func() {
		for _, cs := range c.stmts {
			cs.s.Close()
		}
		c.stmts = nil
		err = c.c.Close()
	})
	c.w.stop()
	return err
}

func (c *workerConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *workerConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var t driver.Tx
	var err error
	c.w.do(func() { t, err = c.c.(driver.ConnBeginTx).BeginTx(ctx, opts) })
	if err != nil {
		return nil, err
	}
	return &workerTx{w: c.w, t: t}, nil
}

func (c *workerConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.c.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	var r driver.Result
	var err error
	c.w.do(func() {
		if cs := c.cached(ctx, query); cs != nil {
			r, err = cs.s.(driver.StmtExecContext).ExecContext(ctx, args)
			return
		}
		r, err = e.ExecContext(ctx, query, args)
	})
	return r, err
}

func (c *workerConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.c.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	var r driver.Rows
	var err error
	var cs *cachedStmt
	c.w.do(func() {
		if cs = c.cached(ctx, query); cs != nil {
			if r, err = cs.s.(driver.StmtQueryContext).QueryContext(ctx, args); err == nil {
				cs.busy = true
			}
			return
		}
		r, err = q.QueryContext(ctx, query, args)
	})
	if err != nil {
		return nil, err
	}
	return &workerRows{w: c.w, r: r, stmt: cs}, nil
}

func (c *workerConn) Ping(ctx context.Context) error {
	p, ok := c.c.(driver.Pinger)
	if !ok {
		return nil
	}
	var err error
	c.w.do(func() { err = p.Ping(ctx) })
	return err
}

func (c *workerConn) ResetSession(ctx context.Context) error {
	r, ok := c.c.(driver.SessionResetter)
	if !ok {
		return nil
	}
	var err error
	c.w.do(func() { err = r.ResetSession(ctx) })
	return err
}

func (c *workerConn) IsValid() bool {
	v, ok := c.c.(driver.Validator)
	if !ok {
		return true
	}
	var valid bool
	c.w.do(func() { valid = v.IsValid() })
	return valid
}

type workerStmt struct {
	w *connWorker
	s driver.Stmt
}

var (
	_ driver.StmtExecContext  = (*workerStmt)(nil)
	_ driver.StmtQueryContext = (*workerStmt)(nil)
)

func (s *workerStmt) Close() error {
	var err error
	s.w.do(func() { err = s.s.Close() })
	return err
}

func (s *workerStmt) NumInput() int { return s.s.NumInput() }

func (s *workerStmt) Exec(args []driver.Value) (driver.Result, error) {
	var r driver.Result
	var err error
	s.w.do(func() { r, err = s.s.Exec(args) }) //nolint:staticcheck // required by driver.Stmt
	return r, err
}

func (s *workerStmt) Query(args []driver.Value) (driver.Rows, error) {
	var r driver.Rows
	var err error
	s.w.do(func() { r, err = s.s.Query(args) }) //nolint:staticcheck // required by driver.Stmt
	if err != nil {
		return nil, err
	}
	return &workerRows{w: s.w, r: r}, nil
}

func (s *workerStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	var r driver.Result
	var err error
	s.w.do(func() { r, err = s.s.(driver.StmtExecContext).ExecContext(ctx, args) })
	return r, err
}

func (s *workerStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var r driver.Rows
	var err error
	s.w.do(func() { r, err = s.s.(driver.StmtQueryContext).QueryContext(ctx, args) })
	if err != nil {
		return nil, err
	}
	return &workerRows{w: s.w, r: r}, nil
}

type workerRows struct {
	w    *connWorker
	r    driver.Rows
	stmt *cachedStmt // the cached statement the rows come from, if any
}

func (r *workerRows) Columns() []string { return r.r.Columns() }

func (r *workerRows) Close() error {
	var err error
	r.w.do(func() {
		err = r.r.Close()
		if r.stmt != nil {
			r.stmt.busy = false
			r.stmt = nil
		}
	})
	return err
}

func (r *workerRows) Next(dest []driver.Value) error {
	var err error
	r.w.do(func() { err = r.r.Next(dest) })
	return err
}

type workerTx struct {
	w *connWorker
	t driver.Tx
}

func (t *workerTx) Commit() error {
	var err error
	t.w.do(func() { err = t.t.Commit() })
	return err
}

func (t *workerTx) Rollback() error {
	var err error
	t.w.do(func() { err = t.t.Rollback() })
	return err
}
