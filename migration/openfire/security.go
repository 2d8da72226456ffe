package openfire

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"os"
	"strings"
)

// security is what the reader needs from Openfire's conf/security.xml.
type security struct {
	// KDF is encrypt.blowfish.kdf: "sha1" (also when unset) or "pbkdf2".
	KDF string
	// Salt is encrypt.blowfish.salt, decoded; nil when absent.
	Salt []byte
	// Algorithm is encrypt.algorithm, "Blowfish" (default) or "AES".
	Algorithm string
	// KeyCurrent is encrypt.key.current, still obfuscated; "" when unset.
	KeyCurrent string
}

// readSecurityXML reads Openfire's conf/security.xml (org.jivesoftware.
// util.JiveGlobals: the property encrypt.blowfish.salt is the element
// <security><encrypt><blowfish><salt>).
func readSecurityXML(path string) (*security, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("security.xml: %w", err)
	}
	var doc struct {
		XMLName xml.Name `xml:"security"`
		Encrypt struct {
			Algorithm string `xml:"algorithm"`
			Key       struct {
				Current string `xml:"current"`
			} `xml:"key"`
			Blowfish struct {
				KDF  string `xml:"kdf"`
				Salt string `xml:"salt"`
			} `xml:"blowfish"`
		} `xml:"encrypt"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("security.xml %s: %w", path, err)
	}
	s := &security{
		KDF:        strings.ToLower(strings.TrimSpace(doc.Encrypt.Blowfish.KDF)),
		Algorithm:  strings.TrimSpace(doc.Encrypt.Algorithm),
		KeyCurrent: strings.TrimSpace(doc.Encrypt.Key.Current),
	}
	if s.KDF == "" {
		s.KDF = "sha1"
	}
	if s.KDF != "sha1" && s.KDF != "pbkdf2" {
		return nil, fmt.Errorf("security.xml %s: unknown encrypt.blowfish.kdf %q (want sha1 or pbkdf2)", path, s.KDF)
	}
	if salt := strings.Join(strings.Fields(doc.Encrypt.Blowfish.Salt), ""); salt != "" {
		s.Salt, err = base64.StdEncoding.DecodeString(salt)
		if err != nil {
			return nil, fmt.Errorf("security.xml %s: encrypt.blowfish.salt is not base64: %w", path, err)
		}
	}
	if s.KDF == "pbkdf2" && len(s.Salt) < 16 {
		return nil, fmt.Errorf("security.xml %s: encrypt.blowfish.kdf is pbkdf2 but encrypt.blowfish.salt is missing or shorter than 16 bytes", path)
	}
	return s, nil
}
