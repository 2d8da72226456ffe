// Package openfire reads an Openfire server's database — PostgreSQL,
// MySQL/MariaDB, or the embedded HSQLDB's openfire.script — into
// migration.Data: users with their passwords or SCRAM keys, rosters,
// offline messages, vCards, private XML, shared roster groups and MUC rooms
// with their affiliations, reserved nicknames and logs.
//
// Facts about Openfire's schema and encryption come from Openfire's own
// source (distribution/src/database, org.jivesoftware.util.Blowfish,
// AuthFactory, DefaultAuthProvider, JiveGlobals, MUCPersistenceManager).
package openfire

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strconv"
	"strings"
	"time"

	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/storage"
)

// Options says where the Openfire data is and what it becomes.
type Options struct {
	// DSN is the Openfire database: postgres://user:pass@host:5432/openfire
	// (or lib/pq's key=value form) for PostgreSQL, or
	// mysql://user:pass@tcp(host:3306)/openfire for MySQL and MariaDB (after
	// mysql://, a github.com/go-sql-driver/mysql DSN).
	DSN string
	// HSQLDBScript is the path of the embedded database's
	// embedded-db/openfire.script, instead of DSN. Openfire must have been
	// stopped first: it writes the script at shutdown (before, recent
	// changes are only in openfire.log).
	HSQLDBScript string
	// SecurityXML is the path of Openfire's conf/security.xml. It holds
	// the PBKDF2 salt that encrypted passwords need on installs that use
	// PBKDF2 (Openfire 5.1.0 and later, after the switch in the admin
	// console; without it only SHA-1-keyed passwords decrypt), and the
	// property encryptor's algorithm and key, needed when passwordKey or
	// xmpp.domain is stored encrypted.
	SecurityXML string
	// Domain is xmppd's domain. Openfire's xmpp.domain must equal it unless
	// RewriteDomain. Empty: Openfire's domain is taken as it is.
	Domain string
	// RewriteDomain moves every JID of Openfire's domain and of its
	// subdomains (conference.<domain>) to Domain.
	RewriteDomain bool
}

// Schema versions (ofVersion, name 'openfire') this reader knows: 22 is
// Openfire 4.0.0, 40 the newest (SCRAM keys in ofUserScram).
const (
	minVersion = 22
	maxVersion = 40
)

// providers are Openfire's pluggable stores (UserManager, AuthFactory,
// GroupManager, VCardManager) and their defaults, which keep their data in
// the tables read here.
var providers = []struct{ property, def, what string }{
	{"provider.user.className", "org.jivesoftware.openfire.user.DefaultUserProvider", "the users"},
	{"provider.auth.className", "org.jivesoftware.openfire.auth.DefaultAuthProvider", "the passwords"},
	{"provider.group.className", "org.jivesoftware.openfire.group.DefaultGroupProvider", "the groups"},
	{"provider.vcard.className", "org.jivesoftware.openfire.vcard.DefaultVCardProvider", "the vCards"},
}

// Read reads everything the import carries from an Openfire database.
func Read(ctx context.Context, opts Options) (*migration.Data, error) {
	var src source
	switch {
	case opts.DSN != "" && opts.HSQLDBScript != "":
		return nil, errors.New("openfire: give a DSN or an HSQLDB script, not both")
	case opts.DSN != "":
		s, err := openSQL(ctx, opts.DSN)
		if err != nil {
			return nil, err
		}
		src = s
	case opts.HSQLDBScript != "":
		s, err := readScript(opts.HSQLDBScript)
		if err != nil {
			return nil, err
		}
		src = s
	default:
		return nil, errors.New("openfire: no database: give a DSN or an HSQLDB script")
	}
	defer src.close()
	var sec *security
	if opts.SecurityXML != "" {
		s, err := readSecurityXML(opts.SecurityXML)
		if err != nil {
			return nil, fmt.Errorf("openfire: %w", err)
		}
		sec = s
	}
	r := &reader{src: src, sec: sec, opts: opts}
	return r.read(ctx)
}

type reader struct {
	src    source
	sec    *security
	opts   Options
	tables map[string]map[string]bool
	props  map[string]string
	// domain is Openfire's xmpp.domain; rw moves it to the target.
	domain string
	rw     rewriter
	data   *migration.Data
	users  map[string]*migration.User // by Openfire username
}

func (r *reader) has(table string, cols ...string) bool {
	t := r.tables[table]
	if t == nil {
		return false
	}
	for _, c := range cols {
		if !t[c] {
			return false
		}
	}
	return true
}

// need fails unless table has cols: Openfire's schema at a known version
// always has them, so a missing one means a damaged or foreign database.
func (r *reader) need(table string, cols ...string) error {
	if r.tables[table] == nil {
		return fmt.Errorf("openfire: table %s is missing", table)
	}
	for _, c := range cols {
		if !r.tables[table][c] {
			return fmt.Errorf("openfire: table %s has no column %s", table, c)
		}
	}
	return nil
}

func (r *reader) skip(format string, args ...any) {
	r.data.Skipped = append(r.data.Skipped, fmt.Sprintf(format, args...))
}

func (r *reader) read(ctx context.Context) (*migration.Data, error) {
	var err error
	if r.tables, err = r.src.schema(ctx); err != nil {
		return nil, err
	}
	if err := r.version(ctx); err != nil {
		return nil, err
	}
	if err := r.properties(ctx); err != nil {
		return nil, err
	}
	if err := r.checkDomain(); err != nil {
		return nil, err
	}
	r.data = &migration.Data{Domain: r.rw.to}
	r.users = map[string]*migration.User{}
	// Users, passwords, groups or vCards served from elsewhere (LDAP, a
	// foreign database) are not in the tables read here: say so.
	for _, p := range providers {
		if v := strings.TrimSpace(r.props[p.property]); v != "" && v != p.def {
			r.skip("Openfire's %s is %s: %s it serves are not in Openfire's own tables and are not carried", p.property, v, p.what)
		}
	}
	steps := []func(context.Context) error{r.readUsers, r.readRosters, r.readOffline, r.readVCards, r.readPrivate, r.readPEPPrivate, r.readSharedGroups, r.readRooms}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(r.users))
	for n := range r.users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.data.Users = append(r.data.Users, *r.users[n])
	}
	return r.data, nil
}

func (r *reader) version(ctx context.Context) error {
	if err := r.need("ofversion", "name", "version"); err != nil {
		return fmt.Errorf("%w (is this an Openfire database?)", err)
	}
	v := -1
	err := r.src.scan(ctx, "ofversion", []string{"name", "version"}, func(vals []*string) error {
		if vals[0] != nil && strings.EqualFold(*vals[0], "openfire") && vals[1] != nil {
			n, err := strconv.Atoi(strings.TrimSpace(*vals[1]))
			if err != nil {
				return fmt.Errorf("openfire: ofVersion: version %q is not a number", *vals[1])
			}
			v = n
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case v < 0:
		return errors.New("openfire: ofVersion has no row for 'openfire' (is this an Openfire database?)")
	case v < minVersion:
		return fmt.Errorf("openfire: schema version %d is older than Openfire 4.0 (version %d): upgrade Openfire to 4.0 or later first", v, minVersion)
	case v > maxVersion:
		return fmt.Errorf("openfire: unknown schema version %d (the newest this xmppd knows is %d): its layout is not known here", v, maxVersion)
	}
	return nil
}

func (r *reader) properties(ctx context.Context) error {
	if err := r.need("ofproperty", "name", "propvalue"); err != nil {
		return err
	}
	cols := []string{"name", "propvalue", "encrypted", "iv"}
	encrypted, withIV := r.has("ofproperty", "encrypted"), r.has("ofproperty", "iv")
	switch {
	case !encrypted:
		cols = cols[:2]
	case !withIV:
		cols = cols[:3]
	}
	r.props = map[string]string{}
	return r.src.scan(ctx, "ofproperty", cols, func(vals []*string) error {
		if vals[0] == nil || vals[1] == nil {
			return nil
		}
		name, v := *vals[0], *vals[1]
		if encrypted && vals[2] != nil && strings.TrimSpace(*vals[2]) == "1" {
			if name != "xmpp.domain" && name != "passwordKey" {
				return nil
			}
			iv := ""
			if withIV {
				iv = str(vals[3])
			}
			dv, err := r.decryptProperty(name, v, iv)
			if err != nil {
				return err
			}
			v = dv
		}
		r.props[name] = v
		return nil
	})
}

// decryptProperty decrypts an ofProperty value that Openfire encrypted
// (encrypted = 1) with the property encryptor security.xml describes
// (property.go).
func (r *reader) decryptProperty(name, v, ivB64 string) (string, error) {
	fail := func(why string) (string, error) {
		return "", fmt.Errorf("openfire: ofProperty %s is stored encrypted and %s; give Openfire's conf/security.xml, or in Openfire's admin console (Server Manager, System Properties) turn its encryption off, then import again", name, why)
	}
	if r.sec == nil {
		return fail("no security.xml was given")
	}
	key := ""
	if r.sec.KeyCurrent != "" {
		k, err := deobfuscate(r.sec.KeyCurrent)
		if err != nil {
			return fail("security.xml's " + err.Error())
		}
		key = k
	}
	switch {
	case strings.EqualFold(r.sec.Algorithm, "AES"):
		var iv []byte
		if strings.TrimSpace(ivB64) != "" {
			b, err := b64decode(ivB64)
			if err != nil || len(b) != 16 {
				return fail("its iv is not 16 bytes of base64")
			}
			iv = b
		}
		k := legacyKey
		if key != "" {
			k = aesKey(key)
		}
		if p, err := aesDecrypt(k, v, iv); err == nil {
			return p, nil
		}
	case r.sec.Algorithm == "" || strings.EqualFold(r.sec.Algorithm, "Blowfish"):
		if key == "" {
			key = defaultBlowfishKey
		}
		for _, k := range r.keys(key) {
			if p, err := decryptPassword(k.key, v); err == nil {
				return p, nil
			}
		}
	default:
		return fail("security.xml's encrypt.algorithm " + r.sec.Algorithm + " is unknown")
	}
	return fail("does not decrypt with security.xml's algorithm and key")
}

// blowfishKey is one candidate key for Openfire's Blowfish.
type blowfishKey struct {
	kdf string // "sha1" or "pbkdf2"
	key []byte
}

// keys returns the candidate keys derived from passphrase, security.xml's
// configured KDF first: a database switched from SHA-1 to PBKDF2 keeps
// passwords encrypted before the switch under the SHA-1 key.
func (r *reader) keys(passphrase string) []blowfishKey {
	ks := []blowfishKey{{"sha1", sha1Key(passphrase)}}
	if r.sec != nil && len(r.sec.Salt) >= 16 {
		if k, err := pbkdf2Key(passphrase, r.sec.Salt); err == nil {
			p := blowfishKey{"pbkdf2", k}
			if r.sec.KDF == "pbkdf2" {
				ks = []blowfishKey{p, ks[0]}
			} else {
				ks = append(ks, p)
			}
		}
	}
	return ks
}

func (r *reader) checkDomain() error {
	od := strings.ToLower(strings.TrimSpace(r.props["xmpp.domain"]))
	if od == "" {
		return errors.New("openfire: ofProperty has no xmpp.domain")
	}
	r.domain = od
	target := strings.ToLower(strings.TrimSpace(r.opts.Domain))
	switch {
	case target == "" || target == od:
		r.rw = rewriter{from: od, to: od}
	case r.opts.RewriteDomain:
		r.rw = rewriter{from: od, to: target}
	default:
		return fmt.Errorf("openfire: Openfire's domain %s is not xmppd's domain %s (rewrite every JID to %s with the rewrite-domain option)", od, target, target)
	}
	return nil
}

// bare returns the bare JID of a local username.
func (r *reader) bare(username string) string { return username + "@" + r.rw.to }

// userJID turns an Openfire member reference (a username, or a JID for a
// remote user) into a bare JID.
func (r *reader) userJID(ref string) string {
	if strings.Contains(ref, "@") {
		j := r.rw.jid(ref)
		if i := strings.IndexByte(j, '/'); i >= 0 {
			j = j[:i]
		}
		return j
	}
	return r.bare(ref)
}

// millis parses Openfire's dates: milliseconds since 1970 as a zero-padded
// string ('001234567890123').
func millis(v *string) time.Time {
	if v == nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(*v), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func str(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

func num(v *string) int {
	if v == nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(*v))
	return n
}

func flag(v *string) bool {
	if v == nil {
		return false
	}
	s := strings.TrimSpace(*v)
	return s == "1" || strings.EqualFold(s, "true")
}

// scramHash returns the hash of a SCRAM mechanism Openfire may store.
func scramHash(mech string) func() hash.Hash {
	switch mech {
	case "SCRAM-SHA-1":
		return sha1.New
	case "SCRAM-SHA-256":
		return sha256.New
	}
	return nil
}

// verifies reports whether password yields c's StoredKey (RFC 5802; as
// Openfire computes it, over the password's UTF-8 bytes).
func verifies(password string, c storage.Credential) bool {
	h := scramHash(c.Mechanism)
	if h == nil || c.Iterations <= 0 {
		return false
	}
	salted, err := pbkdf2.Key(h, password, c.Salt, c.Iterations, h().Size())
	if err != nil {
		return false
	}
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	sum := h()
	sum.Write(mac.Sum(nil))
	return hmac.Equal(sum.Sum(nil), c.StoredKey)
}

// scramCredential decodes a SCRAM row (base64 columns, as
// DefaultAuthProvider writes them).
func scramCredential(mech string, iterations, salt, storedKey, serverKey *string) (storage.Credential, error) {
	c := storage.Credential{Mechanism: strings.ToUpper(strings.TrimSpace(mech))}
	if scramHash(c.Mechanism) == nil {
		return c, fmt.Errorf("mechanism %s is not supported", mech)
	}
	if iterations == nil || salt == nil || storedKey == nil || serverKey == nil {
		return c, errors.New("incomplete")
	}
	c.Iterations = num(iterations)
	if c.Iterations <= 0 {
		return c, fmt.Errorf("iterations %q", *iterations)
	}
	var err error
	for _, f := range []struct {
		dst *[]byte
		v   string
	}{{&c.Salt, *salt}, {&c.StoredKey, *storedKey}, {&c.ServerKey, *serverKey}} {
		if *f.dst, err = base64.StdEncoding.DecodeString(strings.TrimSpace(f.v)); err != nil {
			return c, fmt.Errorf("not base64: %w", err)
		}
	}
	if n := scramHash(c.Mechanism)().Size(); len(c.StoredKey) != n || len(c.ServerKey) != n || len(c.Salt) == 0 {
		return c, errors.New("keys of the wrong length")
	}
	return c, nil
}
