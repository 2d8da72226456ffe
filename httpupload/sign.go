package httpupload

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// secretLen is the size of the signing key in bytes.
const secretLen = 32

// loadSecret reads the signing key from path, creating it with fresh
// random bytes (mode 0600) when it does not exist.
func loadSecret(path string) (secret []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createSecret(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("httpupload: read signing key: %w", err)
	}
	if len(b) < secretLen {
		return nil, false, fmt.Errorf("httpupload: signing key %s has %d bytes, want %d (delete it to make a new one)", path, len(b), secretLen)
	}
	return b, false, nil
}

func createSecret(path string) ([]byte, bool, error) {
	secret := make([]byte, secretLen)
	rand.Read(secret)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it a moment ago.
		b, _, err := loadSecret(path)
		return b, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("httpupload: create signing key: %w", err)
	}
	_, err = f.Write(secret)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("httpupload: write signing key: %w", err)
	}
	return secret, true, nil
}

// newID returns a random slot id: 128 bits in lower-case hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validID reports whether id has the shape newID gives.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// putParams are what a PUT URL carries and the signature covers.
type putParams struct {
	id, name string
	size     int64
	expires  int64 // Unix milliseconds
}

// sign returns the signature of p, base64url without padding.
func (s *Service) sign(p putParams) string {
	m := hmac.New(sha256.New, s.secret)
	// Each field is terminated by a NUL, which none of them can contain
	// (ids are hex, names are refused with control characters), so two
	// different tuples never hash the same bytes.
	for _, f := range []string{"xmppd httpupload put v1", p.id, p.name, strconv.FormatInt(p.size, 10), strconv.FormatInt(p.expires, 10)} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify reports whether sig is the signature of p, in constant time.
func (s *Service) verify(p putParams, sig string) bool {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	want, _ := base64.RawURLEncoding.DecodeString(s.sign(p))
	return hmac.Equal(got, want)
}

// urlPath is the path of the URLs of a slot, under the public URL.
func urlPath(id, name string) string {
	return "/upload/" + id + "/" + url.PathEscape(name)
}

// putURL is the signed URL a client uploads to.
func (s *Service) putURL(p putParams) string {
	q := url.Values{}
	q.Set("size", strconv.FormatInt(p.size, 10))
	q.Set("expires", strconv.FormatInt(p.expires, 10))
	q.Set("sig", s.sign(p))
	return s.opts.PublicURL + urlPath(p.id, p.name) + "?" + q.Encode()
}

// getURL is the URL the file is fetched from.
func (s *Service) getURL(id, name string) string {
	return s.opts.PublicURL + urlPath(id, name)
}

// maxNameBytes bounds a file name; longer ones are shortened.
const maxNameBytes = 200

// maxExtBytes bounds the extension kept when a name is shortened.
const maxExtBytes = 16

// errBadName is why a file name is refused; its text reaches the client.
type errBadName string

func (e errBadName) Error() string { return string(e) }

// cleanFilename returns the name a file is served under, from the one a
// client asked for: surrounding white space trimmed, and shortened to
// maxNameBytes keeping its extension. It refuses names that are empty,
// not UTF-8, "." or "..", or that contain path separators, control
// characters or bidirectional formatting characters (which can disguise
// an extension).
func cleanFilename(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errBadName("the filename is empty")
	case !utf8.ValidString(name):
		return "", errBadName("the filename is not UTF-8")
	case name == "." || name == "..":
		return "", errBadName("the filename is not a file name")
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return "", errBadName("the filename contains a path separator")
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0:
			return "", errBadName("the filename contains a control character")
		case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
			return "", errBadName("the filename contains bidirectional formatting characters")
		}
	}
	if len(name) <= maxNameBytes {
		return name, nil
	}
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExtBytes {
		ext = name[i:]
	}
	stem := name[:maxNameBytes-len(ext)]
	for !utf8.ValidString(stem) {
		stem = stem[:len(stem)-1]
	}
	return strings.TrimSpace(stem) + ext, nil
}

// maxTypeBytes bounds a content type.
const maxTypeBytes = 255

// cleanType returns the normalised form of a media type (lower-case type,
// parameters as mime.FormatMediaType writes them), or ok false when it is
// not one.
func cleanType(t string) (string, bool) {
	if len(t) > maxTypeBytes {
		return "", false
	}
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(mt, "/") {
		return "", false
	}
	out := mime.FormatMediaType(mt, params)
	return out, out != ""
}

// inline reports whether a file of media type t is shown in a browser
// rather than downloaded: images that cannot carry script, audio, video
// and plain text.
func inline(t string) bool {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return false
	}
	switch mt {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain":
		return true
	}
	return strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")
}
