package bosh

import (
	"strings"
	"testing"
	"time"
)

// TestParseBody: the attributes acted on and the children, made to
// stand alone.
func TestParseBody(t *testing.T) {
	b, err := parseBody([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'
		xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:xmpp:ping' sid='s1' rid='42' to='localhost' xml:lang='en'
		wait='30' hold='1' pause='5' ack='41' xmpp:restart='true' xmpp:version='1.0'>
		<message to='a@b'><body>xmpp:x</body></message> <iq type='get' id='1'><p:ping/></iq>
		<presence xmlns='jabber:client' xmlns:p='urn:other'><p:x/></presence></body>`))
	if err != nil {
		t.Fatal(err)
	}
	if b.sid != "s1" || b.rid != 42 || b.to != "localhost" || b.lang != "en" || b.wait != 30*time.Second || !b.waitSet ||
		b.hold != 1 || b.pause != 5*time.Second || b.ack != 41 || !b.restart || b.xmppVer != "1.0" {
		t.Fatalf("attributes: %+v", b)
	}
	want := []string{
		"<message to='a@b'><body>xmpp:x</body></message>",
		"<iq xmlns:p='urn:xmpp:ping' type='get' id='1'><p:ping/></iq>",
		"<presence xmlns='jabber:client' xmlns:p='urn:other'><p:x/></presence>",
	}
	if len(b.children) != len(want) {
		t.Fatalf("children %q", b.children)
	}
	for i, w := range want {
		if string(b.children[i]) != w {
			t.Errorf("child %d: %s\nwant      %s", i, b.children[i], w)
		}
	}
}

// TestParseBodyRefused: what is not one <body/> of httpbind is an error.
func TestParseBodyRefused(t *testing.T) {
	for _, in := range []string{
		"", "text", "<body/>", "<body xmlns='jabber:client'/>",
		"<body xmlns='http://jabber.org/protocol/httpbind'>",
		"<body xmlns='http://jabber.org/protocol/httpbind'/><body xmlns='http://jabber.org/protocol/httpbind'/>",
		"<body xmlns='http://jabber.org/protocol/httpbind'>text</body>",
		"<body xmlns='http://jabber.org/protocol/httpbind' wait='-1'/>",
		"<body xmlns='http://jabber.org/protocol/httpbind'><a></b></body>",
	} {
		if _, err := parseBody([]byte(in)); err == nil {
			t.Errorf("parseBody(%q) accepted", in)
		}
	}
}

// FuzzParseBody: any input is parsed or refused, never a panic, and
// children are whole elements.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{
		"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='x'><message><body>hi</body></message></body>",
		"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:a='u' rid='2'><a:x/><![CDATA[<]]></body>",
		"<body xmlns='http://jabber.org/protocol/httpbind' type='terminate'/>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := parseBody(in)
		if err != nil {
			return
		}
		for _, c := range b.children {
			if !strings.HasPrefix(string(c), "<") || !strings.HasSuffix(string(c), ">") {
				t.Fatalf("child %q", c)
			}
		}
	})
}
