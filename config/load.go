package config

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads the TOML file at path over [Default], checks it as [Parse] does
// and returns it. An empty path means no file: Load returns the defaults.
func Load(path string) (Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return Config{}, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes the TOML document data over [Default] and validates the
// result with [Config.Validate]. name, usually the file's path, starts each
// error message. Keys data leaves out keep their defaults.
//
// A syntax error stops Parse at once. Otherwise it reports every unknown key,
// every value of the wrong type and every value Validate refuses, each an
// [*Error] with its key and line, in the order of the lines.
func Parse(data []byte, name string) (Config, error) {
	src := string(data)
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		return Config{}, syntaxError(name, err)
	}

	c := Default()
	var errs problems
	decodeTable(&errs, nil, raw, reflect.ValueOf(&c).Elem())
	errs = append(errs, c.check()...)
	if len(errs) == 0 {
		return c, nil
	}

	lines := keyLines(src)
	for _, e := range errs {
		e.File = name
		e.Line = lineOf(lines, e.path)
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		// Problems with no line go last.
		return cmp.Compare(uint(a.Line-1), uint(b.Line-1))
	})
	return Config{}, joinErrors(errs)
}

// syntaxError turns an error from the TOML parser into an *Error, joined
// like the others so that callers can treat all of Parse's errors alike.
func syntaxError(name string, err error) error {
	e := &Error{File: name, Msg: err.Error(), err: err}
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e.Line, e.Msg = pe.Position.Line, "TOML syntax: "+pe.Message
	}
	return joinErrors([]*Error{e})
}

// lineOf returns the line of path in lines, or of the nearest table that
// holds it, or 0.
func lineOf(lines map[string]int, path []string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := lines[toml.Key(path[:n]).String()]; ok {
			return l
		}
	}
	return 0
}

var (
	durationType      = reflect.TypeFor[Duration]()
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeTable sets the fields of the struct rv from the TOML table m found at
// path, and records every key it cannot use. Each field's key is its toml tag,
// matched exactly.
//
// The toml package can decode into Config itself and list the keys it did
// not use (MetaData.Undecoded), but it stops at the first value of a wrong
// type, which of several it meets first depends on map order, and that error
// is a plain string without the key's position. Decoding toml's generic map
// by hand reports every problem, each with its key.
func decodeTable(p *problems, path []string, m map[string]any, rv reflect.Value) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kpath := append(path[:len(path):len(path)], k)
		f, ok := fieldByKey(rv.Type(), k)
		if !ok {
			*p = append(*p, newKeyError(kpath, "unknown key%s", suggest(kpath)))
			continue
		}
		decodeValue(p, kpath, m[k], rv.FieldByIndex(f.Index))
	}
}

// decodeValue sets the field fv from the TOML value v found at path.
func decodeValue(p *problems, path []string, v any, fv reflect.Value) {
	bad := func(want string) {
		*p = append(*p, newKeyError(path, "want %s, got %s", want, describe(v)))
	}
	switch {
	case fv.Type() == durationType:
		s, ok := v.(string)
		if !ok {
			bad(`a duration in quotes such as "30s"`)
			return
		}
		if err := fv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			*p = append(*p, newKeyError(path, "%v", err))
		}
	case fv.Kind() == reflect.Struct:
		t, ok := v.(map[string]any)
		if !ok {
			bad("a table ([" + toml.Key(path).String() + "])")
			return
		}
		decodeTable(p, path, t, fv)
	case fv.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			bad("a string in quotes")
			return
		}
		fv.SetString(s)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		list, ok := v.([]any)
		if !ok {
			bad(`a list of strings such as ["10.0.0.0/8"]`)
			return
		}
		out := reflect.MakeSlice(fv.Type(), 0, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				*p = append(*p, newKeyError(path, "item %d: want a string in quotes, got %s", i+1, describe(e)))
				return
			}
			out = reflect.Append(out, reflect.ValueOf(s))
		}
		fv.Set(out)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
		decodeTables(p, path, v, fv)
	case fv.Kind() == reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			bad("true or false")
			return
		}
		fv.SetBool(b)
	case fv.CanInt():
		n, ok := v.(int64)
		if !ok {
			bad("an integer")
			return
		}
		if fv.OverflowInt(n) {
			*p = append(*p, newKeyError(path, "%d is too large", n))
			return
		}
		fv.SetInt(n)
	default:
		// A field of a type this function does not know: a bug in this
		// package, which TestSchemaTypes catches.
		*p = append(*p, newKeyError(path, "cannot decode into %s", fv.Type()))
	}
}

// decodeTables sets the slice of structs fv from an array of tables
// ([[a.b]] or a.b = [{…}]) found at path. A problem inside an item names
// the item's key and says which item it is ("item 2: …").
func decodeTables(p *problems, path []string, v any, fv reflect.Value) {
	var items []map[string]any
	switch list := v.(type) {
	case []map[string]any:
		items = list
	case []any:
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				*p = append(*p, newKeyError(path, "item %d: want a table, got %s", i+1, describe(e)))
				return
			}
			items = append(items, m)
		}
	default:
		*p = append(*p, newKeyError(path, "want tables ([[%s]]), got %s", toml.Key(path).String(), describe(v)))
		return
	}
	out := reflect.MakeSlice(fv.Type(), len(items), len(items))
	for i, m := range items {
		var ip problems
		decodeTable(&ip, path, m, out.Index(i))
		for _, e := range ip {
			e.Msg = fmt.Sprintf("item %d: %s", i+1, e.Msg)
		}
		*p = append(*p, ip...)
	}
	fv.Set(out)
}

// fieldByKey returns the field of the struct type t whose toml tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// describe names the type of a TOML value, with the value when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			return "a string"
		}
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case time.Time:
		return "a date or time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// schemaKeys returns every key of the schema, tables and values, as paths,
// in the order of the struct fields.
func schemaKeys(t reflect.Type, prefix []string) [][]string {
	var keys [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := append(prefix[:len(prefix):len(prefix)], name)
		keys = append(keys, path)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshalType) {
			keys = append(keys, schemaKeys(f.Type, path)...)
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(f.Type.Elem(), path)...)
		}
	}
	return keys
}

// suggest returns " (did you mean x?)" when a key of the schema is likely
// what the unknown key at path meant, or "".
func suggest(path []string) string {
	want := path[len(path)-1]
	var best []string
	bestDist := 3 // suggest nothing further than 2 edits away, or 1 for short keys
	if len(want) <= 4 {
		bestDist = 2
	}
	for _, k := range schemaKeys(reflect.TypeFor[Config](), nil) {
		last := k[len(k)-1]
		switch {
		case slices.Equal(k[:len(k)-1], path[:len(path)-1]):
			// A sibling: a typo, or a difference in case.
			d := editDistance(strings.ToLower(last), strings.ToLower(want))
			if strings.EqualFold(last, want) {
				d = 0
			}
			if d < bestDist {
				best, bestDist = k, d
			}
		case last == want && len(k) > 1 && bestDist > 1:
			// The right key in the wrong table, or outside any table.
			best, bestDist = k, 1
		}
	}
	if best == nil {
		return ""
	}
	return " (did you mean " + toml.Key(best).String() + "?)"
}

// editDistance returns the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // not worth it
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
