package c2s

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestConnLimits(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newConnLimits(Limits{MaxConnectionsPerAddress: 3, ConnectionRate: 2, ConnectionBurst: 4}, clock.Now)
	const a, b = "192.0.2.1", "192.0.2.2"
	for i := range 3 {
		if err := l.admit(a); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	if err := l.admit(a); err == nil {
		t.Fatal("a fourth connection open at once was admitted")
	}
	l.release(a)
	if err := l.admit(a); err != nil { // the fourth token of the burst
		t.Fatalf("after one closed: %v", err)
	}
	l.release(a)
	if err := l.admit(a); err == nil {
		t.Fatal("a fifth new connection within the burst was admitted")
	}
	clock.Advance(500 * time.Millisecond) // one token at 2 a second
	if err := l.admit(a); err != nil {
		t.Fatalf("after half a second: %v", err)
	}
	if err := l.admit(b); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// An address with nothing open and a full bucket is forgotten.
	for range 3 {
		l.release(a)
	}
	l.release(b)
	clock.Advance(2 * time.Second)
	l.admit(b)
	l.release(b)
	l.mu.Lock()
	n := len(l.addrs)
	l.mu.Unlock()
	if n != 2 { // released with buckets not yet full: kept until swept
		t.Errorf("%d addresses remembered, want 2", n)
	}
	// The sweep, when the table is large, drops every such address.
	for i := range connLimitSweepAt - 2 { // with a and b: the sweep size
		k := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		l.admit(k)
		l.release(k)
	}
	clock.Advance(10 * time.Second)
	l.admit(b)
	l.mu.Lock()
	n = len(l.addrs)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("after the sweep %d addresses remembered, want 1 (b, open)", n)
	}
	// Many busy addresses: the table may outgrow the sweep size, and the
	// next sweep waits until it has doubled.
	for i := range 3 * connLimitSweepAt {
		l.admit(fmt.Sprintf("172.16.%d.%d", i>>8, i&255))
	}
	l.mu.Lock()
	n, next := len(l.addrs), l.sweepAt
	l.mu.Unlock()
	if n != 3*connLimitSweepAt+1 || next <= n {
		t.Errorf("%d addresses with a connection open, next sweep at %d", n, next)
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":         "192.0.2.7",
		"::ffff:192.0.2.7":  "192.0.2.7",
		"2001:db8:1:2:3::4": "2001:db8:1:2::/64",
		"fe80::1%eth0":      "fe80::/64",
	} {
		if got := addrKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("addrKey(%s) = %s, want %s", in, got, want)
		}
	}
}
