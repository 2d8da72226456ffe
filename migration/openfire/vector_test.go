package openfire

import "testing"

// TestBlowfishKnownCiphertext decrypts a value produced by Openfire's own
// Blowfish class (SHA-1 key derivation): a third party's test asserted
// Openfire's encryptString of "qwert123q" under passwordKey
// "LvYKD7aoFYb9y95" (its random IV is the first 16 hex digits).
func TestBlowfishKnownCiphertext(t *testing.T) {
	got, err := decryptPassword(sha1Key("LvYKD7aoFYb9y95"), "679b3f2cdbd9aafc2ff9300daa9273d3c1442fcb66a7c9f299903945d9d17e5a")
	if err != nil || got != "qwert123q" {
		t.Fatalf("decrypt = %q, %v; want qwert123q", got, err)
	}
}

// TestBlowfishEncryptMatchesOpenfire proves the tests' encryptor writes what
// Openfire writes: with the same IV it reproduces the known ciphertext.
func TestBlowfishEncryptMatchesOpenfire(t *testing.T) {
	got, err := encryptPassword(sha1Key("LvYKD7aoFYb9y95"), 0x679b3f2cdbd9aafc, "qwert123q")
	if err != nil || got != "679b3f2cdbd9aafc2ff9300daa9273d3c1442fcb66a7c9f299903945d9d17e5a" {
		t.Fatalf("encrypt = %q, %v", got, err)
	}
}

func TestDecryptRejects(t *testing.T) {
	key := sha1Key("k")
	good, _ := encryptPassword(key, 42, "pässwörd😀")
	if got, err := decryptPassword(key, good); err != nil || got != "pässwörd😀" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	for _, bad := range []string{"", "zz", "0011223344556677", good[:len(good)-2], good + "00"} {
		if got, err := decryptPassword(key, bad); err == nil {
			t.Errorf("decrypt(%q) = %q, want an error", bad, got)
		}
	}
	wrong := 0
	for i := range 200 {
		c, _ := encryptPassword(key, uint64(i), "secret-password")
		if _, err := decryptPassword(sha1Key("other"), c); err == nil {
			wrong++
		}
	}
	if wrong > 3 {
		t.Errorf("a wrong key passed %d of 200 times", wrong)
	}
}
