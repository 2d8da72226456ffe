package openfire

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Openfire's embedded database is HSQLDB, whose state (after a checkpoint,
// which Openfire's shutdown makes) is the text file embedded-db/openfire.script:
// one SQL statement a line, e.g.
//
//	CREATE MEMORY TABLE PUBLIC.OFUSER(USERNAME VARCHAR(64) NOT NULL,...,CONSTRAINT OFUSER_PK PRIMARY KEY(USERNAME))
//	INSERT INTO OFUSER VALUES('admin',NULL,'1a2b…','Administrator',…)
//
// Strings are quoted with '' for a quote; characters outside 0x20–0x7f are
// written \uXXXX (one escape per UTF-16 unit), and a backslash that would
// read as such an escape is itself written \u005c. Only CREATE TABLE and
// INSERT matter here; every other statement is skipped.

// maxScriptLine bounds one statement (a row with a large vCard or offline
// message); HSQLDB writes no longer lines for Openfire's column sizes.
const maxScriptLine = 64 << 20

// scriptSource is an openfire.script file read into memory.
type scriptSource struct {
	tables map[string]*scriptTable
}

type scriptTable struct {
	cols []string // lower-cased, in order
	rows [][]*string
	// cached: a CACHED or TEXT table, whose rows are not in the script
	// (Openfire's tables are MEMORY tables, HSQLDB's default).
	cached bool
}

func readScript(path string) (*scriptSource, error) {
	// HSQLDB logs changes since the last checkpoint in openfire.log and
	// folds them into the script at SHUTDOWN, which Openfire's stop makes.
	logPath := strings.TrimSuffix(path, ".script") + ".log"
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > 0 && logPath != path {
		return nil, fmt.Errorf("openfire: %s is not empty: Openfire is running or did not stop cleanly, and changes since its last checkpoint are missing from the script; stop Openfire (or start and stop it once) and import again", logPath)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("openfire: hsqldb script: %w", err)
	}
	defer f.Close()
	s, err := parseScript(f)
	if err != nil {
		return nil, fmt.Errorf("openfire: hsqldb script %s: %w", path, err)
	}
	return s, nil
}

// parseScript parses a script; errors name the line.
func parseScript(r io.Reader) (*scriptSource, error) {
	s := &scriptSource{tables: map[string]*scriptTable{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxScriptLine)
	line := 0
	for sc.Scan() {
		line++
		if err := s.statement(strings.TrimRight(sc.Text(), "\r")); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after line %d: %w", line, err)
	}
	return s, nil
}

func (s *scriptSource) statement(st string) error {
	p := &lexer{s: st}
	kw := p.word()
	switch kw {
	case "CREATE":
		// CREATE [MEMORY|CACHED|TEXT|TEMP] TABLE name(...)
		w, cached := p.word(), false
		for w == "MEMORY" || w == "CACHED" || w == "TEXT" || w == "GLOBAL" || w == "TEMPORARY" || w == "TEMP" {
			cached = cached || w == "CACHED" || w == "TEXT"
			w = p.word()
		}
		if w != "TABLE" {
			return nil // CREATE USER, SCHEMA, INDEX, SEQUENCE…
		}
		name, err := p.name()
		if err != nil {
			return err
		}
		if s.tables[name] != nil {
			return fmt.Errorf("table %s created twice", name)
		}
		cols, err := p.columns()
		if err != nil {
			return fmt.Errorf("CREATE TABLE %s: %w", name, err)
		}
		s.tables[name] = &scriptTable{cols: cols, cached: cached}
		return nil
	case "INSERT":
		if p.word() != "INTO" {
			return fmt.Errorf("INSERT without INTO")
		}
		name, err := p.name()
		if err != nil {
			return err
		}
		t := s.tables[name]
		if t == nil {
			return fmt.Errorf("INSERT INTO %s before its CREATE TABLE", name)
		}
		// An optional column list maps values to columns.
		idx := make([]int, len(t.cols))
		for i := range idx {
			idx[i] = i
		}
		p.space()
		if p.peek() == '(' {
			names, err := p.nameList()
			if err != nil {
				return fmt.Errorf("INSERT INTO %s: %w", name, err)
			}
			idx = idx[:0]
			for _, n := range names {
				j := indexOf(t.cols, n)
				if j < 0 {
					return fmt.Errorf("INSERT INTO %s: no column %s", name, n)
				}
				idx = append(idx, j)
			}
		}
		if p.word() != "VALUES" {
			return fmt.Errorf("INSERT INTO %s: want VALUES", name)
		}
		for {
			vals, err := p.values()
			if err != nil {
				return fmt.Errorf("INSERT INTO %s: %w", name, err)
			}
			if len(vals) != len(idx) {
				return fmt.Errorf("INSERT INTO %s: %d values for %d columns", name, len(vals), len(idx))
			}
			row := make([]*string, len(t.cols))
			for i, v := range vals {
				row[idx[i]] = v
			}
			t.rows = append(t.rows, row)
			p.space()
			if p.peek() != ',' {
				break
			}
			p.i++
		}
		p.space()
		if p.peek() == ';' {
			p.i++
			p.space()
		}
		if p.i != len(p.s) {
			return fmt.Errorf("INSERT INTO %s: unexpected %q after the values", name, clip(p.s[p.i:]))
		}
		return nil
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func clip(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// lexer walks one statement.
type lexer struct {
	s string
	i int
}

func (p *lexer) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *lexer) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// word returns the next bare word, upper-cased; "" if none.
func (p *lexer) word() string {
	p.space()
	j := p.i
	for p.i < len(p.s) && isWordByte(p.s[p.i]) {
		p.i++
	}
	return strings.ToUpper(p.s[j:p.i])
}

// ident returns one identifier, bare or "quoted", lower-cased.
func (p *lexer) ident() (string, error) {
	p.space()
	if p.peek() == '"' {
		p.i++
		var b strings.Builder
		for {
			if p.i >= len(p.s) {
				return "", fmt.Errorf("unterminated quoted name")
			}
			c := p.s[p.i]
			p.i++
			if c == '"' {
				if p.peek() == '"' {
					p.i++
					b.WriteByte('"')
					continue
				}
				return strings.ToLower(b.String()), nil
			}
			b.WriteByte(c)
		}
	}
	w := p.word()
	if w == "" {
		return "", fmt.Errorf("want a name at column %d", p.i+1)
	}
	return strings.ToLower(w), nil
}

// name reads a possibly schema-qualified table name and returns its last part.
func (p *lexer) name() (string, error) {
	n, err := p.ident()
	if err != nil {
		return "", err
	}
	for p.peek() == '.' {
		p.i++
		if n, err = p.ident(); err != nil {
			return "", err
		}
	}
	return n, nil
}

// nameList reads (a, b, c).
func (p *lexer) nameList() ([]string, error) {
	p.i++ // (
	var out []string
	for {
		n, err := p.ident()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case ')':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("want , or ) at column %d", p.i+1)
		}
	}
}

// columns reads a CREATE TABLE's parenthesised definitions and returns the
// column names, skipping constraints.
func (p *lexer) columns() ([]string, error) {
	p.space()
	if p.peek() != '(' {
		return nil, fmt.Errorf("want ( at column %d", p.i+1)
	}
	p.i++
	var cols []string
	for {
		// One definition: up to the next top-level comma or the closing ).
		start := p.i
		depth := 0
		for {
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unterminated column list")
			}
			c := p.s[p.i]
			if c == '\'' || c == '"' {
				if _, err := p.skipQuoted(c); err != nil {
					return nil, err
				}
				continue
			}
			if c == '(' {
				depth++
			} else if c == ')' {
				if depth == 0 {
					break
				}
				depth--
			} else if c == ',' && depth == 0 {
				break
			}
			p.i++
		}
		def := &lexer{s: p.s[start:p.i]}
		first := def.word()
		switch first {
		case "CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK":
		default:
			def.i = 0
			n, err := def.ident()
			if err != nil {
				return nil, fmt.Errorf("column definition %q: %w", clip(def.s), err)
			}
			cols = append(cols, n)
		}
		if p.s[p.i] == ')' {
			p.i++
			if len(cols) == 0 {
				return nil, fmt.Errorf("no columns")
			}
			return cols, nil
		}
		p.i++
	}
}

func (p *lexer) skipQuoted(q byte) (int, error) {
	start := p.i
	p.i++
	for {
		if p.i >= len(p.s) {
			return 0, fmt.Errorf("unterminated quoted text from column %d", start+1)
		}
		if p.s[p.i] == q {
			if p.i+1 < len(p.s) && p.s[p.i+1] == q {
				p.i += 2
				continue
			}
			p.i++
			return start, nil
		}
		p.i++
	}
}

// values reads one parenthesised row of literals.
func (p *lexer) values() ([]*string, error) {
	p.space()
	if p.peek() != '(' {
		return nil, fmt.Errorf("want ( at column %d", p.i+1)
	}
	p.i++
	var out []*string
	for {
		p.space()
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case ')':
			p.i++
			return out, nil
		case 0:
			return nil, fmt.Errorf("row ends without ) (truncated?)")
		default:
			return nil, fmt.Errorf("want , or ) at column %d", p.i+1)
		}
	}
}

// literal reads a string, number, NULL, TRUE/FALSE or X'hex' literal.
func (p *lexer) literal() (*string, error) {
	c := p.peek()
	switch {
	case c == '\'':
		return p.str()
	case c == 'X' || c == 'x':
		if p.i+1 < len(p.s) && p.s[p.i+1] == '\'' {
			p.i++
			return p.str()
		}
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		j := p.i
		p.i++
		for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.' || p.s[p.i] == 'E' || p.s[p.i] == 'e' ||
			(p.s[p.i] == '-' || p.s[p.i] == '+') && (p.s[p.i-1] == 'E' || p.s[p.i-1] == 'e')) {
			p.i++
		}
		v := p.s[j:p.i]
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return nil, fmt.Errorf("bad number %q at column %d", clip(v), j+1)
		}
		return &v, nil
	case c == 0:
		return nil, fmt.Errorf("row ends early (truncated?)")
	}
	j := p.i
	switch w := p.word(); w {
	case "NULL":
		return nil, nil
	case "TRUE", "FALSE":
		v := strings.ToLower(w)
		return &v, nil
	}
	return nil, fmt.Errorf("unexpected %q at column %d", clip(p.s[j:]), j+1)
}

// str reads a quoted string, undoing doubled quotes and \uXXXX escapes.
func (p *lexer) str() (*string, error) {
	start := p.i
	p.i++
	var units []uint16
	for {
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("unterminated string from column %d (truncated?)", start+1)
		}
		c := p.s[p.i]
		switch {
		case c == '\'':
			if p.i+1 < len(p.s) && p.s[p.i+1] == '\'' {
				units = append(units, '\'')
				p.i += 2
				continue
			}
			p.i++
			v := string(utf16.Decode(units))
			return &v, nil
		case c == '\\' && p.i+5 < len(p.s) && p.s[p.i+1] == 'u':
			n, err := strconv.ParseUint(p.s[p.i+2:p.i+6], 16, 16)
			if err != nil {
				return nil, fmt.Errorf("bad \\u escape at column %d", p.i+1)
			}
			units = append(units, uint16(n))
			p.i += 6
		case c < 0x80:
			units = append(units, uint16(c))
			p.i++
		default:
			// Not HSQLDB's own output, but a UTF-8 file is read as such.
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			units = append(units, utf16.Encode([]rune{r})...)
			p.i += n
		}
	}
}

func (s *scriptSource) schema(context.Context) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for n, t := range s.tables {
		out[n] = map[string]bool{}
		for _, c := range t.cols {
			out[n][c] = true
		}
	}
	return out, nil
}

func (s *scriptSource) scan(ctx context.Context, table string, cols []string, fn func(vals []*string) error) error {
	t := s.tables[table]
	if t == nil {
		return fmt.Errorf("openfire: no table %s", table)
	}
	if t.cached {
		return fmt.Errorf("openfire: table %s is an HSQLDB CACHED table: its rows are in openfire.data, not in the script, and cannot be read here", table)
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i] = indexOf(t.cols, c); idx[i] < 0 {
			return fmt.Errorf("openfire: table %s has no column %s", table, c)
		}
	}
	vals := make([]*string, len(cols))
	for _, row := range t.rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, j := range idx {
			vals[i] = row[j]
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return nil
}

func (s *scriptSource) close() error { return nil }
