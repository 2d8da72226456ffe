package openfire

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// cbcEncrypt is AES-CBC with PKCS#7 padding, as Java's AES/CBC/PKCS7Padding.
func cbcEncrypt(key, iv, data []byte) []byte {
	block, _ := aes.NewCipher(key)
	pad := aes.BlockSize - len(data)%aes.BlockSize
	buf := append(append([]byte(nil), data...), make([]byte, pad)...)
	for i := len(data); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf
}

// obfuscate is Openfire's Obfuscator.obfuscate.
func obfuscate(s string) string {
	return base64.StdEncoding.EncodeToString(cbcEncrypt(legacyKey, legacyIV, []byte(s)))
}

func gcmEncrypt(key, iv []byte, s string) string {
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCMWithNonceSize(block, len(iv))
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, iv, []byte(s), nil))
}

func securityXMLWith(t *testing.T, algorithm, keyCurrent string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "security.xml")
	doc := `<security><encrypt><algorithm>` + algorithm + `</algorithm><key><current>` + keyCurrent + `</current></key></encrypt></security>`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEncryptedProperties: passwordKey and xmpp.domain stored encrypted,
// under each of Openfire's property encryptors.
func TestEncryptedProperties(t *testing.T) {
	iv := []byte("0123456789abcdef")
	ivB64 := base64.StdEncoding.EncodeToString(iv)
	custom := "my secret master key, longer than 16 bytes"
	bf := func(key, s string) string { c, _ := encryptPassword(sha1Key(key), 99, s); return c }
	for _, tc := range []struct {
		name, algorithm, keyCurrent string
		encrypt                     func(string) (value, iv string)
	}{
		{"AES GCM default key", "AES", "", func(s string) (string, string) { return gcmEncrypt(legacyKey, iv, s), ivB64 }},
		{"AES CBC custom key", "AES", obfuscate(custom), func(s string) (string, string) {
			return base64.StdEncoding.EncodeToString(cbcEncrypt(aesKey(custom), legacyIV, []byte(s))), ""
		}},
		{"AES CBC with iv short key", "AES", obfuscate("short"), func(s string) (string, string) {
			return base64.StdEncoding.EncodeToString(cbcEncrypt(aesKey("short"), iv, []byte(s))), ivB64
		}},
		{"Blowfish custom key", "Blowfish", obfuscate(custom), func(s string) (string, string) { return bf(custom, s), "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := build(t, 40, passwordKey)
			for _, p := range []struct{ name, value string }{{"passwordKey", passwordKey}, {"xmpp.domain", ofDomain}} {
				v, pIV := tc.encrypt(p.value)
				f.set("ofProperty", "name", p.name, "propValue", v)
				f.set("ofProperty", "name", p.name, "encrypted", 1)
				if pIV != "" {
					f.set("ofProperty", "name", p.name, "iv", pIV)
				}
			}
			d := read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXMLWith(t, tc.algorithm, tc.keyCurrent), Domain: ofDomain})
			// bob's PBKDF2 password needs the salt, absent here: his SCRAM key stands in.
			if user(t, d, "alice").Password != "alice-pässword" || user(t, d, "erin").Password != "erin-pw" {
				t.Errorf("passwords not recovered: %+v", d.Users)
			}
			readErr(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXMLWith(t, tc.algorithm, obfuscate("wrong key")), Domain: ofDomain},
				"is stored encrypted", "does not decrypt")
		})
	}
}
