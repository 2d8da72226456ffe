package openfire

import (
	"encoding/binary"
	"encoding/hex"
	"unicode/utf16"

	"golang.org/x/crypto/blowfish"
)

// encryptPassword is Openfire's Blowfish.encryptString with a given IV; the
// tests use it to build databases as Openfire would.
func encryptPassword(key []byte, iv uint64, password string) (string, error) {
	c, err := blowfish.NewCipher(key)
	if err != nil {
		return "", err
	}
	units := utf16.Encode([]rune(password))
	n := len(units) * 2
	buf := make([]byte, (n&^7)+8)
	for i, u := range units {
		binary.BigEndian.PutUint16(buf[2*i:], u)
	}
	for i := n; i < len(buf); i++ {
		buf[i] = byte(len(buf) - n)
	}
	prev := iv
	for i := 0; i < len(buf); i += 8 {
		binary.BigEndian.PutUint64(buf[i:i+8], binary.BigEndian.Uint64(buf[i:i+8])^prev)
		c.Encrypt(buf[i:i+8], buf[i:i+8])
		prev = binary.BigEndian.Uint64(buf[i : i+8])
	}
	out := make([]byte, 8, 8+len(buf))
	binary.BigEndian.PutUint64(out, iv)
	return hex.EncodeToString(append(out, buf...)), nil
}
