package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// errStreamClosed is returned by splitter.next when the server closed its
// stream (</stream:stream>).
var errStreamClosed = errors.New("xmppbench: server closed the stream")

// maxElement bounds one top-level element (a roster or a features list is a
// few kilobytes; a benchmark message a few hundred bytes).
const maxElement = 1 << 20

// splitter cuts an XMPP stream into its top-level elements (the children of
// <stream:stream>) without parsing them: it tracks only tags, quotes and the
// nesting depth, which is all a load generator needs to find its own
// messages and the few negotiation answers it waits for. It does not
// understand comments or CDATA sections, which servers do not send.
//
// A splitter belongs to one goroutine at a time.
type splitter struct {
	r   io.Reader
	buf []byte
	end int // buf[:end] holds data read so far

	pos       int  // next byte to scan
	depth     int  // 0 before the stream header, 1 inside the stream
	inTag     bool // pos is inside a tag that starts at tagStart
	quote     byte // inside an attribute value quoted with this, or 0
	tagStart  int
	elemStart int // start of the top-level element being read (depth ≥ 2)
	consumed  int // buf[:consumed] has been returned and may be dropped
}

func newSplitter(r io.Reader, size int) *splitter {
	return &splitter{r: r, buf: make([]byte, size)}
}

// restart expects a new stream header, after STARTTLS or SASL success
// (RFC 6120 §4.3.3); with r non-nil the bytes come from r from now on
// (and anything buffered from the old reader is dropped).
func (s *splitter) restart(r io.Reader) {
	if r != nil {
		s.r = r
		s.end, s.pos, s.consumed = 0, 0, 0
	}
	s.depth, s.inTag, s.quote = 0, false, 0
}

// next returns the next complete top-level element. The slice is valid until
// the next call.
func (s *splitter) next() ([]byte, error) {
	for {
		el, ok, err := s.scan()
		if err != nil || ok {
			return el, err
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more bytes, first dropping what was returned and growing the
// buffer if an element is larger than it.
func (s *splitter) fill() error {
	if s.consumed > 0 {
		n := copy(s.buf, s.buf[s.consumed:s.end])
		s.pos -= s.consumed
		s.tagStart -= s.consumed
		s.elemStart -= s.consumed
		s.end = n
		s.consumed = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= maxElement {
			return fmt.Errorf("xmppbench: element larger than %d bytes", maxElement)
		}
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// scan advances over buffered bytes until an element completes.
func (s *splitter) scan() ([]byte, bool, error) {
	for s.pos < s.end {
		if !s.inTag {
			i := bytes.IndexByte(s.buf[s.pos:s.end], '<')
			if i < 0 {
				s.pos = s.end
				if s.depth <= 1 {
					s.consumed = s.pos // whitespace between stanzas
				}
				return nil, false, nil
			}
			s.pos += i
			s.inTag, s.tagStart, s.quote = true, s.pos, 0
			s.pos++
			continue
		}
		if s.quote != 0 {
			i := bytes.IndexByte(s.buf[s.pos:s.end], s.quote)
			if i < 0 {
				s.pos = s.end
				return nil, false, nil
			}
			s.pos += i + 1
			s.quote = 0
			continue
		}
		i := bytes.IndexAny(s.buf[s.pos:s.end], "\"'>")
		if i < 0 {
			s.pos = s.end
			return nil, false, nil
		}
		s.pos += i
		if c := s.buf[s.pos]; c != '>' {
			s.quote = c
			s.pos++
			continue
		}
		// A tag ends at pos.
		s.pos++
		s.inTag = false
		tag := s.buf[s.tagStart:s.pos]
		switch {
		case len(tag) > 1 && (tag[1] == '?' || tag[1] == '!'):
			// XML declaration or comment: not an element.
			if s.depth <= 1 {
				s.consumed = s.pos
			}
		case len(tag) > 1 && tag[1] == '/':
			s.depth--
			switch {
			case s.depth == 1:
				s.consumed = s.pos
				return s.buf[s.elemStart:s.pos], true, nil
			case s.depth <= 0:
				s.consumed = s.pos
				return nil, false, errStreamClosed
			}
		case tag[len(tag)-2] == '/':
			if s.depth == 1 {
				s.consumed = s.pos
				return tag, true, nil
			}
		default:
			switch s.depth {
			case 0:
				// The stream header opens the stream and is not returned.
				s.consumed = s.pos
			case 1:
				s.elemStart = s.tagStart
			}
			s.depth++
		}
	}
	return nil, false, nil
}

// name returns the name of el's start tag, prefix included.
func name(el []byte) []byte {
	if len(el) < 2 || el[0] != '<' {
		return nil
	}
	i := 1
	for i < len(el) && !isSpace(el[i]) && el[i] != '>' && el[i] != '/' {
		i++
	}
	return el[1:i]
}

// localName is name without its prefix.
func localName(el []byte) []byte {
	n := name(el)
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		return n[i+1:]
	}
	return n
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// startTag returns el's first tag, up to and including its '>'.
func startTag(el []byte) []byte {
	var q byte
	for i, c := range el {
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '>':
			return el[:i+1]
		}
	}
	return el
}

// attr returns the raw value of attribute key in el's start tag.
func attr(el []byte, key string) ([]byte, bool) {
	tag := startTag(el)
	for i := 0; i+len(key)+2 < len(tag); {
		j := bytes.Index(tag[i:], []byte(key))
		if j < 0 {
			return nil, false
		}
		j += i
		k := j + len(key)
		// Must be a whole attribute name followed by '='.
		if isSpace(tag[j-1]) && k+1 < len(tag) && tag[k] == '=' && (tag[k+1] == '\'' || tag[k+1] == '"') {
			q := tag[k+1]
			e := bytes.IndexByte(tag[k+2:], q)
			if e < 0 {
				return nil, false
			}
			return tag[k+2 : k+2+e], true
		}
		i = k
	}
	return nil, false
}

// childText returns the text of the first child element with the given
// local name (any prefix), e.g. <jid> inside a bind result.
func childText(el []byte, local string) ([]byte, bool) {
	for i := 1; i < len(el); {
		j := bytes.IndexByte(el[i:], '<')
		if j < 0 {
			return nil, false
		}
		i += j
		n := localName(el[i:])
		if string(n) == local && i+1 < len(el) && el[i+1] != '/' {
			t := startTag(el[i:])
			if t[len(t)-2] == '/' {
				return nil, true
			}
			start := i + len(t)
			end := bytes.IndexByte(el[start:], '<')
			if end < 0 {
				return nil, false
			}
			return el[start : start+end], true
		}
		i++
	}
	return nil, false
}

// unescape undoes the five predefined XML entities (enough for JIDs and
// base64).
func unescape(b []byte) string {
	if bytes.IndexByte(b, '&') < 0 {
		return string(b)
	}
	return entities.Replace(string(b))
}

var entities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", "\"", "&apos;", "'", "&amp;", "&")

// escapeAttr escapes s for a single-quoted attribute value.
func escapeAttr(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
