package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/xdg-go/scram"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/storage"
)

// MinIterations is the smallest PBKDF2 iteration count [New] accepts, the
// minimum RFC 7677 §4 sets for SCRAM-SHA-256.
const MinIterations = 4096

// SASL mechanism names, as stored in [storage.Credential.Mechanism].
const (
	SCRAMSHA1   = "SCRAM-SHA-1"
	SCRAMSHA256 = "SCRAM-SHA-256"
)

// saltSize is the length of each random salt in bytes (128 bits, as in
// the examples of RFC 7677).
const saltSize = 16

var (
	// ErrNotAuthorized is returned by [Service.VerifyPlain] for a wrong
	// password and for an unknown user alike, so that callers cannot tell
	// the two apart.
	ErrNotAuthorized = errors.New("auth: not authorized")
	// ErrInvalidJID is wrapped by errors about an address that is not a
	// valid bare account JID.
	ErrInvalidJID = errors.New("auth: invalid JID")
	// ErrInvalidPassword is wrapped by errors about a password that cannot
	// be set: empty, or refused by SASLprep (RFC 4013).
	ErrInvalidPassword = errors.New("auth: invalid password")
	// ErrUserExists is wrapped when creating an account that exists.
	ErrUserExists = errors.New("auth: user already exists")
	// ErrUnknownUser is wrapped when the account (or, from
	// [Service.Credential], its credential for the mechanism) does not exist.
	ErrUnknownUser = errors.New("auth: unknown user")
)

// Store is what auth needs from storage; [storage.Accounts] implements it.
type Store interface {
	Create(ctx context.Context, acct storage.Account) error
	Get(ctx context.Context, jid string) (storage.Account, error)
	Credential(ctx context.Context, jid, mechanism string) (storage.Credential, error)
	SetCredentials(ctx context.Context, jid string, creds []storage.Credential) error
	Delete(ctx context.Context, jid string) error
	List(ctx context.Context) ([]storage.Account, error)
	Exists(ctx context.Context, jid string) (bool, error)
	CountWithout(ctx context.Context, mechanism string) (int, error)
}

// Service manages accounts and verifies passwords. It is safe for
// concurrent use.
type Service struct {
	store      Store // immutable; never nil
	iterations int   // immutable; for new credentials

	// dummy is what VerifyPlain derives against when the user does not
	// exist, so that an unknown user costs the same PBKDF2 work as a known
	// one. Random per Service, so it matches no password. Immutable.
	dummy storage.Credential

	// legacy is how many accounts have no SCRAM-SHA-256 credential
	// (imported with SCRAM-SHA-1 keys only), as counted by CountLegacy
	// and kept up to date by the changes made through s since; -1 until
	// counted.
	legacy atomic.Int64
}

// New returns a Service keeping accounts in store and deriving new
// credentials with the given PBKDF2 iteration count, raised to
// [MinIterations] if lower.
func New(store Store, iterations int) *Service {
	iterations = max(iterations, MinIterations)
	s := &Service{
		store:      store,
		iterations: iterations,
		dummy: storage.Credential{
			Mechanism:  SCRAMSHA256,
			Salt:       randomBytes(saltSize),
			Iterations: iterations,
			StoredKey:  randomBytes(32),
			ServerKey:  randomBytes(32),
		},
	}
	s.legacy.Store(-1)
	return s
}

// CountLegacy counts the accounts without a SCRAM-SHA-256 credential:
// those imported with SCRAM-SHA-1 keys only (Openfire keeps no others),
// which can log in with SCRAM-SHA-1 and PLAIN only until their password is
// known again. The count is kept for LegacyAccounts and follows the
// changes made through s.
func (s *Service) CountLegacy(ctx context.Context) (int, error) {
	n, err := s.store.CountWithout(ctx, SCRAMSHA256)
	if err != nil {
		return 0, fmt.Errorf("auth: %w", err)
	}
	s.legacy.Store(int64(n))
	return n, nil
}

// LegacyAccounts returns how many accounts have no SCRAM-SHA-256
// credential (see CountLegacy); -1 before CountLegacy ran.
func (s *Service) LegacyAccounts() int { return int(s.legacy.Load()) }

// upgraded notes that an account without a SCRAM-SHA-256 credential got
// one, or is gone, by counting again: two changes to one account (two
// PLAIN logins at once) must not count twice, and this is rare.
func (s *Service) upgraded(ctx context.Context) {
	if n, err := s.store.CountWithout(ctx, SCRAMSHA256); err == nil {
		s.legacy.Store(int64(n))
	}
}

// legacyAccount reports whether the stored account has credentials, but
// not SCRAM-SHA-256's.
func legacyAccount(acct storage.Account) bool {
	if len(acct.Credentials) == 0 {
		return false
	}
	for _, c := range acct.Credentials {
		if c.Mechanism == SCRAMSHA256 {
			return false
		}
	}
	return true
}

// Create adds an account with SCRAM-SHA-1 and SCRAM-SHA-256 credentials
// derived from password, each with its own random salt. It returns an error
// wrapping [ErrUserExists] when the account exists, which it leaves as it was.
func (s *Service) Create(ctx context.Context, j jid.JID, password string) error {
	if err := checkAccountJID(j); err != nil {
		return err
	}
	creds, err := s.newCredentials(password)
	if err != nil {
		return err
	}
	err = s.store.Create(ctx, storage.Account{JID: j.String(), Credentials: creds})
	if errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("%w: %s", ErrUserExists, j)
	}
	if err != nil {
		return fmt.Errorf("auth: create %s: %w", j, err)
	}
	return nil
}

// SetPassword replaces the account's credentials with ones derived from
// password, with new salts. It returns an error wrapping [ErrUnknownUser]
// when there is no such account.
func (s *Service) SetPassword(ctx context.Context, j jid.JID, password string) error {
	if err := checkAccountJID(j); err != nil {
		return err
	}
	creds, err := s.newCredentials(password)
	if err != nil {
		return err
	}
	wasLegacy := false
	if s.legacy.Load() > 0 {
		if acct, err := s.store.Get(ctx, j.String()); err == nil {
			wasLegacy = legacyAccount(acct)
		}
	}
	err = s.store.SetCredentials(ctx, j.String(), creds)
	if err == nil && wasLegacy {
		s.upgraded(ctx)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrUnknownUser, j)
	}
	if err != nil {
		return fmt.Errorf("auth: set password of %s: %w", j, err)
	}
	return nil
}

// Delete removes the account and its credentials. It returns an error
// wrapping [ErrUnknownUser] when there is no such account.
func (s *Service) Delete(ctx context.Context, j jid.JID) error {
	if err := checkAccountJID(j); err != nil {
		return err
	}
	wasLegacy := false
	if s.legacy.Load() > 0 {
		if acct, err := s.store.Get(ctx, j.String()); err == nil {
			wasLegacy = legacyAccount(acct)
		}
	}
	err := s.store.Delete(ctx, j.String())
	if err == nil && wasLegacy {
		s.upgraded(ctx)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrUnknownUser, j)
	}
	if err != nil {
		return fmt.Errorf("auth: delete %s: %w", j, err)
	}
	return nil
}

// List returns every account, sorted by JID, without credentials.
func (s *Service) List(ctx context.Context) ([]storage.Account, error) {
	accts, err := s.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: list: %w", err)
	}
	return accts, nil
}

// Exists reports whether the account exists.
func (s *Service) Exists(ctx context.Context, j jid.JID) (bool, error) {
	if err := checkAccountJID(j); err != nil {
		return false, err
	}
	ok, err := s.store.Exists(ctx, j.String())
	if err != nil {
		return false, fmt.Errorf("auth: exists %s: %w", j, err)
	}
	return ok, nil
}

// Credential returns the account's stored SCRAM credential for mechanism
// ([SCRAMSHA1] or [SCRAMSHA256]), for a SCRAM server to verify against. It
// returns an error wrapping [ErrUnknownUser] when the account or that
// credential does not exist.
func (s *Service) Credential(ctx context.Context, j jid.JID, mechanism string) (storage.Credential, error) {
	if err := checkAccountJID(j); err != nil {
		return storage.Credential{}, err
	}
	c, err := s.store.Credential(ctx, j.String(), mechanism)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Credential{}, fmt.Errorf("%w: %s has no %s credential", ErrUnknownUser, j, mechanism)
	}
	if err != nil {
		return storage.Credential{}, fmt.Errorf("auth: credential of %s: %w", j, err)
	}
	return c, nil
}

// VerifyPlain checks a password given through SASL PLAIN (RFC 4616). It
// returns nil when it matches, and an error wrapping [ErrNotAuthorized] when
// it does not or when the account does not exist; in both cases it has
// done one PBKDF2 derivation, so the time taken does not tell them apart.
// Any other error (the database is down) is returned wrapped, so that the
// caller can answer temporary-auth-failure instead.
func (s *Service) VerifyPlain(ctx context.Context, j jid.JID, password string) error {
	cred, known, err := s.plainCredential(ctx, j)
	if err != nil {
		return err
	}
	if err := verify(cred, known, j, password); err != nil {
		return err
	}
	if cred.Mechanism == SCRAMSHA1 {
		// The account had SCRAM-SHA-1 keys only (plainCredential
		// prefers SCRAM-SHA-256): the password is known now, so it gets
		// every mechanism's. A failure leaves the login alone; the next
		// one tries again.
		if creds, err := s.newCredentials(password); err == nil {
			if err := s.store.SetCredentials(ctx, j.String(), creds); err == nil {
				s.upgraded(ctx)
			}
		}
	}
	return nil
}

// CheckPassword reports whether password matches the stored credential
// cred (as a PLAIN login checks it), in constant time.
func CheckPassword(cred storage.Credential, password string) bool {
	return verify(cred, true, jid.JID{}, password) == nil
}

// verify checks password against cred in constant time; known false
// (cred is the dummy) fails after the same work.
func verify(cred storage.Credential, known bool, j jid.JID, password string) error {
	stored, server, err := derive(cred.Mechanism, password, cred.Salt, cred.Iterations)
	if err != nil {
		// SASLprep refused the password, so it cannot be the one that was
		// set; that does not depend on the user, so it reveals nothing.
		return fmt.Errorf("%w: %s", ErrNotAuthorized, j)
	}
	// Both keys, in constant time, and without returning early, so that
	// neither the keys' bytes nor which check failed shows in the timing.
	match := subtle.ConstantTimeCompare(stored, cred.StoredKey) &
		subtle.ConstantTimeCompare(server, cred.ServerKey)
	if match != 1 || !known {
		return fmt.Errorf("%w: %s", ErrNotAuthorized, j)
	}
	return nil
}

// plainCredential picks the credential VerifyPlain checks: the account's
// strongest, or the dummy (known false) when there is none to check.
func (s *Service) plainCredential(ctx context.Context, j jid.JID) (cred storage.Credential, known bool, err error) {
	if checkAccountJID(j) != nil {
		return s.dummy, false, nil
	}
	acct, err := s.store.Get(ctx, j.String())
	if errors.Is(err, storage.ErrNotFound) {
		return s.dummy, false, nil
	}
	if err != nil {
		return storage.Credential{}, false, fmt.Errorf("auth: verify %s: %w", j, err)
	}
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA1} {
		for _, c := range acct.Credentials {
			if c.Mechanism == mech {
				return c, true, nil
			}
		}
	}
	return s.dummy, false, nil
}

// newCredentials derives a credential for every mechanism from password.
func (s *Service) newCredentials(password string) ([]storage.Credential, error) {
	return NewCredentials(password, s.iterations)
}

// NewCredentials derives a credential for every mechanism (SCRAM-SHA-1 and
// SCRAM-SHA-256) from password, each with its own random salt, as an
// account created with it gets; iterations is raised to [MinIterations].
// Imports use it for accounts whose password they know.
func NewCredentials(password string, iterations int) ([]storage.Credential, error) {
	iterations = max(iterations, MinIterations)
	if password == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidPassword)
	}
	var creds []storage.Credential
	for _, mech := range []string{SCRAMSHA1, SCRAMSHA256} {
		salt := randomBytes(saltSize)
		stored, server, err := derive(mech, password, salt, iterations)
		if err != nil {
			return nil, err
		}
		creds = append(creds, storage.Credential{
			Mechanism:  mech,
			Salt:       salt,
			Iterations: iterations,
			StoredKey:  stored,
			ServerKey:  server,
		})
	}
	return creds, nil
}

// derive computes StoredKey and ServerKey (RFC 5802 §3) through
// xdg-go/scram's client, which SASLpreps the password, so the result is
// exactly what its server expects. SaltedPassword stays inside the library.
func derive(mechanism, password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	var hash scram.HashGeneratorFcn
	switch mechanism {
	case SCRAMSHA1:
		hash = scram.SHA1
	case SCRAMSHA256:
		hash = scram.SHA256
	default:
		return nil, nil, fmt.Errorf("auth: unsupported mechanism %q", mechanism)
	}
	// The username does not enter the keys; passing none avoids SASLprep
	// refusing a localpart that PRECIS accepts (SASLprep knows only
	// Unicode 3.2).
	client, err := hash.NewClient("", password, "")
	if err != nil {
		// The library's message names the SASLprep rule, not the password.
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPassword, err)
	}
	sc, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return nil, nil, fmt.Errorf("auth: derive %s keys: %w", mechanism, err)
	}
	return sc.StoredKey, sc.ServerKey, nil
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return b
}
