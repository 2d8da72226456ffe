package c2s

import (
	"net"
	"strings"
	"testing"
)

// recordConn is a net.Conn that records each Write as one "packet".
type recordConn struct {
	net.Conn
	writes []string
	closed bool
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *recordConn) Close() error { c.closed = true; return nil }

// TestGuardHoldsStreamHeader checks that a stream header goes out in one
// write with the features after it, and that nothing else is held.
func TestGuardHoldsStreamHeader(t *testing.T) {
	const header = `<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='x' from='localhost'>`
	const features = `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`
	rc := &recordConn{}
	g := newGuardConn(rc, 0)

	if n, err := g.Write([]byte(header)); n != len(header) || err != nil {
		t.Fatalf("Write(header) = %d, %v", n, err)
	}
	if len(rc.writes) != 0 {
		t.Fatalf("header written alone: %q", rc.writes)
	}
	if n, err := g.Write([]byte(features)); n != len(features) || err != nil {
		t.Fatalf("Write(features) = %d, %v", n, err)
	}
	if len(rc.writes) != 1 || rc.writes[0] != header+features {
		t.Fatalf("writes = %q, want the header and features in one", rc.writes)
	}

	// Stanzas, and elements that merely mention a stream, go out at once.
	for _, p := range []string{
		"<message to='a@b'><body>&lt;?xml</body></message>",
		"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		"<?xml version='1.0'?><stream:stream xmlns='jabber:client'/>", // self-closed: not a header
	} {
		before := len(rc.writes)
		g.Write([]byte(p))
		if len(rc.writes) != before+1 || rc.writes[before] != p {
			t.Fatalf("Write(%q) held or changed: writes %q", p, rc.writes[before:])
		}
	}

	// A header still held when the connection closes is written first.
	g.Write([]byte(header))
	g.Close()
	if last := rc.writes[len(rc.writes)-1]; last != header || !rc.closed {
		t.Fatalf("after Close: last write %q, closed %v; want the header, then closed", last, rc.closed)
	}
	if strings.Count(strings.Join(rc.writes, ""), header) != 2 {
		t.Fatalf("header written %d times, want 2", strings.Count(strings.Join(rc.writes, ""), header))
	}
}
