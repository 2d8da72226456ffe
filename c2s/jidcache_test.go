package c2s

import (
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestJIDCache(t *testing.T) {
	var c jidCache
	a, err := c.get([]byte("Juliet@Example.COM/balcony"))
	if err != nil {
		t.Fatal(err)
	}
	if a.str != "juliet@example.com/balcony" || string(a.attr) != " to='juliet@example.com/balcony'" {
		t.Fatalf("parsed %q, attr %q", a.str, a.attr)
	}
	if b, _ := c.get([]byte("Juliet@Example.COM/balcony")); b != a {
		t.Fatal("second lookup parsed again")
	}
	if b, _ := c.get([]byte("juliet@example.com/balcony")); b == a || b.str != a.str {
		t.Fatalf("other spelling: %p %q, want its own entry for %q", b, b.str, a.str)
	}
	if _, err := c.get([]byte("a@b/c@d@")); err != nil {
		t.Fatalf("a resource may hold @: %v", err)
	}
	for _, bad := range []string{"", "@example.com", "juliet@", "a b@example.com", "juliet@example.com/"} {
		if p, err := c.get([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %q", bad, p.str)
		}
	}
	for i := range c.shards {
		for k := range c.shards[i].m {
			if k == "" || k == "juliet@" {
				t.Errorf("a bad address was cached: %q", k)
			}
		}
	}

	// Long addresses are parsed, not kept.
	long := []byte("juliet@example.com/" + strings.Repeat("r", jidCacheMaxLen))
	if p, err := c.get(long); err != nil || p.str != string(long) {
		t.Fatalf("long address: %v", err)
	}
	for i := range c.shards {
		if _, ok := c.shards[i].m[string(long)]; ok {
			t.Fatal("a long address was cached")
		}
	}

	// Bounded: far more addresses than fit leave every shard within its limit.
	for i := range jidShards * jidShardEntries * 2 {
		if _, err := c.get(fmt.Appendf(nil, "u%d@example.com/r", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.shards {
		if n := len(c.shards[i].m); n > jidShardEntries {
			t.Fatalf("shard %d holds %d entries", i, n)
		}
	}
}

// TestAddrCacheShared checks that sessions share what one of them parsed,
// and that each still answers from its own last address.
func TestAddrCacheShared(t *testing.T) {
	var shared jidCache
	a := newAddrCache(jid.MustParse("romeo@example.com/r"), &shared)
	b := newAddrCache(jid.MustParse("benvolio@example.com/r"), &shared)
	if _, s, err := a.parseToBytes([]byte("Juliet@example.com")); err != nil || s != "juliet@example.com" {
		t.Fatalf("a: %q %v", s, err)
	}
	p := a.to
	if _, s, err := b.parseTo("Juliet@example.com"); err != nil || s != "juliet@example.com" || b.to != p {
		t.Fatalf("b: %q %v, shared entry %v", s, err, b.to == p)
	}
	if _, _, err := a.parseToBytes([]byte("nurse@example.com")); err != nil {
		t.Fatal(err)
	}
	if string(a.toAttr()) != " to='nurse@example.com'" || string(b.toAttr()) != " to='juliet@example.com'" {
		t.Fatalf("attrs %q %q", a.toAttr(), b.toAttr())
	}
	if _, _, err := a.parseToBytes([]byte("bad@")); err == nil {
		t.Fatal("bad@ parsed")
	}
	if string(a.toAttr()) != " to='nurse@example.com'" {
		t.Fatalf("a failed parse changed the last address: %q", a.toAttr())
	}
}
