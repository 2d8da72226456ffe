//go:build !unix

package storage

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("storage: lock held")

// lockFile does not lock where flock(2) is missing: the instance lock is
// then advisory only on PostgreSQL.
func lockFile(*os.File) error { return nil }
