// Package auth manages accounts and their credentials for SASL SCRAM
// (RFC 5802 §3, with SCRAM-SHA-1 and SCRAM-SHA-256 per RFC 7677) and SASL
// PLAIN (RFC 4616).
//
// For each account and each mechanism it keeps a random salt, the iteration
// count, and the two keys RFC 5802 §3 derives from the password:
//
//	SaltedPassword = Hi(SASLprep(password), salt, i)   (PBKDF2)
//	StoredKey      = H(HMAC(SaltedPassword, "Client Key"))
//	ServerKey      = HMAC(SaltedPassword, "Server Key")
//
// It never stores the password, nor SaltedPassword, which is as good as the
// password to anyone who reads it. The derivation is github.com/xdg-go/scram's
// own, so what [Service.Create] stores is exactly what that library's SCRAM
// server verifies.
//
// JIDs given to this package are bare account addresses (user@domain),
// normalised with PRECIS by [NormalizeJID] before they reach storage.
//
// auth does not speak SASL itself: c2s runs the SCRAM exchange and looks up
// keys with [Service.Credential], and checks PLAIN with [Service.VerifyPlain].
// It does not throttle failed attempts either; that limit belongs to c2s.
package auth
