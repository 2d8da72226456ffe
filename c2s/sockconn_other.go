//go:build !linux

package c2s

import "net"

// newSockConn returns c: the system calls that sockConn saves are a Linux
// measurement (sockconn_linux.go).
func newSockConn(c net.Conn) net.Conn { return c }

// peekByte would return the first byte the peer sent without taking it
// off the socket; elsewhere than Linux it cannot (ok is false).
func peekByte(net.Conn) (b byte, ok bool, err error) { return 0, false, nil }
