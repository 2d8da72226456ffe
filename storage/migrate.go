package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"time"
)

// migrationFiles holds the schema, one file per step. Released files are
// never edited: a database records which steps it has, not what they said.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version int    // 1, 2, …; from the file name
	name    string // the rest of the file name, e.g. "accounts"
	sql     string // engine-neutral; rewritten by dialect.schema
}

// label is how a migration is reported: its file name without ".sql".
func (m migration) label() string { return fmt.Sprintf("%04d_%s", m.version, m.name) }

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads the migrations in the root of fsys and checks that they
// are numbered 1, 2, … without gaps, so that a misnamed file fails every test
// instead of being skipped in production.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("storage: read migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries { // ReadDir sorts by name, so by number
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("storage: migration file %q is not named NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if want := len(migs) + 1; version != want {
			return nil, fmt.Errorf("storage: migration %s: expected number %04d (numbers start at 0001 and have no gaps or repeats)", e.Name(), want)
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("storage: read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: version, name: m[2], sql: string(body)})
	}
	return migs, nil
}

// embeddedMigrations returns the migrations compiled into the binary.
func embeddedMigrations() ([]migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("storage: migrations: %w", err)
	}
	return loadMigrations(sub)
}

const createSchemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)`

// Migrate brings the schema up to date and returns the migrations it applied,
// as "NNNN_name", in order; none when the schema was current. Each migration
// runs in its own transaction together with its schema_version row, so a
// failure leaves the database at the last complete step.
//
// Migrate is safe to run from several processes at once: each step is taken
// under a database-wide lock and re-checks the version first. It refuses a
// database whose schema is newer than this binary, or whose recorded steps
// do not match the binary's.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	migs, err := embeddedMigrations()
	if err != nil {
		return nil, err
	}
	var applied []string
	for {
		m, err := db.migrateStep(ctx, migs)
		if err != nil {
			return applied, err
		}
		if m == nil {
			return applied, nil
		}
		applied = append(applied, m.label())
	}
}

// migrateStep applies the next missing migration, if any, and returns it;
// nil means the schema is current.
func (db *DB) migrateStep(ctx context.Context, migs []migration) (_ *migration, err error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storage: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()

	if db.dialect.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, db.dialect.lockMigrations); err != nil {
			return nil, fmt.Errorf("storage: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createSchemaVersion); err != nil {
		return nil, fmt.Errorf("storage: migrate: create schema_version: %w", err)
	}
	current, err := checkRecorded(ctx, tx, migs)
	if err != nil {
		return nil, err
	}
	if current == len(migs) {
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("storage: migrate: commit: %w", err)
		}
		return nil, nil
	}

	m := migs[current]
	if _, err := tx.ExecContext(ctx, db.dialect.schema.Replace(m.sql)); err != nil {
		return nil, fmt.Errorf("storage: migrate: apply %s: %w", m.label(), err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, toMillis(time.Now())); err != nil {
		return nil, fmt.Errorf("storage: migrate: record %s: %w", m.label(), err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storage: migrate: commit %s: %w", m.label(), err)
	}
	return &m, nil
}

// checkRecorded compares schema_version with the known migrations and
// returns how many are applied. Steps are applied strictly in order, so the
// recorded versions must be exactly 1…n with the binary's names.
func checkRecorded(ctx context.Context, tx *sql.Tx, migs []migration) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_version ORDER BY version`)
	if err != nil {
		return 0, fmt.Errorf("storage: migrate: read schema_version: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var version int
		var name string
		if err := rows.Scan(&version, &name); err != nil {
			return 0, fmt.Errorf("storage: migrate: read schema_version: %w", err)
		}
		switch {
		case version > len(migs):
			return 0, fmt.Errorf("storage: database schema is at version %d (%s), newer than this xmppd knows (%d); use a newer xmppd", version, name, len(migs))
		case version != n+1:
			return 0, fmt.Errorf("storage: schema_version is missing version %d (found %d)", n+1, version)
		case name != migs[n].name:
			return 0, fmt.Errorf("storage: schema_version %d is %q in the database but %q in this xmppd", version, name, migs[n].name)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("storage: migrate: read schema_version: %w", err)
	}
	return n, nil
}

// SchemaVersion returns the highest migration applied to the database, 0 for
// a database never migrated.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, db.dialect.tableExists, "schema_version").Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: schema version: %w", err)
	}
	var v int
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: schema version: %w", err)
	}
	return v, nil
}
