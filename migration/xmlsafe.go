package migration

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// XMLLimits bound what a [SafeDecoder] accepts of an export file.
type XMLLimits struct {
	// Depth is the deepest nesting of elements.
	Depth int
	// Text is the most bytes of one run of character data.
	Text int
	// Element is the most bytes of one element at RecordDepth (a user,
	// with everything it holds).
	Element int
	// RecordDepth is the depth of the elements Element bounds (1 is the
	// document's root).
	RecordDepth int
}

// DefaultXMLLimits suit export files: a user may hold a large roster, a
// vCard with a photo and many offline messages, but not gigabytes.
var DefaultXMLLimits = XMLLimits{Depth: 64, Text: 8 << 20, Element: 64 << 20, RecordDepth: 3}

// ErrUnsafeXML is wrapped by the errors of a [SafeDecoder] about a file it
// refuses: a DOCTYPE (entities), or a limit passed.
var ErrUnsafeXML = errors.New("migration: refused XML")

// SafeDecoder reads an export file token by token, refusing what could
// make a reader expand entities or hold unbounded input: any DOCTYPE or
// other directive, undefined entities (encoding/xml's strict mode), depth,
// text and record sizes past its limits. Its errors name the line and
// column.
type SafeDecoder struct {
	d      *xml.Decoder
	b      *tokenBound
	lim    XMLLimits
	name   string // the file's name, for errors
	depth  int
	start  int64 // offset where the current record began; -1 outside one
	parsed bool
}

// NewSafeDecoder reads r (named name in errors) within lim; a zero field
// of lim takes DefaultXMLLimits' value.
func NewSafeDecoder(r io.Reader, name string, lim XMLLimits) *SafeDecoder {
	def := DefaultXMLLimits
	if lim.Depth <= 0 {
		lim.Depth = def.Depth
	}
	if lim.Text <= 0 {
		lim.Text = def.Text
	}
	if lim.Element <= 0 {
		lim.Element = def.Element
	}
	if lim.RecordDepth <= 0 {
		lim.RecordDepth = def.RecordDepth
	}
	b := &tokenBound{r: r, max: int64(lim.Text) + 2*readAhead}
	d := xml.NewDecoder(bufio.NewReaderSize(b, readAhead))
	d.Strict = true
	// Entities stays nil: only the five predefined ones and character
	// references are known, and any other is an error.
	return &SafeDecoder{d: d, b: b, lim: lim, name: name, start: -1}
}

// readAhead is the decoder's buffer.
const readAhead = 64 << 10

// tokenBound fails a read when more than max bytes were read since the
// last token: encoding/xml holds a whole token (an attribute value, a
// comment, a text) in memory before returning it, so a 1 GiB attribute
// would be read whole before any check after the token could refuse it.
type tokenBound struct {
	r   io.Reader
	n   int64 // read since the last token
	max int64
}

var errTokenTooBig = errors.New("a token (text, attribute, comment) too large")

func (b *tokenBound) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, errTokenTooBig
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// Errorf returns an error about the file at the decoder's position.
func (s *SafeDecoder) Errorf(format string, args ...any) error {
	line, col := s.d.InputPos()
	return fmt.Errorf("%s:%d:%d: %s", s.name, line, col, fmt.Sprintf(format, args...))
}

// Token returns the next token, as xml.Decoder.RawToken would but with
// namespaces resolved (xml.Decoder.Token). At the end of the document it
// returns io.EOF; a document cut short is an error naming where.
func (s *SafeDecoder) Token() (xml.Token, error) {
	tok, err := s.d.Token()
	s.b.n = 0
	if err != nil {
		if errors.Is(err, errTokenTooBig) {
			return nil, fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("%v: more than %d bytes", err, s.lim.Text))
		}
		if err == io.EOF {
			if s.depth > 0 || !s.parsed {
				return nil, s.Errorf("the file ends before the document does (truncated?); nothing was imported")
			}
			return nil, io.EOF
		}
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			if se.Msg == "unexpected EOF" {
				return nil, fmt.Errorf("%s:%d: the file ends in the middle of the document (truncated?); nothing was imported", s.name, se.Line)
			}
			return nil, fmt.Errorf("%s:%d: %s", s.name, se.Line, se.Msg)
		}
		return nil, s.Errorf("%v", err)
	}
	switch t := tok.(type) {
	case xml.Directive:
		return nil, fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("a DOCTYPE or other directive (<!%.20s…>) is not accepted: export files have none, and entities are a way to attack the reader", t))
	case xml.StartElement:
		s.depth++
		if s.depth > s.lim.Depth {
			return nil, fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("elements nested more than %d deep", s.lim.Depth))
		}
		if s.depth == s.lim.RecordDepth {
			s.start = s.d.InputOffset()
		}
	case xml.EndElement:
		if s.depth == s.lim.RecordDepth {
			s.start = -1
		}
		s.depth--
		if s.depth == 0 {
			s.parsed = true
		}
	case xml.CharData:
		if len(t) > s.lim.Text {
			return nil, fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("a text of %d bytes, more than the %d allowed", len(t), s.lim.Text))
		}
	}
	if s.start >= 0 && s.d.InputOffset()-s.start > int64(s.lim.Element) {
		return nil, fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("an element of more than %d bytes", s.lim.Element))
	}
	return tok, nil
}

// Text reads the character data of the element just started, up to its
// end, and refuses child elements.
func (s *SafeDecoder) Text() (string, error) {
	var b []byte
	for {
		tok, err := s.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
			if len(b) > s.lim.Text {
				return "", fmt.Errorf("%w: %s", ErrUnsafeXML, s.Errorf("a text of more than %d bytes", s.lim.Text))
			}
		case xml.StartElement:
			return "", s.Errorf("unexpected element <%s> in a text-only element", t.Name.Local)
		case xml.EndElement:
			return string(b), nil
		}
	}
}

// Skip skips the rest of the element just started.
func (s *SafeDecoder) Skip() error {
	for depth := 1; depth > 0; {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// Raw serialises the element just started (start), with everything in
// it, each element declaring its namespace where it differs from its
// parent's (the root declares its own).
func (s *SafeDecoder) Raw(start xml.StartElement) ([]byte, error) {
	var b rawWriter
	b.start(start, "")
	spaces := []string{start.Name.Space}
	for len(spaces) > 0 {
		tok, err := s.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			b.start(t, spaces[len(spaces)-1])
			spaces = append(spaces, t.Name.Space)
		case xml.EndElement:
			b.end(t)
			spaces = spaces[:len(spaces)-1]
		case xml.CharData:
			b.text(t)
		}
	}
	return b.buf, nil
}

// rawWriter serialises tokens with namespaces as xmlns attributes and no
// prefixes (attributes in other namespaces than the element's keep no
// prefix either; export files use none that matter).
type rawWriter struct{ buf []byte }

func (w *rawWriter) start(t xml.StartElement, parent string) {
	w.buf = append(w.buf, '<')
	w.buf = append(w.buf, t.Name.Local...)
	if t.Name.Space != parent {
		w.attr("xmlns", t.Name.Space)
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		name := a.Name.Local
		if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			name = "xml:" + name
		}
		w.attr(name, a.Value)
	}
	w.buf = append(w.buf, '>')
}

func (w *rawWriter) attr(name, value string) {
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, "='"...)
	w.buf = appendEscaped(w.buf, value)
	w.buf = append(w.buf, '\'')
}

func (w *rawWriter) end(t xml.EndElement) {
	w.buf = append(w.buf, "</"...)
	w.buf = append(w.buf, t.Name.Local...)
	w.buf = append(w.buf, '>')
}

func (w *rawWriter) text(t []byte) { w.buf = appendEscaped(w.buf, string(t)) }

// appendEscaped appends s escaped for text and for attribute values in
// either quote.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\r':
			b = append(b, "&#xD;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendEscaped appends s escaped for XML text or attribute values.
func AppendEscaped(b []byte, s string) []byte { return appendEscaped(b, s) }

// ChildTexts reads the rest of the current element (its start tag read)
// up to its end, returning the text of each child named local (other
// children are skipped), as roster items list their groups.
func (s *SafeDecoder) ChildTexts(local string) ([]string, error) {
	var out []string
	for {
		tok, err := s.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return out, nil
		case xml.StartElement:
			if t.Name.Local != local {
				if err := s.Skip(); err != nil {
					return nil, err
				}
				continue
			}
			text, err := s.Text()
			if err != nil {
				return nil, err
			}
			out = append(out, text)
		}
	}
}
