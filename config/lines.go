package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyLines returns the line on which each key of the TOML document src
// first appears, keyed by toml.Key.String(). The toml package keeps key
// positions to itself, so this scans src again, knowing just enough TOML to
// find keys: table headers ([a.b] and [[a.b]]), dotted and quoted keys,
// inline tables (also across lines, as TOML 1.1 allows), and the strings,
// arrays and comments in which text that looks like a key is not one.
//
// A key's tables count as appearing with it: [a.b] is the first appearance
// of a as well as of a.b unless a appeared before, and so is a.b = 1. The
// keys of inline tables in an array count as keys of the array, as the toml
// package names them: a = [{b = 1}] holds a.b.
//
// Parse calls it only on documents the toml package accepted. On any other
// input the result may be incomplete, but keyLines still returns.
func keyLines(src string) map[string]int {
	// Skip a byte order mark, as the toml package does.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if strings.HasPrefix(src, bom) {
			src = src[len(bom):]
			break
		}
	}
	s := &lineScanner{src: src, line: 1, lines: make(map[string]int)}
	s.document()
	return s.lines
}

// lineScanner is the state of one keyLines call.
type lineScanner struct {
	src   string
	i     int // offset of the next byte in src
	line  int // line of src[i], from 1
	lines map[string]int
}

func (s *lineScanner) eof() bool { return s.i >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *lineScanner) at(prefix string) bool { return strings.HasPrefix(s.src[s.i:], prefix) }

// adv moves past one byte, counting lines.
func (s *lineScanner) adv() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

// record notes line for path and for each of its tables not yet seen.
func (s *lineScanner) record(path []string, line int) {
	for n := 1; n <= len(path); n++ {
		k := toml.Key(path[:n]).String()
		if _, ok := s.lines[k]; !ok {
			s.lines[k] = line
		}
	}
}

// document scans the top level: table headers and key = value lines.
func (s *lineScanner) document() {
	var table []string
	for !s.eof() {
		start := s.i
		s.skipBlank(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek() == '[' {
			s.adv()
			if s.peek() == '[' {
				s.adv()
			}
			table = s.key()
			s.record(table, line)
		} else if k := s.key(); len(k) > 0 {
			full := concat(table, k)
			s.record(full, line)
			s.skipBlank(false)
			if s.peek() == '=' {
				s.adv()
				s.value(full, true)
			}
		}
		s.skipLine()
		if s.i == start {
			s.adv()
		}
	}
}

// skipBlank skips spaces, tabs, carriage returns and comments, and newlines
// too when newlines is set.
func (s *lineScanner) skipBlank(newlines bool) {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r':
			s.adv()
		case '\n':
			if !newlines {
				return
			}
			s.adv()
		case '#':
			for !s.eof() && s.peek() != '\n' {
				s.adv()
			}
		default:
			return
		}
	}
}

// skipLine skips to the start of the next line.
func (s *lineScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.adv()
	}
	s.adv()
}

// key scans a key, dotted or not, and returns its parts; nil if there is none.
func (s *lineScanner) key() []string {
	var path []string
	for {
		s.skipBlank(false)
		part, ok := s.keyPart()
		if !ok {
			return path
		}
		path = append(path, part)
		s.skipBlank(false)
		if s.peek() != '.' {
			return path
		}
		s.adv()
	}
}

// keyPart scans one bare, "basic" or 'literal' part of a key.
func (s *lineScanner) keyPart() (string, bool) {
	switch c := s.peek(); {
	case c == '"':
		start := s.i
		s.adv()
		for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
			if s.peek() == '\\' {
				s.adv()
			}
			s.adv()
		}
		if s.peek() != '"' {
			return "", false
		}
		s.adv()
		return unescape(s.src[start+1 : s.i-1]), true
	case c == '\'':
		s.adv()
		start := s.i
		for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
			s.adv()
		}
		part := s.src[start:s.i]
		if s.peek() == '\'' {
			s.adv()
		}
		return part, true
	case bareKeyByte(c):
		start := s.i
		for bareKeyByte(s.peek()) {
			s.adv()
		}
		return s.src[start:s.i], true
	}
	return "", false
}

func bareKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// value scans the value of the key at path, recording the keys of inline
// tables when rec is set.
func (s *lineScanner) value(path []string, rec bool) {
	s.skipBlank(false)
	switch {
	case s.at(`"""`):
		s.multiline(`"""`, true)
	case s.at(`'''`):
		s.multiline(`'''`, false)
	case s.peek() == '"':
		s.adv()
		for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
			if s.peek() == '\\' {
				s.adv()
			}
			s.adv()
		}
		if s.peek() == '"' {
			s.adv()
		}
	case s.peek() == '\'':
		s.adv()
		for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
			s.adv()
		}
		if s.peek() == '\'' {
			s.adv()
		}
	case s.peek() == '{':
		s.inlineTable(path, rec)
	case s.peek() == '[':
		s.array(path, rec)
	default: // number, boolean, date or time
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.adv()
		}
	}
}

// multiline scans a multi-line string that starts and ends with delim.
func (s *lineScanner) multiline(delim string, escapes bool) {
	s.i += len(delim)
	for !s.eof() {
		switch {
		case escapes && s.peek() == '\\':
			s.adv()
			s.adv()
		case s.at(delim):
			s.i += len(delim)
			// Up to two more quotes belong to the string: """a"""" is `a"`.
			for n := 0; n < 2 && s.peek() == delim[0]; n++ {
				s.adv()
			}
			return
		default:
			s.adv()
		}
	}
}

// inlineTable scans { k = v, ... } holding the keys of path.
func (s *lineScanner) inlineTable(path []string, rec bool) {
	s.adv() // {
	for !s.eof() {
		s.skipBlank(true)
		switch s.peek() {
		case '}':
			s.adv()
			return
		case ',':
			s.adv()
			continue
		}
		start, line := s.i, s.line
		if k := s.key(); len(k) > 0 {
			full := concat(path, k)
			if rec {
				s.record(full, line)
			}
			s.skipBlank(false)
			if s.peek() == '=' {
				s.adv()
				s.value(full, rec)
			}
		}
		if s.i == start {
			s.adv()
		}
	}
}

// array scans [ v, ... ], the value of the key at path.
func (s *lineScanner) array(path []string, rec bool) {
	s.adv() // [
	for !s.eof() {
		s.skipBlank(true)
		switch s.peek() {
		case ']':
			s.adv()
			return
		case ',':
			s.adv()
			continue
		}
		start := s.i
		s.value(path, rec)
		if s.i == start {
			s.adv()
		}
	}
}

// concat returns a new slice holding a then b.
func concat(a, b []string) []string {
	return append(a[:len(a):len(a)], b...)
}

// unescape returns the content of a TOML basic string with its escapes
// replaced. It leaves an escape it does not know as it is.
func unescape(q string) string {
	if !strings.Contains(q, "\\") {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] != '\\' || i+1 == len(q) {
			b.WriteByte(q[i])
			continue
		}
		i++
		if c := simpleEscape(q[i]); c != 0 {
			b.WriteByte(c)
			continue
		}
		n := 0 // hex digits after \x, \u or \U
		switch q[i] {
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		}
		if n > 0 && i+n < len(q) {
			if r, err := strconv.ParseUint(q[i+1:i+1+n], 16, 32); err == nil {
				b.WriteRune(rune(r))
				i += n
				continue
			}
		}
		b.WriteByte('\\')
		b.WriteByte(q[i])
	}
	return b.String()
}

// simpleEscape returns the byte the escape \c stands for, or 0.
func simpleEscape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 't':
		return '\t'
	case 'n':
		return '\n'
	case 'f':
		return '\f'
	case 'r':
		return '\r'
	case 'e':
		return 0x1b
	case '"', '\\':
		return c
	}
	return 0
}
