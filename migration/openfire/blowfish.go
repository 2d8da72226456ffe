package openfire

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"unicode"
	"unicode/utf16"

	"golang.org/x/crypto/blowfish"
)

// Openfire encrypts passwords (ofUser.encryptedPassword) with its own
// Blowfish class (org.jivesoftware.util.Blowfish): CBC mode, a random 8-byte
// IV written in front of the ciphertext, the whole in lowercase hex. The
// plaintext is the password's UTF-16BE code units, padded to a multiple of
// 8 bytes with 1 to 8 bytes each holding the pad length. The key is the
// SHA-1 of the passwordKey property's bytes or, when security.xml says
// encrypt.blowfish.kdf = pbkdf2 (Openfire 5.1.0 and later), PBKDF2-HMAC-SHA512
// of the passwordKey with the base64 salt encrypt.blowfish.salt, 100,000
// iterations, 32 bytes.

// pbkdf2Iterations is Openfire's Blowfish.deriveKeyPBKDF2 iteration count.
const pbkdf2Iterations = 100_000

// sha1Key derives the Blowfish key the way Openfire did before PBKDF2 (and
// still does while security.xml's kdf is sha1 or unset).
func sha1Key(passwordKey string) []byte {
	sum := sha1.Sum([]byte(passwordKey))
	return sum[:]
}

// pbkdf2Key derives the Blowfish key of installs whose security.xml says
// kdf pbkdf2.
func pbkdf2Key(passwordKey string, salt []byte) ([]byte, error) {
	if passwordKey == "" {
		return nil, errors.New("empty passwordKey")
	}
	if len(salt) < 16 {
		// Openfire refuses salts shorter than 16 bytes (and falls back to
		// SHA-1, which the caller tries anyway).
		return nil, errors.New("blowfish salt shorter than 16 bytes")
	}
	return pbkdf2.Key(sha512.New, passwordKey, salt, pbkdf2Iterations, 32)
}

// errBadCiphertext is returned when a value does not decrypt: wrong key,
// or not Openfire's format. The two cannot be told apart.
var errBadCiphertext = errors.New("does not decrypt")

// decryptPassword decrypts one encryptedPassword with key. Openfire itself
// cannot tell a wrong key from a right one (it returns garbage); here the
// padding must be well formed and the result valid text without control
// characters, which rejects a wrong key but for about one value in several
// hundred — callers check against SCRAM keys where they exist.
func decryptPassword(key []byte, ciphertext string) (string, error) {
	c, err := blowfish.NewCipher(key)
	if err != nil {
		return "", err
	}
	raw, err := hex.DecodeString(ciphertext)
	if err != nil || len(raw) < 16 || len(raw)%8 != 0 {
		return "", errBadCiphertext
	}
	iv, buf := raw[:8], raw[8:]
	prev := binary.BigEndian.Uint64(iv)
	out := make([]byte, len(buf))
	for i := 0; i < len(buf); i += 8 {
		c.Decrypt(out[i:i+8], buf[i:i+8])
		binary.BigEndian.PutUint64(out[i:i+8], binary.BigEndian.Uint64(out[i:i+8])^prev)
		prev = binary.BigEndian.Uint64(buf[i : i+8])
	}
	pad := int(out[len(out)-1])
	if pad < 1 || pad > 8 {
		return "", errBadCiphertext
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return "", errBadCiphertext
		}
	}
	text := out[:len(out)-pad]
	if len(text)%2 != 0 {
		return "", errBadCiphertext
	}
	units := make([]uint16, len(text)/2)
	for i := range units {
		units[i] = binary.BigEndian.Uint16(text[2*i:])
	}
	runes := utf16.Decode(units)
	for _, r := range runes {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return "", errBadCiphertext
		}
	}
	return string(runes), nil
}
