package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is one problem with a configuration: a syntax error, an unknown key,
// a value of the wrong type or a value [Config.Validate] refuses. [Load],
// [Parse] and Validate return every Error they find joined with errors.Join;
// use errors.As to get the first, or the Unwrap() []error method of the
// joined error to range over all of them.
//
// Printed, an Error reads "file:line: key: message", for example
//
//	config.toml:7: c2s.listen: invalid port "99999" (want 1-65535)
//
// "file:line: " becomes "file: " when the key is not in the file, and
// "config: " when there is no file (Validate on a Config built in code).
type Error struct {
	// File is the name given to Parse or the path given to Load; "" for
	// Validate.
	File string
	// Line is the 1-based line of Key in File or, when Key is not in the
	// file, of the nearest table that holds it; 0 when neither is there.
	Line int
	// Key is the dotted key, such as "c2s.listen"; "" for a syntax error.
	Key string
	// Msg says what is wrong and what would be accepted.
	Msg string

	path []string // Key split into its parts; for finding Line
	err  error    // the toml.ParseError behind a syntax error, or nil
}

// Error formats e as "file:line: key: message".
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("config: line " + strconv.Itoa(e.Line) + ": ")
	default:
		b.WriteString("config: ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the toml.ParseError behind a syntax error, so that
// errors.As can reach its Position and its longer usage text.
func (e *Error) Unwrap() error { return e.err }

// newKeyError returns an Error about the key made of path.
func newKeyError(path []string, format string, args ...any) *Error {
	return &Error{
		Key:  toml.Key(path).String(),
		Msg:  fmt.Sprintf(format, args...),
		path: path,
	}
}

// problems collects the errors one validation finds.
type problems []*Error

// add records a problem with the dotted key, which must be made of bare parts.
func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, newKeyError(strings.Split(key, "."), format, args...))
}
