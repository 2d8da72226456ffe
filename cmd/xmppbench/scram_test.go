package main

import (
	"encoding/base64"
	"testing"
)

// The example exchange of RFC 5802 §5.
func TestSCRAMRFC5802(t *testing.T) {
	cache := newSCRAMCache()
	c := newSCRAMClient(scramMechs["SCRAM-SHA-1"], "user", "pencil", cache)
	c.nonce = "fyko+d2lbbFgONRv9qkxdawL"
	if got, want := c.first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"; got != want {
		t.Fatalf("first = %q, want %q", got, want)
	}
	final, err := c.final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
	if err != nil {
		t.Fatal(err)
	}
	if want := "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="; final != want {
		t.Fatalf("final = %q, want %q", final, want)
	}
	if err := c.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := c.verify("v=" + base64.StdEncoding.EncodeToString(make([]byte, 20))); err == nil {
		t.Error("a wrong server signature passed")
	}
	// The same salt again comes from the cache.
	c2 := newSCRAMClient(scramMechs["SCRAM-SHA-1"], "user", "pencil", cache)
	c2.first()
	if _, err := c2.final("r=" + c2.nonce + "xyz,s=QSXCR+Q6sek8bf92,i=4096"); err != nil {
		t.Fatal(err)
	}
	if n := cache.derived.Load(); n != 1 {
		t.Errorf("PBKDF2 ran %d times for one salt, want 1", n)
	}
}

func TestSCRAMRefusals(t *testing.T) {
	c := newSCRAMClient(scramMechs["SCRAM-SHA-256"], "u,=", "pw", nil)
	if got := c.first(); got != "n,,n=u=2C=3D,r="+c.nonce {
		t.Errorf("username not escaped: %q", got)
	}
	for name, sf := range map[string]string{
		"foreign nonce":   "r=abc,s=QSXCR+Q6sek8bf92,i=4096",
		"same nonce":      "r=" + c.nonce + ",s=QSXCR+Q6sek8bf92,i=4096",
		"no salt":         "r=" + c.nonce + "x,i=4096",
		"bad count":       "r=" + c.nonce + "x,s=QSXCR+Q6sek8bf92,i=0",
		"extension":       "m=ext,r=" + c.nonce + "x,s=QSXCR+Q6sek8bf92,i=4096",
		"malformed field": "r=" + c.nonce + "x,garbage",
	} {
		if _, err := c.final(sf); err == nil {
			t.Errorf("%s: accepted %q", name, sf)
		}
	}
}
