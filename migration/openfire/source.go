package openfire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/go-sql-driver/mysql" // mysql:// DSNs
	_ "github.com/lib/pq"              // postgres:// DSNs
)

// source is the little the reader needs of a database: which tables and
// columns exist, and the rows of one table. SQL databases and HSQLDB's
// script file both implement it, so the mapping code is written once.
type source interface {
	// schema returns each table's columns, table and column names lower-cased.
	schema(ctx context.Context) (map[string]map[string]bool, error)
	// scan calls fn with the values of cols (lower-cased names, which
	// must exist) for each row of table; nil is NULL. fn must not keep vals.
	scan(ctx context.Context, table string, cols []string, fn func(vals []*string) error) error
	close() error
}

// sqlSource reads a live Openfire database over database/sql.
type sqlSource struct {
	db    *sql.DB
	quote func(string) string
	// names maps lower-cased table and "table.column" names to the
	// database's own spelling (MySQL keeps ofUser's case).
	names map[string]string
	// schemaQuery lists (table, column) of the current database/schema.
	schemaQuery string
}

// openSQL opens dsn: postgres:// or postgresql:// URLs and lib/pq's
// key=value form go to PostgreSQL; mysql:// (or mariadb://) followed by a
// go-sql-driver/mysql DSN, user:pass@tcp(host:3306)/openfire, to MySQL and
// MariaDB.
func openSQL(ctx context.Context, dsn string) (*sqlSource, error) {
	var s sqlSource
	var driver, conn string
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		driver, conn = "postgres", dsn
	case strings.HasPrefix(dsn, "mysql://"), strings.HasPrefix(dsn, "mariadb://"):
		driver, conn = "mysql", dsn[strings.Index(dsn, "://")+3:]
	case !strings.Contains(dsn, "://") && strings.Contains(dsn, "="):
		driver, conn = "postgres", dsn
	default:
		return nil, fmt.Errorf("openfire: DSN %q: want postgres://…, mysql://user:pass@tcp(host:port)/db or a PostgreSQL key=value string", redact(dsn))
	}
	if driver == "postgres" {
		s.quote = func(n string) string { return `"` + strings.ReplaceAll(n, `"`, `""`) + `"` }
		s.schemaQuery = `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`
	} else {
		s.quote = func(n string) string { return "`" + strings.ReplaceAll(n, "`", "``") + "`" }
		s.schemaQuery = `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = DATABASE()`
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		return nil, fmt.Errorf("openfire: open %s: %w", redact(dsn), err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("openfire: connect to %s: %w", redact(dsn), err)
	}
	s.db = db
	return &s, nil
}

// redact drops a URL's password, for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(dsn, "@"); i >= 0 {
			return "…" + dsn[i:]
		}
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func (s *sqlSource) schema(ctx context.Context) (map[string]map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, s.schemaQuery)
	if err != nil {
		return nil, fmt.Errorf("openfire: list tables: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]bool{}
	s.names = map[string]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, fmt.Errorf("openfire: list tables: %w", err)
		}
		lt, lc := strings.ToLower(t), strings.ToLower(c)
		if out[lt] == nil {
			out[lt] = map[string]bool{}
		}
		out[lt][lc] = true
		s.names[lt] = t
		s.names[lt+"."+lc] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("openfire: list tables: %w", err)
	}
	return out, nil
}

func (s *sqlSource) scan(ctx context.Context, table string, cols []string, fn func(vals []*string) error) error {
	if s.names == nil {
		return errors.New("openfire: scan before schema")
	}
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = s.quote(s.names[table+"."+c])
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+strings.Join(q, ", ")+" FROM "+s.quote(s.names[table]))
	if err != nil {
		return fmt.Errorf("openfire: read %s: %w", table, err)
	}
	defer rows.Close()
	ns := make([]sql.NullString, len(cols))
	dst := make([]any, len(cols))
	for i := range ns {
		dst[i] = &ns[i]
	}
	vals := make([]*string, len(cols))
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("openfire: read %s: %w", table, err)
		}
		for i := range ns {
			vals[i] = nil
			if ns[i].Valid {
				v := ns[i].String
				vals[i] = &v
			}
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("openfire: read %s: %w", table, err)
	}
	return nil
}

func (s *sqlSource) close() error { return s.db.Close() }
