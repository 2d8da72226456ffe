//go:build !linux

package c2s

import (
	"errors"
	"log/slog"
)

// poller is Linux-only (epoll); elsewhere sessions never park and keep
// their read goroutine while idle.
type poller struct{}

func newPoller(*slog.Logger) (*poller, error) {
	return nil, errors.New("c2s: parking idle sessions needs Linux")
}

func (*poller) arm(fd int, id uint64, added bool) error { return errPollerClosed }
func (*poller) run(func(id uint64))                     {}
func (*poller) close()                                  {}
