package main

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

const testStream = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0'>` +
	`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>` +
	"\n  " +
	`<message from="a@b/c" to='d@e/f' type="chat" note='x>y "q"'><body>xbm:1:2:xx</body></message>` +
	`<presence/>` +
	`<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user1@localhost/bench&amp;1</jid></bind></iq>` +
	`<!-- a comment --><r a='/>'/>` +
	`</stream:stream>`

var testElements = []string{
	`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>`,
	`<message from="a@b/c" to='d@e/f' type="chat" note='x>y "q"'><body>xbm:1:2:xx</body></message>`,
	`<presence/>`,
	`<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user1@localhost/bench&amp;1</jid></bind></iq>`,
	`<r a='/>'/>`,
}

func TestSplitter(t *testing.T) {
	for name, r := range map[string]func() *splitter{
		"whole":    func() *splitter { return newSplitter(strings.NewReader(testStream), 4096) },
		"one byte": func() *splitter { return newSplitter(iotest.OneByteReader(strings.NewReader(testStream)), 8) },
		"half":     func() *splitter { return newSplitter(iotest.HalfReader(strings.NewReader(testStream)), 16) },
	} {
		t.Run(name, func(t *testing.T) {
			sp := r()
			for i, want := range testElements {
				el, err := sp.next()
				if err != nil {
					t.Fatalf("%d: %v", i, err)
				}
				if string(el) != want {
					t.Fatalf("%d: got\n%s\nwant\n%s", i, el, want)
				}
			}
			if _, err := sp.next(); !errors.Is(err, errStreamClosed) {
				t.Fatalf("after the last element: %v, want errStreamClosed", err)
			}
		})
	}
}

func TestSplitterRestart(t *testing.T) {
	// After <success/> the server opens a new stream on the same bytes.
	in := `<stream:stream version='1.0'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1h</success>` +
		`<stream:stream version='1.0' id='2'><stream:features><bind/></stream:features>`
	sp := newSplitter(strings.NewReader(in), 64)
	el, err := sp.next()
	if err != nil || string(localName(el)) != "success" {
		t.Fatalf("first: %s, %v", el, err)
	}
	sp.restart(nil)
	el, err = sp.next()
	if err != nil || string(el) != "<stream:features><bind/></stream:features>" {
		t.Fatalf("after restart: %s, %v", el, err)
	}
}

func TestSplitterLimit(t *testing.T) {
	in := "<stream:stream><message><body>" + strings.Repeat("x", maxElement) + "</body></message>"
	if _, err := newSplitter(strings.NewReader(in), 1024).next(); err == nil || errors.Is(err, errStreamClosed) {
		t.Fatalf("oversized element: %v", err)
	}
}

func TestElementHelpers(t *testing.T) {
	el := []byte(testElements[1])
	for key, want := range map[string]string{"from": "a@b/c", "to": "d@e/f", "type": "chat", "note": `x>y "q"`} {
		if v, ok := attr(el, key); !ok || string(v) != want {
			t.Errorf("attr %s = %q, %v; want %q", key, v, ok, want)
		}
	}
	if _, ok := attr(el, "id"); ok {
		t.Error("attr id found in an element without one")
	}
	if _, ok := attr([]byte(`<iq xid='1'/>`), "id"); ok {
		t.Error("attr id matched xid")
	}
	if v, ok := attr([]byte(`<iq type='get' id='a'><x id='b'/></iq>`), "id"); !ok || string(v) != "a" {
		t.Errorf("attr id = %q, want the start tag's", v)
	}
	if got := string(name([]byte(testElements[0]))); got != "stream:features" {
		t.Errorf("name = %q", got)
	}
	if got := string(localName([]byte(testElements[0]))); got != "features" {
		t.Errorf("localName = %q", got)
	}
	if got := string(name([]byte(`<presence/>`))); got != "presence" {
		t.Errorf("name of an empty element = %q", got)
	}
	j, ok := childText([]byte(testElements[3]), "jid")
	if !ok || unescape(j) != "user1@localhost/bench&1" {
		t.Errorf("childText jid = %q, %v", j, ok)
	}
	if got := string(elemText([]byte(`<challenge xmlns='x'> cj1h </challenge>`))); got != "cj1h" {
		t.Errorf("elemText = %q", got)
	}
	if got := escapeAttr(`a'b<c&d"`); got != "a&apos;b&lt;c&amp;d&quot;" {
		t.Errorf("escapeAttr = %q", got)
	}
	ping := []byte(`<iq from='localhost' to='u@localhost/r' type='get' id='k1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if !isPing(ping) {
		t.Error("isPing missed a ping")
	}
	if got := pingReply(ping); got != "<iq type='result' id='k1' to='localhost'/>" {
		t.Errorf("pingReply = %q", got)
	}
}
