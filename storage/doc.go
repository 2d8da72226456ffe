// Package storage is xmppd's persistence layer: it opens the database
// (PostgreSQL through github.com/lib/pq, or embedded SQLite through
// modernc.org/sqlite), applies the schema, and offers one typed repository per
// concern, starting with [Accounts].
//
// # Engines
//
// Both engines run the same SQL. Every difference between them — how a
// database is opened, the column type for bytes, how migrations are
// serialised, how a unique violation is recognised — sits in one place,
// dialectFor in dialect.go. Queries use $1, $2, … placeholders on both
// engines: modernc.org/sqlite binds $N to the N-th argument, exactly like
// PostgreSQL, so no query text is rewritten at run time.
//
// SQLite is opened in WAL mode with a busy timeout, foreign keys on and
// synchronous=NORMAL, set on every pooled connection through the driver's
// _pragma DSN parameters, and every transaction begins IMMEDIATE so that a
// writer waits for the lock (up to the busy timeout) at BEGIN instead of
// failing when it later upgrades a read lock.
//
// Timestamps are stored as BIGINT milliseconds since the Unix epoch, which
// both engines store and compare the same way.
//
// # Migrations
//
// The schema lives in numbered files, migrations/NNNN_name.sql, embedded in
// the binary: one sequence for both engines, applied in order by
// [DB.Migrate], each in its own transaction, and recorded in the table
// schema_version. A released migration is never edited; a change is a new
// file. Migration files may use the tokens {{BLOB}} (bytea on PostgreSQL, BLOB
// on SQLite) and {{AUTOINC}} (an auto-incrementing 64-bit primary key:
// BIGSERIAL PRIMARY KEY on PostgreSQL, INTEGER PRIMARY KEY AUTOINCREMENT on
// SQLite) and {{ROWID_INT64}} (a 64-bit column the application fills in
// increasing order: the rowid, INTEGER PRIMARY KEY, on SQLite; BIGINT NOT
// NULL, with no index, on PostgreSQL), which the dialect rewrites. A database whose schema is newer than
// the binary is refused rather than silently used.
//
// # Tests
//
// Package storagetest hands tests a fresh database on each engine; a test
// written against it runs unchanged on SQLite and on PostgreSQL.
//
// # What it does not do
//
// storage knows nothing of XMPP: it stores strings it is given (an account's
// JID must already be normalised by the caller, see package auth) and never
// sees a password, only SCRAM keys. It imports no other xmppd package.
package storage
