package echoguard

import "testing"

func TestGuard(t *testing.T) {
	var g Guard
	if g.Active("a") {
		t.Fatal("zero Guard active")
	}
	end1 := g.Begin("a")
	end2 := g.Begin("a")
	if !g.Active("a") || g.Active("b") {
		t.Fatal("after two Begins: a must be active, b not")
	}
	end1()
	if !g.Active("a") {
		t.Fatal("one of two writes ended: a must still be active")
	}
	end2()
	if g.Active("a") || len(g.active) != 0 {
		t.Fatalf("both ended: active %v", g.active)
	}
}
