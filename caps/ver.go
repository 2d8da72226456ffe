package caps

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// Namespaces the verification string reads.
const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsData      = "jabber:x:data"
)

// Limits on a disco#info answer: beyond them it is refused rather than
// cached (real clients list a few dozen features).
const (
	maxIdentities = 64
	maxFeatures   = 1024
	maxForms      = 16
)

// ErrIllFormed is a disco#info answer XEP-0115 §5.4 says to treat as
// ill-formed: no hash is computed from it.
var ErrIllFormed = errors.New("caps: ill-formed disco#info")

// Identity is a disco#info identity.
type Identity struct {
	Category, Type, Lang, Name string
}

// Field is a field of a XEP-0128 form.
type Field struct {
	Var    string
	Values []string
}

// Form is a XEP-0128 extended information form, by its FORM_TYPE. Forms
// whose FORM_TYPE is missing or not hidden are left out when parsing
// (XEP-0115 §5.4 3.4: ignored).
type Form struct {
	Type   string  // the FORM_TYPE value
	Fields []Field // without FORM_TYPE
}

// Info is what a disco#info answer says, as the verification string reads it.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

// xmlQuery is a disco#info <query/>, for encoding/xml.
type xmlQuery struct {
	Identities []struct {
		Category string `xml:"category,attr"`
		Type     string `xml:"type,attr"`
		Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		Name     string `xml:"name,attr"`
	} `xml:"http://jabber.org/protocol/disco#info identity"`
	Features []struct {
		Var string `xml:"var,attr"`
	} `xml:"http://jabber.org/protocol/disco#info feature"`
	Forms []struct {
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Type   string   `xml:"type,attr"`
			Values []string `xml:"jabber:x:data value"`
		} `xml:"jabber:x:data field"`
	} `xml:"jabber:x:data x"`
}

// ParseInfo reads a disco#info <query/> element from r (positioned before
// it, or at any point before its start tag). It fails with ErrIllFormed
// on what XEP-0115 §5.4 calls ill-formed: a FORM_TYPE with two different
// values, or an answer larger than this server caches.
func ParseInfo(r xml.TokenReader) (Info, error) {
	d := xml.NewTokenDecoder(r)
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return Info{}, fmt.Errorf("caps: no disco#info query: %w", err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Space == nsDiscoInfo && s.Name.Local == "query" {
			start = s
			break
		}
	}
	var q xmlQuery
	if err := d.DecodeElement(&q, &start); err != nil {
		return Info{}, fmt.Errorf("caps: disco#info query: %w", err)
	}
	if len(q.Identities) > maxIdentities || len(q.Features) > maxFeatures || len(q.Forms) > maxForms {
		return Info{}, fmt.Errorf("%w: too large", ErrIllFormed)
	}
	var info Info
	for _, id := range q.Identities {
		info.Identities = append(info.Identities, Identity{id.Category, id.Type, id.Lang, id.Name})
	}
	for _, f := range q.Features {
		info.Features = append(info.Features, f.Var)
	}
	for _, x := range q.Forms {
		var form Form
		hidden, typed := false, false
		for _, f := range x.Fields {
			if f.Var != "FORM_TYPE" {
				if f.Var != "" { // fixed fields have none; they say nothing
					form.Fields = append(form.Fields, Field{f.Var, f.Values})
				}
				continue
			}
			for _, v := range f.Values {
				if typed && v != form.Type {
					return Info{}, fmt.Errorf("%w: FORM_TYPE with two values", ErrIllFormed)
				}
				form.Type, typed = v, true
			}
			hidden = f.Type == "hidden"
		}
		if typed && hidden {
			info.Forms = append(info.Forms, form)
		}
	}
	return info, nil
}

// VerString returns the verification string of info (XEP-0115 §5.1):
// identities, features and forms sorted by octets, each part followed by
// '<'. The parts are character data, not XML: "<" in a feature counts as
// the one character. Two equal identities, features or FORM_TYPEs make
// the answer ill-formed (§5.4 3.1–3.3).
func VerString(info Info) (string, error) {
	var b strings.Builder
	ids := make([]string, len(info.Identities))
	for i, id := range info.Identities {
		ids[i] = id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
	}
	if err := sortedUnique(ids, "identity"); err != nil {
		return "", err
	}
	for _, s := range ids {
		b.WriteString(s)
		b.WriteByte('<')
	}
	features := slices.Clone(info.Features)
	if err := sortedUnique(features, "feature"); err != nil {
		return "", err
	}
	for _, f := range features {
		b.WriteString(f)
		b.WriteByte('<')
	}
	forms := slices.Clone(info.Forms)
	slices.SortFunc(forms, func(a, b Form) int { return strings.Compare(a.Type, b.Type) })
	for i, f := range forms {
		if i > 0 && forms[i-1].Type == f.Type {
			return "", fmt.Errorf("%w: two forms of type %q", ErrIllFormed, f.Type)
		}
		b.WriteString(f.Type)
		b.WriteByte('<')
		fields := slices.Clone(f.Fields)
		slices.SortStableFunc(fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, fd := range fields {
			b.WriteString(fd.Var)
			b.WriteByte('<')
			values := slices.Clone(fd.Values)
			slices.Sort(values)
			for _, v := range values {
				b.WriteString(v)
				b.WriteByte('<')
			}
		}
	}
	return b.String(), nil
}

func sortedUnique(s []string, what string) error {
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return fmt.Errorf("%w: %s %q twice", ErrIllFormed, what, s[i])
		}
	}
	return nil
}

// newHash returns the hash function named by a caps hash attribute (the
// IANA "Hash Function Textual Names"), or nil for one this server does
// not verify. MD5 is left out on purpose: its collisions are cheap, so
// a verified MD5 ver proves nothing and could poison the cache.
func newHash(name string) func() hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New
	case "sha-224":
		return sha256.New224
	case "sha-256":
		return sha256.New
	case "sha-384":
		return sha512.New384
	case "sha-512":
		return sha512.New
	}
	return nil
}

// Verifiable reports whether a caps hash attribute names a hash function
// this server verifies (and so caches by ver).
func Verifiable(hashName string) bool { return newHash(hashName) != nil }

// Ver returns the ver of info for the hash function hashName: the
// verification string hashed and base64-encoded (XEP-0115 §5.1).
func Ver(hashName string, info Info) (string, error) {
	h := newHash(hashName)
	if h == nil {
		return "", fmt.Errorf("caps: unsupported hash %q", hashName)
	}
	s, err := VerString(info)
	if err != nil {
		return "", err
	}
	w := h()
	w.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(w.Sum(nil)), nil
}
