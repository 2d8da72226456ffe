package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a version 2 header.
func v2(verCmd, fam byte, body []byte) []byte {
	b := append([]byte{}, v2Signature...)
	b = append(b, verCmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(body)))
	return append(b, body...)
}

func TestRead(t *testing.T) {
	ipv4 := []byte{192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0x14, 0x66}                 // 192.0.2.7:12345 → 10.0.0.1:5222
	ipv6 := append(netip.MustParseAddr("2001:db8::7").AsSlice(), make([]byte, 20)...) // dst ::, ports
	binary.BigEndian.PutUint16(ipv6[32:], 443)
	tests := []struct {
		name    string
		in      []byte
		want    Header
		wantErr error
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 12345 5222\r\n"), Header{netip.MustParseAddrPort("192.0.2.7:12345"), 1}, nil},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 443 5223\r\n"), Header{netip.MustParseAddrPort("[2001:db8::7]:443"), 1}, nil},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1}, nil},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n"), Header{Version: 1}, nil},
		{"v2 IPv4 with a TLV", v2(0x21, 0x11, append(ipv4, 0x04, 0, 1, 'x')), Header{netip.MustParseAddrPort("192.0.2.7:12345"), 2}, nil},
		{"v2 IPv6", v2(0x21, 0x21, ipv6), Header{netip.MustParseAddrPort("[2001:db8::7]:443"), 2}, nil},
		{"v2 LOCAL", v2(0x20, 0x00, nil), Header{Version: 2}, nil},
		{"v2 UNSPEC", v2(0x21, 0x00, nil), Header{Version: 2}, nil},

		{"XML", []byte("<?xml version='1.0'?>"), Header{}, ErrNotProxy},
		{"TLS", []byte{0x16, 3, 1, 0, 200}, Header{}, ErrNotProxy},
		{"P but not PROXY", []byte("POST / HTTP/1.1\r\n"), Header{}, ErrNotProxy},
		{"CR but no signature", []byte("\r\n\r\nHELLO WORLD!!!!"), Header{}, ErrNotProxy},
		{"v1 no CRLF within 107 bytes", []byte("PROXY TCP4 " + strings.Repeat("1", 200)), Header{}, ErrMalformed},
		{"v1 family and address differ", []byte("PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n"), Header{}, ErrMalformed},
		{"v1 bad address", []byte("PROXY TCP4 192.0.2.300 10.0.0.1 1 2\r\n"), Header{}, ErrMalformed},
		{"v1 port too large", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n"), Header{}, ErrMalformed},
		{"v1 leading zero", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n"), Header{}, ErrMalformed},
		{"v1 missing field", []byte("PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n"), Header{}, ErrMalformed},
		{"v1 UDP", []byte("PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n"), Header{}, ErrMalformed},
		{"v2 version 3", v2(0x31, 0x11, ipv4), Header{}, ErrMalformed},
		{"v2 command 2", v2(0x22, 0x11, ipv4), Header{}, ErrMalformed},
		{"v2 short IPv4", v2(0x21, 0x11, ipv4[:8]), Header{}, ErrMalformed},
		{"v2 UDP", v2(0x21, 0x12, ipv4), Header{}, ErrMalformed},
		{"v2 unix", v2(0x21, 0x31, make([]byte, 216)), Header{}, ErrMalformed},
		{"v2 too long", v2(0x21, 0x11, make([]byte, 5000)), Header{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const after = "<stream:stream>"
			r := bytes.NewReader(append(append([]byte{}, tc.in...), after...))
			got, err := Read(r)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Read = %+v, %v; want an error wrapping %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Read = %+v, %v; want %+v", got, err, tc.want)
			}
			// Not one byte past the header was read.
			if r.Len() != len(after) {
				t.Errorf("%d bytes left after the header, want %d", r.Len(), len(after))
			}
		})
	}
}

func TestReadTruncated(t *testing.T) {
	for _, in := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.7"),
		v2(0x21, 0x11, make([]byte, 12))[:20],
		v2(0x21, 0x11, nil)[:10],
		nil,
	} {
		if h, err := Read(bytes.NewReader(in)); err == nil {
			t.Errorf("Read(%q) = %+v, want an error", in, h)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 10.0.0.1 12345 5222\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 443 5223\r\n"))
	f.Add(v2(0x21, 0x11, []byte{192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0x14, 0x66}))
	f.Add(v2(0x20, 0, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		if err != nil {
			return
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		if used := len(in) - r.Len(); used > 16+v2MaxLen {
			t.Fatalf("read %d bytes", used)
		}
	})
}
