package caps

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// simple is XEP-0115 §5.2's example (Exodus).
const simple = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`

// complex is XEP-0115 §5.3's example (Psi, with a XEP-0128 form), its
// identities, features, fields and values out of order.
const complex = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>
    <field var='software_version'><value>0.11</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='os_version'><value>10.5.1</value></field>
  </x>
</query>`

func parse(t *testing.T, s string) Info {
	t.Helper()
	info, err := ParseInfo(decoder(s))
	if err != nil {
		t.Fatalf("ParseInfo: %v", err)
	}
	return info
}

func TestVerXEPExamples(t *testing.T) {
	for _, tc := range []struct {
		name, xml, s, ver string
	}{
		{"5.2 simple", simple,
			"client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<",
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"5.3 complex", complex,
			"client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<",
			"q07IKJEyjvHSyhy//CH0CxmKi8w="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := parse(t, tc.xml)
			s, err := VerString(info)
			if err != nil || s != tc.s {
				t.Errorf("VerString = %q, %v\nwant %q", s, err, tc.s)
			}
			ver, err := Ver("sha-1", info)
			if err != nil || ver != tc.ver {
				t.Errorf("Ver = %q, %v; want %q", ver, err, tc.ver)
			}
		})
	}
}

// TestVerString covers the rules the examples do not: character data
// (not escaped XML), forms ignored or refused (§5.4), other hashes.
func TestVerString(t *testing.T) {
	q := func(inner string) string {
		return "<query xmlns='http://jabber.org/protocol/disco#info'>" + inner + "</query>"
	}
	const id = "<identity category='client' type='pc'/>"
	for _, tc := range []struct {
		name, xml string
		want      string // "" with ill = true: ErrIllFormed
		ill       bool
	}{
		{"escaped character data counts unescaped", q(id + "<feature var='a&lt;b&amp;c'/>"), "client/pc//<a<b&c<", false},
		{"identity without name", q(id), "client/pc//<", false},
		{"form without FORM_TYPE ignored", q(id + "<x xmlns='jabber:x:data' type='result'><field var='a'><value>1</value></field></x>"), "client/pc//<", false},
		{"FORM_TYPE not hidden: form ignored", q(id + "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field><field var='a'><value>1</value></field></x>"), "client/pc//<", false},
		{"FORM_TYPE value twice, equal", q(id + "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value><value>urn:x</value></field><field var='a'><value>1</value></field></x>"), "client/pc//<urn:x<a<1<", false},
		{"forms sorted by FORM_TYPE", q(id + "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:b</value></field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>"), "client/pc//<urn:a<urn:b<", false},
		{"duplicate identity", q(id + id), "", true},
		{"duplicate feature", q(id + "<feature var='a'/><feature var='a'/>"), "", true},
		{"duplicate FORM_TYPE", q(id + "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>"), "", true},
		{"FORM_TYPE with two values", q(id + "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value><value>urn:b</value></field></x>"), "", true},
		{"too many features", q(id + strings.Repeat("<feature var='x'/>", maxFeatures+1)), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseInfo(decoder(tc.xml))
			var s string
			if err == nil {
				s, err = VerString(info)
			}
			if tc.ill {
				if !errors.Is(err, ErrIllFormed) {
					t.Errorf("got %q, %v; want ErrIllFormed", s, err)
				}
				return
			}
			if err != nil || s != tc.want {
				t.Errorf("got %q, %v; want %q", s, err, tc.want)
			}
		})
	}
}

func TestVerHashes(t *testing.T) {
	info := parse(t, simple)
	for _, h := range []string{"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"} {
		v, err := Ver(h, info)
		if err != nil || v == "" {
			t.Errorf("%s: %q, %v", h, v, err)
		}
	}
	// sha-256 of §5.2's string (computed with Python's hashlib).
	if v, _ := Ver("sha-256", info); v != "Wr6IGEKhx6b9627gBmi/cCmpxXBc/GYq5zWuYfWGWoc=" {
		t.Errorf("sha-256 = %q", v)
	}
	for _, h := range []string{"md5", "", "SHA-1x"} {
		if Verifiable(h) {
			t.Errorf("%q verifiable", h)
		}
		if _, err := Ver(h, info); err == nil {
			t.Errorf("Ver(%q) did not fail", h)
		}
	}
}

func TestStreamFeature(t *testing.T) {
	got := string(StreamFeature("a+b/c="))
	want := "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://xmppd.dev' ver='a+b/c='/>"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestWantsAllocs holds the lookup the PEP fan-out makes per recipient to
// no allocation for usual resource lengths.
func TestWantsAllocs(t *testing.T) {
	s := New(nil, Options{}, nil)
	full := jid.MustParse("alice@example.org/Conversations.x1Yz")
	s.sessions[keyOf(full)] = &session{full: full, known: newEntry([]string{"urn:xmpp:avatar:metadata+notify"})}
	if !s.Wants(full, "urn:xmpp:avatar:metadata") || s.Wants(full, "urn:xmpp:avatar:data") {
		t.Fatal("Wants is wrong")
	}
	if s.Wants(jid.MustParse("alice@other.example/Conversations.x1Yz"), "urn:xmpp:avatar:metadata") {
		t.Error("Wants matched another domain's JID")
	}
	if n := testing.AllocsPerRun(100, func() { s.Wants(full, "urn:xmpp:avatar:metadata") }); n != 0 {
		t.Errorf("Wants allocates %v times", n)
	}
}

func TestLRU(t *testing.T) {
	c := newLRU(2)
	e := newEntry(nil)
	a, b, d := capsKey{ver: "a"}, capsKey{ver: "b"}, capsKey{ver: "d"}
	c.put(a, e)
	c.put(b, e)
	c.get(a) // b is now the least recent
	c.put(d, e)
	if c.get(b) != nil || c.get(a) == nil || c.get(d) == nil || c.len() != 2 {
		t.Errorf("after evicting: a %v b %v d %v len %d", c.get(a) != nil, c.get(b) != nil, c.get(d) != nil, c.len())
	}
}

func decoder(s string) *xml.Decoder { return xml.NewDecoder(strings.NewReader(s)) }
