// Package proxyproto reads the header of the PROXY protocol (versions 1
// and 2, as HAProxy specifies them and load balancers send them) that a
// proxy puts in front of a TCP connection to say whose connection it is.
//
// It reads exactly the header's bytes and nothing after them, so that the
// connection can go on to TLS or XML as if the proxy were not there.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ErrNotProxy is returned (wrapped) when the connection does not start
// with a PROXY protocol header at all.
var ErrNotProxy = errors.New("proxyproto: no PROXY protocol header")

// ErrMalformed is returned (wrapped) for a header that starts like one but
// is not valid.
var ErrMalformed = errors.New("proxyproto: malformed header")

// Header is what a header says of the connection.
type Header struct {
	// Source is the client's address and port. It is invalid when the
	// header does not give one (a v2 LOCAL command, such as a proxy's
	// health check, or v1 UNKNOWN): the connection is the proxy's own.
	Source netip.AddrPort
	// Version is 1 or 2.
	Version int
}

// v2Signature starts every version 2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	// v1MaxLen is the longest version 1 line, CRLF included.
	v1MaxLen = 107
	// v2MaxLen bounds the addresses and TLVs of a version 2 header that
	// are accepted; real ones are well under a kilobyte.
	v2MaxLen = 4096
)

// MayStart reports whether b, a connection's first byte, can start a
// header: a connection whose first byte it is not has no header.
func MayStart(b byte) bool { return b == 'P' || b == '\r' }

// Read reads one header from r, which must be at the start of the
// connection. It reads no byte beyond the header; for version 1 it reads
// one byte at a time, so r should not be a slow reader of its own (a
// net.Conn is fine).
func Read(r io.Reader) (Header, error) {
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read: %w", err)
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case '\r':
		return readV2(r)
	}
	return Header{}, fmt.Errorf("%w (first byte %q)", ErrNotProxy, first[0])
}

// readV1 reads the rest of a version 1 line, "PROXY TCP4 src dst sport
// dport\r\n", whose P was read.
func readV1(r io.Reader) (Header, error) {
	line := make([]byte, 1, v1MaxLen)
	line[0] = 'P'
	var b [1]byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) == v1MaxLen {
			return Header{}, fmt.Errorf("%w: version 1 line longer than %d bytes", ErrMalformed, v1MaxLen)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("proxyproto: read: %w", err)
		}
		line = append(line, b[0])
		if len(line) == 6 && string(line) != "PROXY " {
			return Header{}, fmt.Errorf("%w (starts %q)", ErrNotProxy, line)
		}
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		// The proxy does not know the client; whatever follows is ignored
		// (the specification says so).
		return Header{Version: 1}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, fmt.Errorf("%w: version 1 line %q", ErrMalformed, line[:len(line)-2])
	}
	src, err := netip.ParseAddr(f[2])
	if err != nil || src.Is4() != (f[1] == "TCP4") || src.Zone() != "" {
		return Header{}, fmt.Errorf("%w: source address %q", ErrMalformed, f[2])
	}
	if dst, err := netip.ParseAddr(f[3]); err != nil || dst.Is4() != src.Is4() {
		return Header{}, fmt.Errorf("%w: destination address %q", ErrMalformed, f[3])
	}
	sport, err := parsePort(f[4])
	if err != nil {
		return Header{}, err
	}
	if _, err := parsePort(f[5]); err != nil {
		return Header{}, err
	}
	return Header{Source: netip.AddrPortFrom(src, sport), Version: 1}, nil
}

// parsePort parses a version 1 port: decimal, no sign or leading zero.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: port %q", ErrMalformed, s)
	}
	return uint16(n), nil
}

// readV2 reads the rest of a version 2 header, whose first byte was read.
func readV2(r io.Reader) (Header, error) {
	var fixed [16]byte
	fixed[0] = '\r'
	if _, err := io.ReadFull(r, fixed[1:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read: %w", err)
	}
	if !bytes.Equal(fixed[:12], v2Signature) {
		return Header{}, fmt.Errorf("%w (no version 2 signature)", ErrNotProxy)
	}
	verCmd, fam := fixed[12], fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, fmt.Errorf("%w: version %d", ErrMalformed, verCmd>>4)
	}
	if n > v2MaxLen {
		return Header{}, fmt.Errorf("%w: %d bytes of addresses", ErrMalformed, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read: %w", err)
	}
	switch verCmd & 0xf {
	case 0: // LOCAL: the proxy's own connection
		return Header{Version: 2}, nil
	case 1: // PROXY
	default:
		return Header{}, fmt.Errorf("%w: command %d", ErrMalformed, verCmd&0xf)
	}
	switch fam {
	case 0x11: // TCP over IPv4: src, dst, sport, dport
		if n < 12 {
			return Header{}, fmt.Errorf("%w: %d bytes for IPv4 addresses", ErrMalformed, n)
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		return Header{Source: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10])), Version: 2}, nil
	case 0x21: // TCP over IPv6
		if n < 36 {
			return Header{}, fmt.Errorf("%w: %d bytes for IPv6 addresses", ErrMalformed, n)
		}
		src := netip.AddrFrom16([16]byte(body[0:16]))
		return Header{Source: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34])), Version: 2}, nil
	case 0x00: // UNSPEC: the proxy does not know the client
		return Header{Version: 2}, nil
	}
	return Header{}, fmt.Errorf("%w: address family and protocol %#x (want TCP over IPv4 or IPv6)", ErrMalformed, fam)
}
