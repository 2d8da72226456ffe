package auth

import (
	"fmt"

	"mellium.im/xmpp/jid"
)

// maxShownInput bounds how much of a refused address an error quotes, so
// that a hostile 3 KiB "JID" does not end up whole in every log line.
const maxShownInput = 80

// NormalizeJID parses s as an account address and returns it in canonical
// form (RFC 7622: PRECIS UsernameCaseMapped for the localpart, IDNA for the
// domain), e.g. "Alice@Example.ORG" becomes "alice@example.org". It requires
// a localpart and refuses a resourcepart, since an account is a bare JID.
// Errors wrap [ErrInvalidJID] and quote the input and the reason.
func NormalizeJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w %s: %w", ErrInvalidJID, shown(s), err)
	}
	if err := checkAccountJID(j); err != nil {
		return jid.JID{}, fmt.Errorf("%w %s: %s", ErrInvalidJID, shown(s), reason(j))
	}
	// The canonical form must be a fixed point: an address whose stored form
	// would parse differently (or not at all, as with the domain "..", which
	// becomes ".") could never be looked up again.
	if again, err := jid.Parse(j.String()); err != nil || !again.Equal(j) {
		return jid.JID{}, fmt.Errorf("%w %s: its normalised form %s does not normalise to itself", ErrInvalidJID, shown(s), shown(j.String()))
	}
	return j, nil
}

// checkAccountJID refuses a JID that is not a bare account address. A
// jid.JID is canonical by construction, so only its shape needs checking.
func checkAccountJID(j jid.JID) error {
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidJID, shown(j.String()), reason(j))
	}
	return nil
}

// reason says what is wrong with the shape of j; see checkAccountJID.
func reason(j jid.JID) string {
	switch {
	case j.Domainpart() == "":
		return "empty"
	case j.Localpart() == "":
		return "no localpart; an account address is user@domain"
	default:
		return "has a resourcepart; an account address is a bare JID (user@domain)"
	}
}

// shown quotes s for an error message, cut to maxShownInput bytes.
func shown(s string) string {
	if len(s) > maxShownInput {
		return fmt.Sprintf("%q… (%d bytes)", s[:maxShownInput], len(s))
	}
	return fmt.Sprintf("%q", s)
}
