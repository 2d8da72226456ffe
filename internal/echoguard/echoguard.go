// Package echoguard keeps a feature that copies its data into another
// service (vCards and bookmarks into PEP) from taking the changes its own
// writes cause there for changes it must copy back.
package echoguard

import "sync"

// Guard counts, per key (an account's bare JID), the writes in progress.
// The zero value is ready to use.
type Guard struct {
	mu     sync.Mutex
	active map[string]int // guarded by mu
}

// Begin marks a write for key as in progress until the returned function
// is called. Writes for one key may overlap.
func (g *Guard) Begin(key string) (end func()) {
	g.mu.Lock()
	if g.active == nil {
		g.active = map[string]int{}
	}
	g.active[key]++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		if g.active[key]--; g.active[key] <= 0 {
			delete(g.active, key)
		}
		g.mu.Unlock()
	}
}

// Active reports whether a write for key is in progress.
func (g *Guard) Active(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active[key] > 0
}
