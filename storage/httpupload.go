package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Upload is one HTTP upload slot (XEP-0363) and, once its PUT has
// completed, the record of the stored file.
type Upload struct {
	// ID is the slot's random identifier, chosen by the server; it names
	// the file in the upload directory too.
	ID string
	// Owner is the bare JID of the user who asked for the slot.
	Owner string
	// Filename is the sanitised file name, for URLs and Content-Disposition.
	Filename string
	// Size is the announced size in bytes.
	Size int64
	// ContentType is the media type: the announced one, or the one the PUT
	// gave when none was announced. "" only for a slot without one.
	ContentType string
	// Created is when the slot was granted; Expires is when it stops
	// accepting a PUT. Both UTC, to the millisecond.
	Created, Expires time.Time
	// Uploaded is when the PUT completed; zero while the file is not there.
	Uploaded time.Time
}

// Release is an amount of an owner's quota and the time it becomes free:
// when a slot expires unused, or when a file reaches its maximum age.
type Release struct {
	Size int64
	At   time.Time
}

// HTTPUploads is the repository of upload slots and files.
type HTTPUploads struct {
	db *DB // immutable; never nil
}

// HTTPUploads returns the HTTP upload repository.
func (db *DB) HTTPUploads() *HTTPUploads { return &HTTPUploads{db: db} }

const uploadColumns = `id, owner, filename, size, content_type, created, expires, uploaded`

// CreateSlot stores a new slot (u.Uploaded must be zero). An id already
// taken gives an error wrapping [ErrExists].
func (h *HTTPUploads) CreateSlot(ctx context.Context, u Upload) error {
	_, err := h.db.sql.ExecContext(ctx, `INSERT INTO httpupload_files (`+uploadColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`,
		u.ID, u.Owner, u.Filename, u.Size, u.ContentType, toMillis(u.Created), toMillis(u.Expires))
	if err != nil {
		if h.db.dialect.isUniqueViolation(err) {
			return fmt.Errorf("storage: create upload slot %s: %w", u.ID, ErrExists)
		}
		return fmt.Errorf("storage: create upload slot %s: %w", u.ID, err)
	}
	return nil
}

// Upload returns the slot or file with the given id, or an error wrapping
// [ErrNotFound].
func (h *HTTPUploads) Upload(ctx context.Context, id string) (Upload, error) {
	rows, err := h.db.sql.QueryContext(ctx, `SELECT `+uploadColumns+` FROM httpupload_files WHERE id = $1`, id)
	if err != nil {
		return Upload{}, fmt.Errorf("storage: read upload %s: %w", id, err)
	}
	us, err := scanUploads(rows)
	if err != nil {
		return Upload{}, fmt.Errorf("storage: read upload %s: %w", id, err)
	}
	if len(us) == 0 {
		return Upload{}, fmt.Errorf("storage: read upload %s: %w", id, ErrNotFound)
	}
	return us[0], nil
}

// MarkUploaded records that the PUT of slot id completed at at, with the
// given content type. Only a slot not yet uploaded can be marked: for
// one already marked the error wraps [ErrExists], for an id that does not
// exist (never did, or swept) [ErrNotFound].
func (h *HTTPUploads) MarkUploaded(ctx context.Context, id, contentType string, at time.Time) error {
	res, err := h.db.sql.ExecContext(ctx,
		`UPDATE httpupload_files SET uploaded = $2, content_type = $3 WHERE id = $1 AND uploaded IS NULL`,
		id, toMillis(at), contentType)
	if err != nil {
		return fmt.Errorf("storage: mark upload %s done: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: mark upload %s done: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := h.Upload(ctx, id); err != nil {
		return fmt.Errorf("storage: mark upload %s done: %w", id, err)
	}
	return fmt.Errorf("storage: mark upload %s done: already uploaded: %w", id, ErrExists)
}

// Used returns the bytes owner holds at now: the sizes of its files plus
// those of its slots that have not expired.
func (h *HTTPUploads) Used(ctx context.Context, owner string, now time.Time) (int64, error) {
	var n int64
	err := h.db.sql.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM httpupload_files
		WHERE owner = $1 AND (uploaded IS NOT NULL OR expires > $2)`, owner, toMillis(now)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("storage: upload quota used by %s: %w", owner, err)
	}
	return n, nil
}

// Releases returns when the bytes owner holds at now become free, soonest
// first, at most limit of them: a slot's at its expiry, a file's maxAge
// after its upload.
func (h *HTTPUploads) Releases(ctx context.Context, owner string, now time.Time, maxAge time.Duration, limit int) ([]Release, error) {
	rows, err := h.db.sql.QueryContext(ctx, `
		SELECT size, CASE WHEN uploaded IS NULL THEN expires ELSE uploaded + $3 END AS frees
		FROM httpupload_files
		WHERE owner = $1 AND (uploaded IS NOT NULL OR expires > $2)
		ORDER BY frees LIMIT $4`, owner, toMillis(now), maxAge.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: upload quota releases of %s: %w", owner, err)
	}
	defer rows.Close()
	var rs []Release
	for rows.Next() {
		var r Release
		var at int64
		if err := rows.Scan(&r.Size, &at); err != nil {
			return nil, fmt.Errorf("storage: upload quota releases of %s: %w", owner, err)
		}
		r.At = fromMillis(at)
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: upload quota releases of %s: %w", owner, err)
	}
	return rs, nil
}

// Expired returns up to limit rows to sweep: files uploaded at or before
// filesBefore and slots never uploaded that expired before slotsBefore.
func (h *HTTPUploads) Expired(ctx context.Context, filesBefore, slotsBefore time.Time, limit int) ([]Upload, error) {
	rows, err := h.db.sql.QueryContext(ctx, `SELECT `+uploadColumns+` FROM httpupload_files
		WHERE (uploaded IS NOT NULL AND uploaded <= $1) OR (uploaded IS NULL AND expires < $2)
		ORDER BY id LIMIT $3`, toMillis(filesBefore), toMillis(slotsBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: expired uploads: %w", err)
	}
	us, err := scanUploads(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: expired uploads: %w", err)
	}
	return us, nil
}

// Owned returns every slot and file of owner, sorted by id.
func (h *HTTPUploads) Owned(ctx context.Context, owner string) ([]Upload, error) {
	rows, err := h.db.sql.QueryContext(ctx, `SELECT `+uploadColumns+` FROM httpupload_files
		WHERE owner = $1 ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("storage: uploads of %s: %w", owner, err)
	}
	us, err := scanUploads(rows)
	if err != nil {
		return nil, fmt.Errorf("storage: uploads of %s: %w", owner, err)
	}
	return us, nil
}

// Delete removes the rows with the given ids; ids that do not exist are
// not an error.
func (h *HTTPUploads) Delete(ctx context.Context, ids ...string) error {
	return deleteIDs(ctx, h.db, "httpupload_files", "uploads", ids)
}

// scanUploads reads every row of rows (uploadColumns, in order) and
// closes it.
func scanUploads(rows *sql.Rows) ([]Upload, error) {
	defer rows.Close()
	var us []Upload
	for rows.Next() {
		var u Upload
		var created, expires int64
		var uploaded sql.NullInt64
		if err := rows.Scan(&u.ID, &u.Owner, &u.Filename, &u.Size, &u.ContentType, &created, &expires, &uploaded); err != nil {
			return nil, err
		}
		u.Created, u.Expires = fromMillis(created), fromMillis(expires)
		if uploaded.Valid {
			u.Uploaded = fromMillis(uploaded.Int64)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return us, nil
}
