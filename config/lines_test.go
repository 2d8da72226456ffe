package config

import (
	"maps"
	"testing"
)

func TestKeyLines(t *testing.T) {
	src := `# [commented] = 1
top = 1
[a]  # a table
b = "x # not a comment"
c.d = 'e'
"quoted key" = """
[not]
a = table
"""
arr = [
  { inarray = 1 },
  "[not.a.table]",
]

[a.sub]
f = { g = 1,
  h.i = { j = 2 } }   # TOML 1.1 allows newlines here

[[aot]]
k = 1
[[aot]]
k = 2
l = 1979-05-27 07:32:00Z
`
	want := map[string]int{
		"top":            2,
		"a":              3,
		"a.b":            4,
		"a.c":            5,
		"a.c.d":          5,
		`a."quoted key"`: 6,
		"a.arr":          10,
		"a.arr.inarray":  11,
		"a.sub":          15,
		"a.sub.f":        16,
		"a.sub.f.g":      16,
		"a.sub.f.h":      17,
		"a.sub.f.h.i":    17,
		"a.sub.f.h.i.j":  17,
		"aot":            19,
		"aot.k":          20,
		"aot.l":          23,
	}
	if got := keyLines(src); !maps.Equal(got, want) {
		t.Errorf("keyLines() =\n %v\nwant\n %v", got, want)
	}
}
