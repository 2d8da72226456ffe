package c2s

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdg-go/scram"
	"mellium.im/sasl"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/internal/burstlog"
	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/storage"
)

// XML namespaces of the SASL stream feature (RFC 6120 §6.4) and of the
// channel-binding advertisement (XEP-0440).
const (
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSASLCB = "urn:xmpp:sasl-cb:0"
	nsXML    = "http://www.w3.org/XML/1998/namespace"
)

// SASL mechanism names.
const (
	mechPlain         = "PLAIN"
	mechSCRAMSHA1     = "SCRAM-SHA-1"
	mechSCRAMSHA256   = "SCRAM-SHA-256"
	mechSCRAMSHA1P    = "SCRAM-SHA-1-PLUS"
	mechSCRAMSHA256P  = "SCRAM-SHA-256-PLUS"
	mechChannelSuffix = "-PLUS"
)

// SASL failure conditions (RFC 6120 §6.5) that xmppd sends.
const (
	condAborted         = "aborted"
	condIncorrectEnc    = "incorrect-encoding"
	condInvalidAuthzID  = "invalid-authzid"
	condInvalidMech     = "invalid-mechanism"
	condMalformed       = "malformed-request"
	condNotAuthorized   = "not-authorized"
	condTemporaryFailed = "temporary-auth-failure"
)

const (
	// maxSASLFailures ends the stream after this many <failure/> answers:
	// retrying is allowed (RFC 6120 §6.4.5), but not for ever on one
	// connection.
	maxSASLFailures = 10

	// maxSASLPayload bounds the base64 text of one <auth/> or <response/>.
	// Real SCRAM and PLAIN messages are a few hundred bytes; anything much
	// larger is an attempt to make us buffer.
	maxSASLPayload = 8 << 10

	// fakeSaltLen and fakeIterations describe the credential invented for an
	// unknown user. They must look like what the account store hands out, or
	// the server-first-message tells a prober which usernames exist
	// (saslConfig.FakeIterations follows [auth] scram_iterations).
	fakeSaltLen    = 16
	fakeIterations = 4096

	// tlsExporterLabel and tlsExporterLen define the tls-exporter channel
	// binding (RFC 9266 §2).
	tlsExporterLabel = "EXPORTER-Channel-Binding"
	tlsExporterLen   = 32
)

// CredentialStore is what SASL needs from accounts (auth.Service satisfies
// it).
//
// An error wrapping auth.ErrUnknownUser, auth.ErrInvalidJID,
// auth.ErrNotAuthorized or storage.ErrNotFound means "no such account" or
// "wrong password", and the client gets not-authorized. Any other error is
// taken as a fault of the server (the database is down) and answered with
// temporary-auth-failure, which the throttle does not count: an outage must
// not lock every account out.
type CredentialStore interface {
	// Credential returns the stored SCRAM keys of the account j for mechanism
	// "SCRAM-SHA-1" or "SCRAM-SHA-256"; an error for an unknown user.
	Credential(ctx context.Context, j jid.JID, mechanism string) (storage.Credential, error)
	// VerifyPlain checks a password in constant time; an error for a wrong
	// password or unknown user.
	VerifyPlain(ctx context.Context, j jid.JID, password string) error
}

// isAccountRefusal reports whether a CredentialStore error means an unknown
// user or a wrong password, as opposed to a fault of the store.
func isAccountRefusal(err error) bool {
	return errors.Is(err, auth.ErrUnknownUser) || errors.Is(err, auth.ErrInvalidJID) ||
		errors.Is(err, auth.ErrNotAuthorized) || errors.Is(err, storage.ErrNotFound)
}

// storeFault is the failure for a CredentialStore that could not answer.
func (a *saslAttempt) storeFault(err error) *saslFailure {
	if l := a.run.cfg.StoreLog; l != nil {
		l.Fail(err, "user", a.userName())
	} else {
		a.run.cfg.Log.Error("c2s: account store failed during SASL", "user", a.userName(), "err", err)
	}
	f := a.failure(condTemporaryFailed, false, "account store failed")
	f.text = "Authentication is temporarily unavailable; try again later"
	return f
}

// storeAnswered ends a burst of store failures, if one was going on.
func (a *saslAttempt) storeAnswered() {
	if l := a.run.cfg.StoreLog; l != nil {
		l.OK()
	}
}

// saslConfig configures the SASL stream feature of one stream.
type saslConfig struct {
	Domain   jid.JID         // the served domain; usernames are localparts at it
	Store    CredentialStore // never nil
	Throttle *authThrottle   // may be nil (no throttling)
	RemoteIP string          // the client's IP, for throttling
	// StoreLog logs the Store's failures once per burst (an outage fails
	// every login); nil logs each.
	StoreLog *burstlog.Logger
	// AllowInsecure offers SASL on a stream without TLS (tests only; PLAIN is
	// never offered without TLS).
	AllowInsecure bool
	Log           *slog.Logger // nil discards
	// OnSuccess records the authenticated bare JID on the connection.
	OnSuccess func(user jid.JID)

	// FakeSaltKey is a per-process random secret (32 bytes is plenty) from
	// which the salts of unknown users are derived, so that asking twice for
	// the same unknown name yields the same salt, as it would for a real
	// account. When empty the salts are random per attempt, which lets a
	// client tell unknown users apart by asking twice.
	FakeSaltKey []byte
	// EndPoint is the tls-server-end-point channel binding (RFC 5929 §4)
	// of the certificate this server presents, from endPointBinding: it
	// depends on the certificate only, so the server derives it once. The
	// zero value: not offered.
	EndPoint scram.ChannelBinding
	// FakeIterations is the iteration count shown for unknown users: the
	// one new accounts get. 0 means fakeIterations.
	FakeIterations int
	// LegacySCRAM, when set and true, withholds SCRAM-SHA-256 and its
	// -PLUS variant (Server.LegacySCRAM).
	LegacySCRAM func() bool
}

// saslOffer is what one stream offers: the mechanisms in order of preference
// and the types of the channel bindings behind the -PLUS ones.
type saslOffer struct {
	mechs    []string
	bindings []scram.ChannelBindingType // best first; empty: no -PLUS mechanism offered
}

// newSASLOffer decides what to offer on a stream whose TLS state is cs
// (nil: no TLS); endPoint tells whether the tls-server-end-point binding
// is known. Mechanisms are listed only if they can succeed: -PLUS needs a
// channel binding of this TLS connection, PLAIN needs TLS (RFC 6120 §13.8).
func newSASLOffer(cs *tls.ConnectionState, endPoint bool) saslOffer {
	var o saslOffer
	secure := cs != nil && cs.Version != 0
	if secure {
		o.bindings = channelBindingTypes(cs, endPoint)
	}
	if len(o.bindings) > 0 {
		o.mechs = append(o.mechs, mechSCRAMSHA256P, mechSCRAMSHA1P)
	}
	o.mechs = append(o.mechs, mechSCRAMSHA256, mechSCRAMSHA1)
	if secure {
		o.mechs = append(o.mechs, mechPlain)
	}
	return o
}

// channelBindingTypes returns the channel-binding types of a TLS connection,
// best first: tls-exporter on TLS 1.3 (RFC 9266), tls-unique on TLS 1.2
// (RFC 5929; Go leaves it empty on a resumed session without extended master
// secret), then tls-server-end-point on either when endPoint is set. Only an
// exchange that binds needs the data (channelBindings), so none is derived
// here.
func channelBindingTypes(cs *tls.ConnectionState, endPoint bool) []scram.ChannelBindingType {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	var out []scram.ChannelBindingType
	switch {
	case cs.Version >= tls.VersionTLS13:
		// Go has an exporter for every completed TLS 1.3 handshake (it
		// withholds it only when the config allows renegotiation, which
		// is for clients).
		out = append(out, scram.ChannelBindingTLSExporter)
	case cs.Version == tls.VersionTLS12 && len(cs.TLSUnique) > 0:
		out = append(out, scram.ChannelBindingTLSUnique)
	}
	if endPoint {
		out = append(out, scram.ChannelBindingTLSServerEndpoint)
	}
	return out
}

// channelBindings returns the bindings of the types the offer lists, in its
// order, with their data, derived on the first call: once per stream, and
// only for a client that binds or claims it could ("p" or "y").
func (r *saslRun) channelBindings() []scram.ChannelBinding {
	if r.bindings != nil || len(r.offer.bindings) == 0 {
		return r.bindings
	}
	r.bindings = make([]scram.ChannelBinding, 0, len(r.offer.bindings))
	for _, t := range r.offer.bindings {
		cb := scram.ChannelBinding{Type: t}
		switch t {
		case scram.ChannelBindingTLSExporter:
			cb.Data, _ = r.tlsConn.ExportKeyingMaterial(tlsExporterLabel, nil, tlsExporterLen)
		case scram.ChannelBindingTLSUnique:
			cb = scram.NewTLSUniqueBinding(r.tlsConn.TLSUnique)
		case scram.ChannelBindingTLSServerEndpoint:
			cb = r.cfg.EndPoint
		}
		if cb.IsSupported() {
			r.bindings = append(r.bindings, cb)
		}
	}
	return r.bindings
}

// endPointBinding returns the tls-server-end-point binding of cert, the
// certificate this server presents; the zero value when cert is nil or its
// signature algorithm has no hash for it (RFC 5929 §4.1).
func endPointBinding(cert *x509.Certificate) scram.ChannelBinding {
	if cert == nil {
		return scram.ChannelBinding{}
	}
	// xdg-go hashes the "peer" certificate per RFC 5929; on the server
	// side that is our own.
	cb, err := scram.NewTLSServerEndpointBinding(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}})
	if err != nil {
		return scram.ChannelBinding{}
	}
	return cb
}

// saslRun is one SASL negotiation: every attempt the client makes on one
// stream. It is owned by the goroutine running Negotiate.
type saslRun struct {
	cfg      saslConfig
	offer    saslOffer
	tlsConn  tls.ConnectionState    // zero without TLS
	bindings []scram.ChannelBinding // nil until channelBindings derives them
	g        io.Writer              // the transport; each answer is one Write
	d        *xml.Decoder
	failures int // <failure/> answers sent so far
}

// saslFailure ends one attempt with a <failure/>; the client may try again.
type saslFailure struct {
	cond string // RFC 6120 §6.5 condition
	text string // optional <text/>, shown to the user
	// authn marks a failed credential check, which is throttled, delayed
	// and logged at Warn.
	authn   bool
	refused bool   // a throttle refusal, delayed like a failure
	account string // the bare JID tried, "" if not known: the throttle key
	user    string // for the log: account, or the raw name if it is none
	reason  string // for the log only, never sent
}

// Error describes the failure for logs; the client sees only cond and text.
func (f *saslFailure) Error() string {
	return "c2s: SASL failure " + f.cond + ": " + f.reason
}

// negotiate answers <auth/> elements, starting with the SASL element
// first, until one succeeds. A nil error means success has been sent; any
// error ends the stream.
func (r *saslRun) negotiate(ctx context.Context, first xml.StartElement) error {
	for start := first; ; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("c2s: SASL: %w", err)
		}
		var res saslResult
		var err error
		switch start.Name.Local {
		case "auth":
			res, err = r.attempt(ctx, start)
		case "abort":
			err = r.skipThen(&saslFailure{cond: condAborted, reason: "client aborted"})
		default:
			// <response/> outside an exchange, <success/>, …
			err = r.skipThen(&saslFailure{cond: condMalformed, reason: "unexpected <" + start.Name.Local + "/>"})
		}
		var fail *saslFailure
		switch {
		case err == nil:
			return r.succeed(res)
		case errors.As(err, &fail):
			if err := r.fail(ctx, fail); err != nil {
				return err
			}
		default:
			return err
		}
		if start, err = r.nextElement(); err != nil {
			return err
		}
	}
}

// saslResult is a verified attempt.
type saslResult struct {
	user    jid.JID // bare
	mech    string
	binding scram.ChannelBindingType // "" without channel binding
	final   []byte                   // additional data with success (server-final-message)
}

// succeed sends <success/> and records the user.
func (r *saslRun) succeed(res saslResult) error {
	if err := r.write("success", res.final); err != nil {
		return err
	}
	r.cfg.Log.Info("c2s: authenticated", "user", res.user.String(),
		"mechanism", res.mech, "channel_binding", string(res.binding))
	if r.cfg.Throttle != nil {
		r.cfg.Throttle.Succeeded(attempt{ip: r.cfg.RemoteIP, account: res.user.String()})
	}
	if r.cfg.OnSuccess != nil {
		r.cfg.OnSuccess(res.user)
	}
	return nil
}

// fail answers a failed attempt, after the throttle's delay for a failed
// credential check, and ends the stream once the client has failed too often.
func (r *saslRun) fail(ctx context.Context, f *saslFailure) error {
	// Failed credential checks and throttle refusals are what an operator
	// watches for (fail2ban and the like); protocol slips are Debug.
	level := slog.LevelDebug
	if f.authn || f.refused {
		level = slog.LevelWarn
	}
	r.cfg.Log.Log(ctx, level, "c2s: SASL failure", "user", f.user,
		"condition", f.cond, "reason", f.reason)
	if r.cfg.Throttle != nil && (f.authn || f.refused) {
		var d time.Duration
		if f.authn {
			d = r.cfg.Throttle.Failed(attempt{ip: r.cfg.RemoteIP, account: f.account})
		} else {
			// A refusal checks no password, but answering it at once
			// would let a guesser spin; it waits as long as a failure
			// at most does.
			d = r.cfg.Throttle.MaxDelay()
		}
		if err := sleepCtx(ctx, d); err != nil {
			return fmt.Errorf("c2s: SASL failure delay: %w", err)
		}
	}
	if err := r.writeFailure(f); err != nil {
		return err
	}
	r.failures++
	if r.failures >= maxSASLFailures {
		e := stream.PolicyViolation
		e.Text = append(e.Text, struct{ Lang, Value string }{"en", "too many failed authentication attempts"})
		return fmt.Errorf("c2s: SASL: %d failures: %w", r.failures, e)
	}
	return nil
}

// throttled returns the failure for a throttle refusal, or nil if an
// attempt at account ("" for a name that is no localpart) may go ahead.
func (a *saslAttempt) throttled(account string) *saslFailure {
	r := a.run
	if r.cfg.Throttle == nil {
		return nil
	}
	after, err := r.cfg.Throttle.Check(a.ctx, attempt{ip: r.cfg.RemoteIP, account: account})
	if err != nil && a.ctx.Err() == nil {
		return a.storeFault(err)
	}
	if after <= 0 {
		return nil
	}
	secs := int64(math.Ceil(after.Seconds()))
	return &saslFailure{
		cond:    condTemporaryFailed,
		text:    "Too many failed authentication attempts; try again in " + strconv.FormatInt(secs, 10) + " seconds",
		refused: true,
		account: account,
		user:    account,
		reason:  "throttled",
	}
}

// attempt runs one exchange that starts with the <auth/> element start.
func (r *saslRun) attempt(ctx context.Context, start xml.StartElement) (saslResult, error) {
	var mechName string
	for _, a := range start.Attr {
		if a.Name.Local == "mechanism" && a.Name.Space == "" {
			mechName = a.Value
		}
	}
	payload, err := r.readPayload(start)
	if err != nil {
		return saslResult{}, err
	}
	if !slices.Contains(r.offer.mechs, mechName) {
		return saslResult{}, &saslFailure{cond: condInvalidMech, reason: "mechanism not offered"}
	}
	// An <auth/> without text has no initial response (RFC 6120 §6.4.2):
	// ask for it with an empty challenge. "=" is an empty initial response.
	data, err := decodeSASLPayload(payload)
	if err != nil {
		return saslResult{}, err
	}

	a := &saslAttempt{run: r, ctx: ctx}
	var mech sasl.Mechanism
	if mechName == mechPlain {
		mech = a.plain()
	} else {
		mech = a.scram(mechName)
	}
	var opts []sasl.Option
	if r.tlsConn.Version != 0 {
		opts = append(opts, sasl.TLSState(r.tlsConn))
	}
	neg := sasl.NewServer(mech, nil, opts...)

	if len(payload) == 0 {
		if err := r.write("challenge", nil); err != nil {
			return saslResult{}, err
		}
		if data, err = r.readResponse(); err != nil {
			return saslResult{}, err
		}
	}
	for {
		more, resp, err := neg.Step(data)
		if err != nil {
			return saslResult{}, err
		}
		if !more {
			if !a.verified {
				// Unreachable unless a mechanism forgets to verify; fail
				// closed rather than log someone in.
				return saslResult{}, a.failure(condNotAuthorized, true, "mechanism ended unverified")
			}
			return saslResult{user: a.user, mech: mechName, binding: a.binding, final: resp}, nil
		}
		if err := r.write("challenge", resp); err != nil {
			return saslResult{}, err
		}
		if data, err = r.readResponse(); err != nil {
			return saslResult{}, err
		}
	}
}

// nextElement returns the next element's start, skipping whitespace between
// elements. Anything outside the SASL namespace, a stanza in particular, ends
// the stream with not-authorized (RFC 6120 §6.4.1: nothing but SASL before
// authentication).
func (r *saslRun) nextElement() (xml.StartElement, error) {
	for {
		tok, err := r.d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("c2s: SASL: read: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == stream.NS && t.Name.Local == "error" {
				return xml.StartElement{}, errPeerStreamError
			}
			if t.Name.Space != nsSASL {
				return xml.StartElement{}, fmt.Errorf("c2s: SASL: unexpected <%s xmlns='%s'/>: %w", t.Name.Local, t.Name.Space, stream.NotAuthorized)
			}
			return t, nil
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
				return xml.StartElement{}, fmt.Errorf("c2s: SASL: text between elements: %w", errTextAtTop)
			}
		case xml.EndElement:
			return xml.StartElement{}, errStreamEnd
		default:
			return xml.StartElement{}, fmt.Errorf("c2s: SASL: unexpected %T: %w", tok, stream.NotAuthorized)
		}
	}
}

// readPayload reads the text of the element start up to its end element.
// Child elements are not allowed in <auth/> and <response/>; their text is
// ignored. More than maxSASLPayload bytes ends the stream.
func (r *saslRun) readPayload(start xml.StartElement) ([]byte, error) {
	var text []byte
	for depth := 1; depth > 0; {
		tok, err := r.d.Token()
		if err != nil {
			return nil, fmt.Errorf("c2s: SASL: read <%s/>: %w", start.Name.Local, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				text = append(text, t...)
			}
		}
		if len(text) > maxSASLPayload {
			e := stream.PolicyViolation
			e.Text = append(e.Text, struct{ Lang, Value string }{"en", "SASL payload too large"})
			return nil, fmt.Errorf("c2s: SASL: %d-byte payload: %w", len(text), e)
		}
	}
	return bytes.TrimSpace(text), nil
}

// skipThen skips the rest of the current element and returns f.
func (r *saslRun) skipThen(f *saslFailure) error {
	if err := r.d.Skip(); err != nil {
		return fmt.Errorf("c2s: SASL: read: %w", err)
	}
	return f
}

// readResponse reads the client's answer to a challenge: the decoded text of
// a <response/>, or a failure for <abort/> and anything else in the SASL
// namespace.
func (r *saslRun) readResponse() ([]byte, error) {
	start, err := r.nextElement()
	if err != nil {
		return nil, err
	}
	switch start.Name.Local {
	case "response":
		payload, err := r.readPayload(start)
		if err != nil {
			return nil, err
		}
		return decodeSASLPayload(payload)
	case "abort":
		return nil, r.skipThen(&saslFailure{cond: condAborted, reason: "client aborted"})
	default:
		return nil, r.skipThen(&saslFailure{cond: condMalformed, reason: "expected <response/>, got <" + start.Name.Local + "/>"})
	}
}

// decodeSASLPayload decodes the base64 text of <auth/> or <response/>; "="
// stands for an empty message (RFC 6120 §6.4.2).
func decodeSASLPayload(payload []byte) ([]byte, error) {
	if len(payload) == 0 || string(payload) == "=" {
		return []byte{}, nil
	}
	data := make([]byte, base64.StdEncoding.DecodedLen(len(payload)))
	n, err := base64.StdEncoding.Strict().Decode(data, payload)
	if err != nil {
		return nil, &saslFailure{cond: condIncorrectEnc, reason: "invalid base64"}
	}
	return data[:n], nil
}

// write sends <local xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/> with data
// base64-encoded as its text; empty data gives an empty element.
func (r *saslRun) write(local string, data []byte) error {
	b := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(len(data)))
	b = append(b, '<')
	b = append(b, local...)
	b = append(b, " xmlns='"+nsSASL+"'"...)
	if len(data) == 0 {
		b = append(b, "/>"...)
	} else {
		b = append(b, '>')
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, "</"...)
		b = append(b, local...)
		b = append(b, '>')
	}
	return r.send(local, b)
}

// writeFailure sends <failure/> with f's condition and text (RFC 6120 §6.4.5).
func (r *saslRun) writeFailure(f *saslFailure) error {
	b := []byte("<failure xmlns='" + nsSASL + "'><" + f.cond + "/>")
	if f.text != "" {
		b = append(b, "<text xml:lang='en'>"...)
		b = xmlenc.AppendEscaped(b, []byte(f.text), false)
		b = append(b, "</text>"...)
	}
	return r.send("failure", append(b, "</failure>"...))
}

// send writes one SASL element.
func (r *saslRun) send(local string, b []byte) error {
	if _, err := r.g.Write(b); err != nil {
		return fmt.Errorf("c2s: SASL: write <%s/>: %w", local, err)
	}
	return nil
}

// saslAttempt is the state of one exchange, shared by the mechanism's steps.
type saslAttempt struct {
	run      *saslRun
	ctx      context.Context
	rawName  string  // the username as the client sent it
	user     jid.JID // bare; zero if rawName is not a valid localpart
	known    bool    // the store had a credential for user
	verified bool    // the proof or password checked out
	binding  scram.ChannelBindingType
}

// userName is how the attempt's user appears in logs and throttle keys.
func (a *saslAttempt) userName() string {
	if a.user.Localpart() != "" {
		return a.user.String()
	}
	// Not a JID: log a bounded, quoted-by-slog prefix of what was sent.
	const maxLogged = 64
	if len(a.rawName) > maxLogged {
		return a.rawName[:maxLogged] + "…"
	}
	return a.rawName
}

// failure returns a failure of this attempt, naming its user.
// failure describes a refused attempt. authn is true only when a
// credential was actually checked and found wrong: only those count for
// throttling. A channel-binding negotiation refused before any proof (a
// client that offers a binding type this connection lacks, or says "y"
// while -PLUS was offered) is a client limitation, not a guess, and such
// clients go on to the next mechanism at once.
func (a *saslAttempt) failure(cond string, authn bool, reason string) *saslFailure {
	return &saslFailure{cond: cond, authn: authn, user: a.userName(), account: a.account(), reason: reason}
}

// account is the bare JID tried, "" when the name is not a valid
// localpart: the throttle's account key.
func (a *saslAttempt) account() string {
	if a.user.Localpart() == "" {
		return ""
	}
	return a.user.String()
}

// setUser maps a SASL username to a bare JID at the served domain.
func (a *saslAttempt) setUser(name string) {
	a.rawName = name
	if name == "" {
		return
	}
	j, err := jid.New(name, a.run.cfg.Domain.Domainpart(), "")
	if err != nil || j.Localpart() == "" {
		return
	}
	a.user = j
}

// checkAuthzID fails unless the authorization identity the client asked for
// is empty or the authenticated user itself: xmppd has no proxy
// authorization.
func (a *saslAttempt) checkAuthzID(authzID string) *saslFailure {
	if authzID == "" {
		return nil
	}
	if j, err := jid.Parse(authzID); err == nil && a.user.Localpart() != "" && j.Equal(a.user) {
		return nil
	}
	return a.failure(condInvalidAuthzID, false, "authzid is not the user")
}

// plain returns the PLAIN mechanism (RFC 4616) checked against the store.
func (a *saslAttempt) plain() sasl.Mechanism {
	return sasl.Mechanism{
		Name:  mechPlain,
		Start: serverStart,
		Next: func(n *sasl.Negotiator, msg []byte, _ any) (bool, []byte, any, error) {
			if n.State()&sasl.StepMask != sasl.AuthTextSent {
				return false, nil, nil, sasl.ErrTooManySteps
			}
			authzID, rest, ok1 := bytes.Cut(msg, []byte{0})
			name, password, ok2 := bytes.Cut(rest, []byte{0})
			if !ok1 || !ok2 || bytes.IndexByte(password, 0) >= 0 {
				return false, nil, nil, a.failure(condMalformed, false, "PLAIN message is not authzid NUL authcid NUL passwd")
			}
			a.setUser(string(name))
			if f := a.throttled(a.account()); f != nil {
				return false, nil, nil, f
			}
			if a.user.Localpart() == "" {
				return false, nil, nil, a.failure(condNotAuthorized, true, "username is not a valid localpart")
			}
			if f := a.checkAuthzID(string(authzID)); f != nil {
				return false, nil, nil, f
			}
			if err := a.run.cfg.Store.VerifyPlain(a.ctx, a.user, string(password)); err != nil {
				if ctxErr := a.ctx.Err(); ctxErr != nil {
					return false, nil, nil, fmt.Errorf("c2s: SASL PLAIN: %w", ctxErr)
				}
				if !isAccountRefusal(err) {
					return false, nil, nil, a.storeFault(err)
				}
				a.storeAnswered()
				// The store's error may say "no such user"; only the log
				// at Debug sees it, the client gets the same answer as
				// for a wrong password.
				a.run.cfg.Log.Debug("c2s: PLAIN check failed", "user", a.userName(), "err", err)
				return false, nil, nil, a.failure(condNotAuthorized, true, "wrong password or unknown user")
			}
			a.storeAnswered()
			a.verified = true
			return false, nil, nil, nil
		},
	}
}

// serverStart is a mechanism's Start, which a server Negotiator never calls:
// sasl.NewServer begins at the step that reads the client's first message.
func serverStart(*sasl.Negotiator) (bool, []byte, any, error) {
	return false, nil, nil, sasl.ErrInvalidState
}

// errSCRAMLookup carries a lookup outcome through xdg-go's conversation,
// which returns the lookup's error as is.
type errSCRAMLookup struct {
	failure *saslFailure // a throttle refusal
	fatal   error        // the stream must end (context done)
}

// Error describes the outcome for logs.
func (e *errSCRAMLookup) Error() string {
	if e.fatal != nil {
		return e.fatal.Error()
	}
	return e.failure.Error()
}

// scram returns a SCRAM mechanism (RFC 5802, RFC 7677; -PLUS with RFC 5929 /
// RFC 9266 channel binding) whose steps run an xdg-go server conversation.
func (a *saslAttempt) scram(name string) sasl.Mechanism {
	base, plus := strings.CutSuffix(name, mechChannelSuffix)
	hash := scram.SHA256
	if base == mechSCRAMSHA1 {
		hash = scram.SHA1
	}
	return sasl.Mechanism{
		Name:  name,
		Start: serverStart,
		Next: func(n *sasl.Negotiator, msg []byte, data any) (bool, []byte, any, error) {
			switch n.State() & sasl.StepMask {
			case sasl.AuthTextSent:
				return a.scramFirst(base, plus, hash, msg)
			case sasl.ResponseSent:
				conv, _ := data.(*scram.ServerConversation)
				if conv == nil {
					return false, nil, nil, sasl.ErrInvalidState
				}
				return a.scramFinal(conv, msg)
			}
			return false, nil, nil, sasl.ErrTooManySteps
		},
	}
}

// scramFirst answers the client-first-message with the server-first-message.
func (a *saslAttempt) scramFirst(base string, plus bool, hash scram.HashGeneratorFcn, msg []byte) (bool, []byte, any, error) {
	// xdg-go accepts "p=" on any conversation that has a binding, and
	// knows one binding only, so the GS2 flag (RFC 5802 §6) is checked here
	// and the binding of the type the client asked for is chosen.
	flag, _, _ := strings.Cut(string(msg), ",")
	cbType, isP := strings.CutPrefix(flag, "p=")
	if !isP && flag != "n" && flag != "y" {
		return false, nil, nil, a.failure(condMalformed, false, "bad GS2 header")
	}
	srv, err := hash.NewServer(a.lookup(base))
	if err != nil {
		return false, nil, nil, fmt.Errorf("c2s: SCRAM server: %w", err)
	}
	var conv *scram.ServerConversation
	switch {
	case plus:
		bindings := a.run.channelBindings()
		i := slices.IndexFunc(bindings, func(cb scram.ChannelBinding) bool {
			return isP && string(cb.Type) == cbType
		})
		if i < 0 {
			return false, nil, nil, a.failure(condNotAuthorized, false, "-PLUS without a channel binding this connection offers: "+flag)
		}
		a.binding = bindings[i].Type
		conv = srv.NewConversationWithChannelBindingRequired(bindings[i])
	case isP:
		return false, nil, nil, a.failure(condNotAuthorized, false, "channel binding requested with "+base)
	case flag == "y" && len(a.run.offer.bindings) > 0:
		// -PLUS was offered: a client that says "y" (it would bind but
		// saw no -PLUS) had the list tampered with (RFC 5802 §6). xdg-go
		// tells from a binding with data that -PLUS was offered.
		bindings := a.run.channelBindings()
		if len(bindings) == 0 {
			return false, nil, nil, a.failure(condNotAuthorized, false, "channel binding: y while -PLUS was offered")
		}
		conv = srv.NewConversationWithChannelBinding(bindings[0])
	default:
		// For "n" xdg-go reads no binding, so none is derived: the
		// common login costs no exporter.
		conv = srv.NewConversation()
	}

	resp, err := conv.Step(string(msg))
	if err != nil {
		var le *errSCRAMLookup
		switch {
		case errors.As(err, &le) && le.fatal != nil:
			return false, nil, nil, le.fatal
		case errors.As(err, &le):
			return false, nil, nil, le.failure
		case resp == scram.ErrServerDoesSupportChannelBinding,
			resp == scram.ErrChannelBindingNotSupported,
			resp == scram.ErrUnsupportedChannelBindingType:
			return false, nil, nil, a.failure(condNotAuthorized, false, "channel binding: "+err.Error())
		}
		return false, nil, nil, a.failure(condMalformed, false, "bad client-first-message")
	}
	if f := a.checkAuthzID(conv.AuthzID()); f != nil {
		return false, nil, nil, f
	}
	return true, []byte(resp), conv, nil
}

// scramFinal checks the client-final-message's channel binding and proof.
func (a *saslAttempt) scramFinal(conv *scram.ServerConversation, msg []byte) (bool, []byte, any, error) {
	resp, err := conv.Step(string(msg))
	switch {
	case err != nil && resp == "":
		// xdg-go returns no server error for a message it cannot parse.
		return false, nil, nil, a.failure(condMalformed, false, "bad client-final-message")
	case resp == scram.ErrChannelBindingsDontMatch:
		// Checked before the proof, so the attempt learnt nothing about
		// the password: not a guess.
		return false, nil, nil, a.failure(condNotAuthorized, false, "channel binding data does not match")
	case err != nil || !conv.Valid() || !a.known:
		if !a.known {
			a.run.cfg.Log.Debug("c2s: SCRAM for unknown user", "user", a.userName())
		}
		if err != nil && resp != scram.ErrInvalidProof {
			// A nonce that does not match, say: a broken client.
			return false, nil, nil, a.failure(condNotAuthorized, false, "client-final-message refused: "+resp)
		}
		return false, nil, nil, a.failure(condNotAuthorized, true, "wrong password or unknown user")
	}
	a.verified = true
	return false, []byte(resp), nil, nil
}

// lookup returns xdg-go's credential lookup for mechanism base. Every name
// gets a credential, a fake one when the account or the name is unknown, so
// that the exchange runs to the proof and fails there exactly like a wrong
// password (RFC 5802 §5.1 leaves the choice to us; this one does not reveal
// which accounts exist).
func (a *saslAttempt) lookup(base string) scram.CredentialLookup {
	return func(name string) (scram.StoredCredentials, error) {
		a.setUser(name)
		if f := a.throttled(a.account()); f != nil {
			return scram.StoredCredentials{}, &errSCRAMLookup{failure: f}
		}
		if a.user.Localpart() == "" {
			return a.fakeCredential(base), nil
		}
		c, err := a.run.cfg.Store.Credential(a.ctx, a.user, base)
		if ctxErr := a.ctx.Err(); ctxErr != nil {
			return scram.StoredCredentials{}, &errSCRAMLookup{fatal: fmt.Errorf("c2s: SCRAM lookup: %w", ctxErr)}
		}
		if err != nil && !isAccountRefusal(err) {
			return scram.StoredCredentials{}, &errSCRAMLookup{failure: a.storeFault(err)}
		}
		a.storeAnswered()
		if err != nil || c.Iterations < 1 || len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 {
			if err == nil {
				a.run.cfg.Log.Error("c2s: unusable stored SCRAM credential", "user", a.userName(), "mechanism", base)
			}
			return a.fakeCredential(base), nil
		}
		a.known = true
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	}
}

// fakeCredential invents a credential for an unknown name: a salt that is
// stable for the name (HMAC under FakeSaltKey) and random keys no proof
// matches.
func (a *saslAttempt) fakeCredential(base string) scram.StoredCredentials {
	size := sha256.Size
	if base == mechSCRAMSHA1 {
		size = sha1.Size
	}
	salt := randomBytes(fakeSaltLen)
	if key := a.run.cfg.FakeSaltKey; len(key) > 0 {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(base))
		m.Write([]byte{0})
		// The normalised name when there is one, so that "Alice" and
		// "alice" get one salt, as they would share one account.
		if a.user.Localpart() != "" {
			m.Write([]byte(a.user.Localpart()))
		} else {
			m.Write([]byte(a.rawName))
		}
		salt = m.Sum(nil)[:fakeSaltLen]
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: cmp.Or(a.run.cfg.FakeIterations, fakeIterations)},
		StoredKey:  randomBytes(size),
		ServerKey:  randomBytes(size),
	}
}

// randomBytes returns n bytes from crypto/rand, which never fails (it
// crashes the program instead, since Go 1.24).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
