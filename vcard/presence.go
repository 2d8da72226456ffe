package vcard

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// The presence hook reads the serialised presence by hand rather than
// with encoding/xml: it runs for every broadcast presence. The bytes come
// from c2s, which checked them (well-formed, no comments, processing
// instructions or CDATA, namespaces declared by xmlns on the element that
// changes them) or serialised them itself; anything else the walk does not
// understand leaves the presence as it is.

// updateElement is the <x/> the server puts into presence for photo ("" for
// none).
func updateElement(photo string) []byte {
	if photo == "" {
		return []byte("<x xmlns='" + NSUpdate + "'><photo/></x>")
	}
	return []byte("<x xmlns='" + NSUpdate + "'><photo>" + photo + "</photo></x>")
}

// startTag reads the start tag at b[i] == '<'. It returns the element's
// name, its xmlns attribute (unescaped), the index after the tag and
// whether it closes itself.
func startTag(b []byte, i int) (name, ns []byte, end int, empty, ok bool) {
	j := i + 1
	for j < len(b) && !isSpace(b[j]) && b[j] != '>' && b[j] != '/' {
		j++
	}
	name = b[i+1 : j]
	if len(name) == 0 || name[0] == '!' || name[0] == '?' {
		return nil, nil, 0, false, false
	}
	for j < len(b) {
		switch c := b[j]; {
		case isSpace(c):
			j++
		case c == '>':
			return name, ns, j + 1, false, true
		case c == '/':
			if j+1 < len(b) && b[j+1] == '>' {
				return name, ns, j + 2, true, true
			}
			return nil, nil, 0, false, false
		default:
			k := j
			for k < len(b) && b[k] != '=' && !isSpace(b[k]) {
				k++
			}
			attr := b[j:k]
			for k < len(b) && (isSpace(b[k]) || b[k] == '=') {
				k++
			}
			if k >= len(b) || (b[k] != '\'' && b[k] != '"') {
				return nil, nil, 0, false, false
			}
			q := b[k]
			e := bytes.IndexByte(b[k+1:], q)
			if e < 0 {
				return nil, nil, 0, false, false
			}
			if string(attr) == "xmlns" {
				ns = unescape(b[k+1 : k+1+e])
			}
			j = k + 1 + e + 1
		}
	}
	return nil, nil, 0, false, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// unescape resolves entity and character references in an attribute
// value (a namespace spelt with them is the same namespace).
func unescape(v []byte) []byte {
	if bytes.IndexByte(v, '&') < 0 {
		return v
	}
	d := xml.NewDecoder(strings.NewReader("<v>" + string(v) + "</v>"))
	var s string
	if d.Decode(&s) != nil {
		return v
	}
	return []byte(s)
}

// elementEnd returns the index after the element whose start tag is at
// b[i] and ends at end (not self-closed).
func elementEnd(b []byte, end int) (int, bool) {
	depth := 1
	j := end
	for depth > 0 {
		k := bytes.IndexByte(b[j:], '<')
		if k < 0 {
			return 0, false
		}
		j += k
		if j+1 < len(b) && b[j+1] == '/' {
			e := bytes.IndexByte(b[j:], '>')
			if e < 0 {
				return 0, false
			}
			j += e + 1
			depth--
			continue
		}
		_, _, e, empty, ok := startTag(b, j)
		if !ok {
			return 0, false
		}
		j = e
		if !empty {
			depth++
		}
	}
	return j, true
}

// update is a vcard-temp:x:update element found in a presence.
type update struct {
	start, end int
	photo      bool   // it has a <photo/> child
	hash       []byte // that child's text, trimmed
}

// readUpdate reads the children of an <x/> whose content is b.
func readUpdate(b []byte) (photo bool, hash []byte, ok bool) {
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '<')
		if k < 0 {
			return photo, hash, true
		}
		i += k
		name, ns, end, empty, ok := startTag(b, i)
		if !ok {
			return false, nil, false
		}
		e := end
		if !empty {
			if e, ok = elementEnd(b, end); !ok {
				return false, nil, false
			}
		}
		if string(name) == "photo" && (len(ns) == 0 || string(ns) == NSUpdate) && !photo {
			photo = true
			if !empty {
				hash = bytes.TrimSpace(b[end : e-len("</photo>")])
			}
		}
		i = e
	}
}

// rewritePresence returns raw with the server's photo element in place of
// the client's, and whether it changed anything (raw itself is returned
// when not). An <x/> with an empty <photo/> is left alone unless force.
func rewritePresence(raw []byte, photo string, force bool) ([]byte, bool) {
	_, _, end, empty, ok := startTag(raw, 0)
	if !ok {
		return raw, false
	}
	if empty {
		want := updateElement(photo)
		out := make([]byte, 0, len(raw)+len(want)+16)
		out = append(out, raw[:end-2]...)
		out = append(out, '>')
		out = append(out, want...)
		return append(out, "</presence>"...), true
	}
	var buf [2]update
	found := buf[:0]
	closeAt := -1
	for i := end; closeAt < 0; {
		k := bytes.IndexByte(raw[i:], '<')
		if k < 0 {
			return raw, false
		}
		i += k
		if i+1 < len(raw) && raw[i+1] == '/' {
			closeAt = i
			break
		}
		name, ns, tagEnd, empty, ok := startTag(raw, i)
		if !ok {
			return raw, false
		}
		e := tagEnd
		if !empty {
			if e, ok = elementEnd(raw, tagEnd); !ok {
				return raw, false
			}
		}
		if string(name) == "x" && string(ns) == NSUpdate {
			u := update{start: i, end: e}
			if !empty {
				if u.photo, u.hash, ok = readUpdate(raw[tagEnd : e-len("</x>")]); !ok {
					return raw, false
				}
			}
			if u.photo && len(u.hash) == 0 && !force {
				// XEP-0398 §4: an empty photo is the client's to say.
				return raw, false
			}
			found = append(found, u)
		}
		i = e
	}
	if len(found) == 1 && found[0].photo && string(found[0].hash) == photo {
		return raw, false
	}
	want := updateElement(photo) // built only now: it allocates
	out := make([]byte, 0, len(raw)+len(want))
	if len(found) == 0 {
		out = append(out, raw[:closeAt]...)
		out = append(out, want...)
		return append(out, raw[closeAt:]...), true
	}
	prev := 0
	for n, u := range found {
		out = append(out, raw[prev:u.start]...)
		if n == 0 {
			out = append(out, want...)
		}
		prev = u.end
	}
	return append(out, raw[prev:]...), true
}
