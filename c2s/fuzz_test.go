package c2s

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/disco"
	"xmppd.dev/xmppd/ping"
	"xmppd.dev/xmppd/router"
)

// clientHeader opens the stream and binds the resource r; pipeSession's
// negotiation starts authenticated, as after SASL.
const clientHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='localhost'>" +
	"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"

// pipeSession runs a bound session of alice@localhost/r over an in-memory
// connection, its negotiation starting after TLS and SASL, so that the
// read loop, the router and the writer see exactly the bytes given. It
// returns the client's end.
func pipeSession(tb testing.TB, srv *Server) (client net.Conn, done <-chan struct{}) {
	tb.Helper()
	c, s := net.Pipe()
	return c, serveTestSession(tb, srv, s, s)
}

// serveTestSession negotiates the server side of s (carried by raw, the
// connection itself or a socket wrapper of it) for alice, starting after
// TLS and SASL, and runs the bound session; the channel closes when it
// has ended.
func serveTestSession(tb testing.TB, srv *Server, s, raw net.Conn) <-chan struct{} {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		g := newGuardConn(raw, int64(srv.Limits.MaxStanzaBytes))
		sess := &Session{srv: srv, writerDone: make(chan struct{})}
		n := &negotiation{srv: srv, raw: s, g: g, domain: srv.Router.Domain(),
			secure: true, user: jid.MustParse("alice@localhost"),
			bound: func(j jid.JID) error {
				sess.jid = j
				srv.Router.Bind(context.Background(), sess)
				return nil
			}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.run(ctx)
		cancel()
		if err != nil {
			tb.Logf("negotiation: %v", err)
			s.Close()
			return
		}
		sess.conn = g
		srv.wg.Add(1)
		sess.run()
	}()
	return finished
}

func testServer() *Server {
	r := router.New(jid.MustParse("localhost"), nil, nil)
	disco.New("xmppd").Register(r.Registry())
	ping.Register(r.Registry())
	srv := &Server{Router: r, Limits: Limits{MaxStanzaBytes: 64 << 10, WriteTimeout: time.Second}, Log: slog.New(slog.DiscardHandler)}
	srv.init()
	return srv
}

// FuzzReadLoop feeds arbitrary bytes to a bound session's stream: nothing
// may panic, and the session must end when the input does.
func FuzzReadLoop(f *testing.F) {
	seeds := []string{
		"<message to='alice@localhost/r' type='chat'><body>hi</body></message>",
		"<presence/><presence><priority>5</priority></presence><presence type='unavailable'/>",
		"<iq type='get' id='1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq><iq type='result' id='3'/>",
		"<message to='a@b@c'/>",
		"<message from='mallory@localhost'/>",
		"<!-- c -->",
		"<?php x ?>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]>",
		"<message>&a;&#x0;&#65;</message>",
		"<message><![CDATA[<!-- -->]]></message>",
		"<x:message xmlns:x='jabber:client'/>",
		"<message xmlns='jabber:server'/>",
		"</stream:stream>",
		"<stream:stream>",
		"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
		"<message to='alice@localhost' xml:lang='en' a:b='c' xmlns:a='urn:x'><body>\xff\xfe</body></message>",
		// Stream management and client state (XEP-0198, XEP-0352).
		"<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='0'/>",
		"<enable xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='4294967295'/>",
		"<a xmlns='urn:xmpp:sm:3' h='x'/>",
		"<resume xmlns='urn:xmpp:sm:3' h='1' previd='abc'/>",
		"<inactive xmlns='urn:xmpp:csi:0'/><presence/><active xmlns='urn:xmpp:csi:0'/>",
		"<enabled xmlns='urn:xmpp:sm:3'/>",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := testServer()
		c, done := pipeSession(t, srv)
		go io.Copy(io.Discard, c)
		// net.Pipe writes block until read; once the server has stopped
		// reading (a stream error) the rest of the input is abandoned.
		go func() {
			c.Write([]byte(clientHeader))
			c.Write(in)
			c.Write([]byte("</stream:stream>"))
			c.Close() // EOF, whatever state the input left the parser in
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session did not end after its input ended")
		}
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	})
}
