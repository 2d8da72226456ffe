//go:build !linux

package c2s

import "net"

// sendRoom: elsewhere every write goes through a flush goroutine.
type sendRoom struct{}

func newSendRoom(net.Conn) sendRoom { return sendRoom{} }

func (*sendRoom) room(int) bool { return false }

func (*sendRoom) wrote(int) {}
