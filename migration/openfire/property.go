package openfire

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"
)

// Openfire can store a property encrypted (ofProperty.encrypted = 1) with
// the property encryptor named by security.xml (JiveGlobals,
// JiveProperties): Blowfish (the default; see blowfish.go) or AES, keyed by
// encrypt.key.current, which security.xml holds obfuscated (Obfuscator:
// AES-128-CBC, PKCS#7, under the built-in key and IV below), or by the
// built-in defaults when unset. AES values are base64; since schema 27 they
// carry a random IV in ofProperty.iv (base64) and are AES-GCM, or AES-CBC
// under that IV for values written between 2018 and OF-3077; before, CBC
// under the built-in IV.

// legacyKey and legacyIV are Openfire's LegacyEncryptionConstants.
var (
	legacyKey = []byte{0xf2, 0x46, 0x5d, 0x2a, 0xd1, 0x73, 0x0b, 0x18, 0xcb, 0x86, 0x95, 0xa3, 0xb1, 0xe5, 0x89, 0x27}
	legacyIV  = []byte{0xcd, 0x91, 0xa7, 0xc5, 0x27, 0x8b, 0x39, 0xe0, 0xfa, 0x72, 0xd0, 0x29, 0x83, 0x65, 0x9d, 0x74}
)

// defaultBlowfishKey is Openfire's Blowfish.DEFAULT_KEY, used for
// properties when security.xml names no key.
const defaultBlowfishKey = "Blowfish-CBC"

func b64decode(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
}

// cbcDecrypt is AES-CBC with PKCS#7 padding removed.
func cbcDecrypt(key, iv, data []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 || len(iv) != aes.BlockSize {
		return nil, errBadCiphertext
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, errBadCiphertext
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errBadCiphertext
		}
	}
	return out[:len(out)-pad], nil
}

// deobfuscate undoes Openfire's Obfuscator (security.xml's
// encrypt.key.current).
func deobfuscate(s string) (string, error) {
	data, err := b64decode(s)
	if err != nil {
		return "", err
	}
	b, err := cbcDecrypt(legacyKey, legacyIV, data)
	if err != nil || !utf8.Valid(b) {
		return "", errors.New("encrypt.key.current does not deobfuscate")
	}
	return string(b), nil
}

// aesKey is AesEncryptor's key: the key's UTF-8 bytes over the built-in
// key, cut to its 16 bytes.
func aesKey(key string) []byte {
	k := append([]byte(nil), legacyKey...)
	copy(k, key)
	return k
}

// aesDecrypt is AesEncryptor.decrypt.
func aesDecrypt(key []byte, value string, iv []byte) (string, error) {
	data, err := b64decode(value)
	if err != nil {
		return "", errBadCiphertext
	}
	var b []byte
	if iv == nil {
		b, err = cbcDecrypt(key, legacyIV, data)
	} else {
		block, aerr := aes.NewCipher(key)
		if aerr != nil {
			return "", aerr
		}
		gcm, gerr := cipher.NewGCMWithNonceSize(block, len(iv))
		if gerr != nil {
			return "", gerr
		}
		if b, err = gcm.Open(nil, iv, data, nil); err != nil {
			b, err = cbcDecrypt(key, iv, data)
		}
	}
	if err != nil || !utf8.Valid(b) {
		return "", errBadCiphertext
	}
	return string(b), nil
}
