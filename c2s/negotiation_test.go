package c2s

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// recordConn is a net.Conn that reads from r and records each Write as
// one "packet".
type recordConn struct {
	net.Conn
	r      io.Reader
	writes []string
}

func (c *recordConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *recordConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

// TestNegotiationOneWritePerTurn checks that each answer of the
// negotiation is one write: the stream header together with the features
// (a client waits for both), then the bind result; and that nothing the
// client sent after the bind request is consumed.
func TestNegotiationOneWritePerTurn(t *testing.T) {
	const after = "\n<presence/>"
	in := "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='localhost' from='alice@localhost'>\n" +
		"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource> phone </resource></bind></iq>" + after
	rc := &recordConn{r: strings.NewReader(in)}
	srv := testServer()
	var bound jid.JID
	n := &negotiation{srv: srv, raw: rc, g: newGuardConn(rc, 0), domain: jid.MustParse("localhost"),
		secure: true, user: jid.MustParse("alice@localhost"),
		bound: func(j jid.JID) error { bound = j; return nil }}
	if err := n.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rc.writes) != 2 {
		t.Fatalf("%d writes, want 2: %q", len(rc.writes), rc.writes)
	}
	head := rc.writes[0]
	if !strings.HasPrefix(head, "<?xml version='1.0'?><stream:stream ") || !strings.Contains(head, " to='alice@localhost'") ||
		!strings.HasSuffix(head, "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>65536</max-bytes></limits></stream:features>") ||
		!strings.Contains(head, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>") {
		t.Errorf("first write %q: want our header and the features of a bound stream", head)
	}
	if want := "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/phone</jid></bind></iq>"; rc.writes[1] != want {
		t.Errorf("bind answer %q, want %q", rc.writes[1], want)
	}
	if bound.String() != "alice@localhost/phone" {
		t.Errorf("bound %q", bound)
	}
	rest, _ := io.ReadAll(readerFunc(func(p []byte) (int, error) {
		if n.g.rpos == n.g.rend {
			return 0, io.EOF
		}
		k := copy(p, n.g.rbuf[n.g.rpos:n.g.rend])
		n.g.rpos += k
		return k, nil
	}))
	if string(rest) != after {
		t.Errorf("left in the guard's buffer: %q, want %q", rest, after)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
