package openfire

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xmppd.dev/xmppd/migration"
)

// set changes column col of the rows of table whose column key is keyVal.
func (f *fixture) set(table, key string, keyVal any, col string, val any) {
	t := f.table(table)
	ki, ci := -1, -1
	for i, c := range t.cols {
		if c.name == key {
			ki = i
		}
		if c.name == col {
			ci = i
		}
	}
	if ki < 0 || ci < 0 {
		panic("no column " + key + " or " + col)
	}
	for _, row := range t.rows {
		if row[ki] == keyVal {
			row[ci] = val
		}
	}
}

func readErr(t *testing.T, opts Options, wantIn ...string) {
	t.Helper()
	d, err := Read(context.Background(), opts)
	if err == nil {
		t.Fatalf("Read succeeded (%d users), want an error containing %q", len(d.Users), wantIn)
	}
	for _, s := range wantIn {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestSchemaVersions(t *testing.T) {
	for _, tc := range []struct {
		version int
		want    []string
	}{
		{41, []string{"unknown schema version 41"}},
		{1000, []string{"unknown schema version 1000"}},
		{21, []string{"schema version 21", "older than Openfire 4.0"}},
	} {
		f := build(t, 40, passwordKey)
		f.set("ofVersion", "name", "openfire", "version", tc.version)
		readErr(t, Options{HSQLDBScript: f.writeScript(t), Domain: ofDomain}, tc.want...)
	}
	f := build(t, 40, passwordKey)
	f.table("ofVersion").rows = nil
	readErr(t, Options{HSQLDBScript: f.writeScript(t), Domain: ofDomain}, "ofVersion has no row")
}

// TestUnknownVersionPostgres: the same refusal from a live database.
func TestUnknownVersionPostgres(t *testing.T) {
	f := build(t, 40, passwordKey)
	f.set("ofVersion", "name", "openfire", "version", 41)
	readErr(t, Options{DSN: postgresDSN(t, f), Domain: ofDomain}, "unknown schema version 41")
}

func TestWrongPasswordKey(t *testing.T) {
	sec := securityXML(t, "pbkdf2", blowfishSalt)
	for _, v := range layouts {
		f := build(t, v, passwordKey)
		f.set("ofProperty", "name", "passwordKey", "propValue", "not-the-key")
		// erin has no SCRAM keys: her account would be lost.
		readErr(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: sec, Domain: ofDomain},
			"no encrypted password can be recovered", "3 users, 1 of them without SCRAM keys", "passwordKey")

		f.table("ofProperty").rows = f.table("ofProperty").rows[:1] // xmpp.domain only
		readErr(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: sec, Domain: ofDomain}, "ofProperty has no passwordKey")
	}
	// With the wrong salt, the PBKDF2 user (who has SCRAM keys) keeps them.
	f := build(t, 40, passwordKey)
	d := read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXML(t, "pbkdf2", []byte("another salt of 32 bytes........")), Domain: ofDomain})
	bob := user(t, d, "bob")
	if bob.Password != "" || len(bob.Credentials) != 1 || bob.PasswordProblem != "" {
		t.Errorf("bob = %+v, want his SCRAM-SHA-1 key alone, no problem", bob)
	}
	if !strings.Contains(strings.Join(d.Skipped, "\n"), "user bob: encryptedPassword not recovered") {
		t.Errorf("Skipped does not report bob: %q", d.Skipped)
	}
	if a := user(t, d, "alice"); a.Password != "alice-pässword" {
		t.Errorf("alice's password = %q", a.Password)
	}
}

// TestMissingSecurityXML: without security.xml, passwords encrypted under
// the PBKDF2 key are lost where no SCRAM keys stand in, and the user's
// problem says why.
func TestMissingSecurityXML(t *testing.T) {
	f := build(t, 38, passwordKey)
	for _, c := range []string{"storedKey", "serverKey", "salt", "iterations"} {
		f.set("ofUser", "username", "bob", c, nil)
	}
	d := read(t, Options{HSQLDBScript: f.writeScript(t), Domain: ofDomain})
	bob := user(t, d, "bob")
	if bob.Password != "" || len(bob.Credentials) != 0 || !strings.Contains(bob.PasswordProblem, "no security.xml given") {
		t.Errorf("bob = %+v, want a PasswordProblem naming security.xml", bob)
	}
	for _, n := range []string{"alice", "carol", "erin"} {
		if u := user(t, d, n); u.Password == "" || u.PasswordProblem != "" {
			t.Errorf("%s = %+v, want the password", n, u)
		}
	}
	// Only PBKDF2-encrypted passwords and no SCRAM keys: nothing decrypts.
	f = build(t, 40, passwordKey)
	f.table("ofUserScram").rows = nil
	f.set("ofUser", "username", "alice", "encryptedPassword", nil)
	f.set("ofUser", "username", "erin", "encryptedPassword", nil)
	readErr(t, Options{HSQLDBScript: f.writeScript(t), Domain: ofDomain}, "no encrypted password can be recovered", "no security.xml given")
}

// TestKDFSHA1WithSalt: security.xml still says sha1 but holds a salt (the
// switch was begun): both keys are tried, every password is recovered.
func TestKDFSHA1WithSalt(t *testing.T) {
	f := build(t, 40, passwordKey)
	check(t, read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXML(t, "sha1", blowfishSalt), Domain: ofDomain}), want(40, ofDomain))
}

// TestEncryptedPasswordKey: the passwordKey property itself stored
// encrypted (ofProperty.encrypted = 1) under Openfire's default property key.
func TestEncryptedPasswordKey(t *testing.T) {
	f := build(t, 40, passwordKey)
	enc, err := encryptPassword(sha1Key("Blowfish-CBC"), 77, passwordKey)
	if err != nil {
		t.Fatal(err)
	}
	f.set("ofProperty", "name", "passwordKey", "propValue", enc)
	f.set("ofProperty", "name", "passwordKey", "encrypted", 1)
	check(t, read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXML(t, "sha1", blowfishSalt), Domain: ofDomain}), want(40, ofDomain))
	readErr(t, Options{HSQLDBScript: f.writeScript(t), Domain: ofDomain}, "passwordKey is stored encrypted", "no security.xml")
}

func TestDomain(t *testing.T) {
	f := build(t, 40, passwordKey)
	p, sec := f.writeScript(t), securityXML(t, "pbkdf2", blowfishSalt)
	readErr(t, Options{HSQLDBScript: p, SecurityXML: sec, Domain: "new.example"}, "of.example", "new.example", "rewrite")
	for _, v := range layouts {
		t.Run(name(v), func(t *testing.T) {
			p := build(t, v, passwordKey).writeScript(t)
			check(t, read(t, Options{HSQLDBScript: p, SecurityXML: sec, Domain: "New.Example", RewriteDomain: true}), want(v, "new.example"))
		})
	}
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresDSN(t, build(t, 38, passwordKey))
		readErr(t, Options{DSN: dsn, SecurityXML: sec, Domain: "new.example"}, "is not xmppd's domain")
		check(t, read(t, Options{DSN: dsn, SecurityXML: sec, Domain: "new.example", RewriteDomain: true}), want(38, "new.example"))
	})
}

func TestOptions(t *testing.T) {
	readErr(t, Options{}, "no database")
	readErr(t, Options{DSN: "postgres://x", HSQLDBScript: "y"}, "not both")
	readErr(t, Options{DSN: "sqlite://file"}, "want postgres://")
	readErr(t, Options{DSN: "mysql://root:secret@tcp(127.0.0.1:1)/nowhere"}, "connect")
	readErr(t, Options{HSQLDBScript: filepath.Join(t.TempDir(), "missing.script")}, "no such file")
	bad := filepath.Join(t.TempDir(), "security.xml")
	_ = os.WriteFile(bad, []byte("<security><encrypt><blowfish><kdf>pbkdf2</kdf></blowfish></encrypt></security>"), 0o600)
	readErr(t, Options{HSQLDBScript: build(t, 40, passwordKey).writeScript(t), SecurityXML: bad}, "salt is missing")
	d, err := Read(context.Background(), Options{DSN: "mysql://root:secret@tcp(127.0.0.1:1)/nowhere"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Read = %v, %v: want an error without the password", d, err)
	}
}

func user(t *testing.T, d *migration.Data, name string) migration.User {
	t.Helper()
	for _, u := range d.Users {
		if u.Username == name {
			return u
		}
	}
	t.Fatalf("no user %s", name)
	return migration.User{}
}

// TestPlainAndEncrypted: with both columns set, encryptedPassword wins, as
// in Openfire's checkPassword; plainPassword stands in when it does not
// decrypt.
func TestPlainAndEncrypted(t *testing.T) {
	f := build(t, 40, passwordKey)
	f.set("ofUser", "username", "erin", "plainPassword", "stale-plain")
	f.set("ofUser", "username", "carol", "encryptedPassword", "00112233445566778899aabbccddeeff")
	d := read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain})
	if u := user(t, d, "erin"); u.Password != "erin-pw" {
		t.Errorf("erin's password = %q, want the decrypted one", u.Password)
	}
	if u := user(t, d, "carol"); u.Password != "carol-pw" || u.PasswordProblem != "" {
		t.Errorf("carol = %+v, want her plainPassword", u)
	}
	if !strings.Contains(strings.Join(d.Skipped, "\n"), "user carol: encryptedPassword does not decrypt; plainPassword kept") {
		t.Errorf("Skipped = %q", d.Skipped)
	}
}

// TestProviders: an Openfire serving users from LDAP says so.
func TestProviders(t *testing.T) {
	f := build(t, 40, passwordKey)
	f.insert("ofProperty", map[string]any{"name": "provider.user.className", "propValue": "org.jivesoftware.openfire.ldap.LdapUserProvider"})
	f.insert("ofProperty", map[string]any{"name": "provider.group.className", "propValue": "org.jivesoftware.openfire.group.DefaultGroupProvider"})
	d := read(t, Options{HSQLDBScript: f.writeScript(t), SecurityXML: securityXML(t, "pbkdf2", blowfishSalt), Domain: ofDomain})
	all := strings.Join(d.Skipped, "\n")
	if !strings.Contains(all, "provider.user.className is org.jivesoftware.openfire.ldap.LdapUserProvider: the users it serves") || strings.Contains(all, "provider.group") {
		t.Errorf("Skipped = %q", d.Skipped)
	}
}
