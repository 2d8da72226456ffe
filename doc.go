// Package xmppd is the root of the xmppd module; the server is assembled
// in package server and run by cmd/xmppd. This package holds only
// repository-wide tests.
package xmppd
