package auth_test

import (
	"errors"
	"strings"
	"testing"

	"xmppd.dev/xmppd/auth"
)

func TestNormalizeJID(t *testing.T) {
	valid := []struct{ in, want string }{
		0: {"alice@localhost", "alice@localhost"},
		1: {"Alice@LocalHost", "alice@localhost"},
		2: {"alice@example.org.", "alice@example.org"}, // trailing dot stripped (RFC 7622 §3.2)
		3: {"ÅSA@example.org", "åsa@example.org"},
		4: {"alice@[::1]", "alice@[::1]"},
		5: {strings.Repeat("a", 1023) + "@localhost", strings.Repeat("a", 1023) + "@localhost"},
	}
	for i, c := range valid {
		j, err := auth.NormalizeJID(c.in)
		if err != nil {
			t.Errorf("%d: NormalizeJID(%q): %v", i, c.in, err)
			continue
		}
		if j.String() != c.want {
			t.Errorf("%d: NormalizeJID(%q) = %q, want %q", i, c.in, j, c.want)
		}
	}

	invalid := []struct {
		name, in, why string // why: a word the message must contain
	}{
		{"empty", "", "domainpart"},
		{"no localpart", "localhost", "no localpart"},
		{"empty localpart", "@localhost", "localpart"},
		{"resource", "alice@localhost/phone", "resourcepart"},
		{"empty resource", "alice@localhost/", "resourcepart"},
		{"space", "al ice@localhost", "disallowed"},
		{"forbidden char", "a<b@localhost", "forbidden"},
		{"control char", "al\x00ice@localhost", "disallowed"},
		{"invalid utf8", "al\xffice@localhost", "UTF-8"},
		{"localpart too long", strings.Repeat("a", 1024) + "@localhost", "1024"},
		{"domain too long", "alice@" + strings.Repeat("b", 1024), "domainpart"},
		{"two at signs", "a@b@c", "idna"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			j, err := auth.NormalizeJID(c.in)
			if err == nil {
				t.Fatalf("NormalizeJID(%q) = %q, want an error", c.in, j)
			}
			if !errors.Is(err, auth.ErrInvalidJID) {
				t.Errorf("err = %v, does not wrap ErrInvalidJID", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `auth: invalid JID "`) || !strings.Contains(msg, c.why) {
				t.Errorf("err = %q, want it to quote the input and contain %q", msg, c.why)
			}
			t.Log(msg)
			if len(msg) > 300 {
				t.Errorf("message is %d bytes long; the input should be cut", len(msg))
			}
		})
	}
}

// FuzzNormalizeJID checks that whatever NormalizeJID accepts is a bare
// account JID in canonical form: normalising it again changes nothing.
func FuzzNormalizeJID(f *testing.F) {
	for _, s := range []string{"alice@localhost", "Alice@LocalHost.", "a@b/c", "localhost", "ÅSA@example.org", "a@[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := auth.NormalizeJID(s)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidJID) {
				t.Errorf("NormalizeJID(%q): error %v does not wrap ErrInvalidJID", s, err)
			}
			return
		}
		if j.Localpart() == "" || j.Resourcepart() != "" {
			t.Errorf("NormalizeJID(%q) = %q, not a bare account JID", s, j)
		}
		again, err := auth.NormalizeJID(j.String())
		if err != nil || !again.Equal(j) {
			t.Errorf("NormalizeJID(%q) = %q, but normalising that gives %q, %v", s, j, again, err)
		}
	})
}
