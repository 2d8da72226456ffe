package c2s

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"xmppd.dev/xmppd/internal/ratelimit"
)

// Errors raised by the input guard; the read loop turns them into stream
// errors.
var (
	errRestrictedXML = errors.New("c2s: restricted XML (comment, processing instruction, DTD or entity declaration)")
	errTooLarge      = errors.New("c2s: stanza too large")
	errIdle          = errors.New("c2s: no answer to keepalive ping")
)

// guardConn sits between the socket (after TLS) and the XML decoder. It
// enforces what encoding/xml does not: a byte limit per stanza, no
// restricted XML (RFC 6120 §11.1), and the keepalive. It sees plaintext:
// after STARTTLS a new guardConn wraps the tls.Conn.
//
// Read is called only by the goroutine that owns the decoder (negotiation,
// then the read loop); the counters are atomic so that Reset and the idle
// settings can be changed from that same goroutine's callers safely.
type guardConn struct {
	net.Conn

	max  atomic.Int64 // byte limit since the last reset; 0 = none
	n    atomic.Int64 // bytes read since the last reset
	scan xmlScanner   // owned by Read

	// Keepalive, owned by Read once set before the read loop starts.
	idle        time.Duration // silence before onIdle is called; 0 = no keepalive
	pingTimeout time.Duration // silence after onIdle before errIdle
	onIdle      func()        // sends a ping; called from Read
	pinged      bool          // a ping is outstanding

	// The decoder's read buffer, owned by ReadByte. encoding/xml reads
	// through ReadByte when the reader has one, instead of wrapping it in
	// a 4 KiB bufio.Reader per session; TLS already buffers whole records,
	// so a small buffer here costs no extra system calls. nil while the
	// session is parked (releaseBuf).
	rbuf       *[readBufSize]byte
	rpos, rend int
	prefix     []byte // served before rbuf: see newSessionDecoder

	// shape bounds the read rate of a bound session; nil: no limit.
	// Owned by Read.
	shape *ratelimit.Shaper

	rerr error // the error that ended the last fill, returned once rbuf is drained

}

// readBufSize is the size of a guard's read buffer.
const readBufSize = 512

// readBufs holds the read buffers that parked sessions gave back.
var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

func newGuardConn(c net.Conn, max int64) *guardConn {
	g := &guardConn{Conn: c}
	g.max.Store(max)
	return g
}

// Reset starts a new stanza's byte count.
func (g *guardConn) Reset() { g.n.Store(0) }

// ReadByte serves the XML decoder from rbuf.
func (g *guardConn) ReadByte() (byte, error) {
	if len(g.prefix) > 0 {
		b := g.prefix[0]
		g.prefix = g.prefix[1:]
		return b, nil
	}
	return g.readByte()
}

func (g *guardConn) readByte() (byte, error) {
	if g.rpos == g.rend {
		if g.rerr != nil {
			err := g.rerr
			g.rerr = nil
			return 0, err
		}
		n, err := g.Read(g.buf()[:])
		g.rpos, g.rend = 0, n
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		g.rerr = err
	}
	b := g.rbuf[g.rpos]
	g.rpos++
	return b, nil
}

// Read reads plaintext, checks it, and runs the keepalive: on silence it
// asks for a ping once, and on further silence fails with errIdle. The XML
// decoder never sees a timeout, because encoding/xml keeps the first read
// error forever.
func (g *guardConn) Read(p []byte) (int, error) {
	for {
		if g.idle > 0 {
			g.Conn.SetReadDeadline(g.keepaliveDeadline(time.Now()))
		}
		n, err := g.Conn.Read(p)
		if n > 0 {
			return g.accept(p[:n])
		}
		if err != nil && g.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			if err := g.keepaliveDue(); err != nil {
				return 0, err
			}
			continue
		}
		return n, err
	}
}

// accept checks bytes just read before the decoder sees them.
func (g *guardConn) accept(p []byte) (int, error) {
	g.pinged = false
	if g.shape != nil {
		g.shape.Take(len(p))
	}
	if max := g.max.Load(); max > 0 && g.n.Add(int64(len(p))) > max {
		return 0, errTooLarge
	}
	if g.scan.check(p) {
		return 0, errRestrictedXML
	}
	return len(p), nil
}

// keepaliveDeadline is when the keepalive acts if nothing arrives from now
// on: a ping after idle, the end after pingTimeout more.
func (g *guardConn) keepaliveDeadline(now time.Time) time.Time {
	if g.pinged {
		return now.Add(g.pingTimeout)
	}
	return now.Add(g.idle)
}

// keepaliveDue acts on a silence that reached keepaliveDeadline.
func (g *guardConn) keepaliveDue() error {
	if g.pinged {
		return errIdle
	}
	g.pinged = true
	g.onIdle()
	return nil
}

// waitStanza is called by the read loop between stanzas, with the decoder
// holding nothing back. It drops the whitespace clients send as keepalive
// there and, when nothing is buffered, waits up to park for more. It
// reports false when the client stayed silent that long, the moment to
// park the session, with when the keepalive must act next (zero: never).
// Otherwise the decoder's next read finds data or the error that ended
// the connection.
func (g *guardConn) waitStanza(park time.Duration) (ready bool, keepalive time.Time) {
	for {
		if g.rpos < g.rend && isSpace(g.rbuf[g.rpos]) {
			for g.rpos < g.rend && isSpace(g.rbuf[g.rpos]) {
				g.rpos++
			}
			if g.rpos == g.rend {
				g.Reset() // whitespace keepalive: the next stanza starts afresh
			}
		}
		if g.rpos < g.rend || g.rerr != nil || len(g.prefix) > 0 {
			return true, time.Time{}
		}
		now := time.Now()
		deadline := now.Add(park)
		if g.idle > 0 {
			keepalive = g.keepaliveDeadline(now)
			if !keepalive.After(deadline) {
				return true, time.Time{} // the keepalive comes first: Read runs it
			}
		}
		g.Conn.SetReadDeadline(deadline)
		n, err := g.Conn.Read(g.buf()[:])
		if n > 0 {
			if g.idle == 0 {
				g.Conn.SetReadDeadline(time.Time{})
			}
			if _, aerr := g.accept(g.rbuf[:n]); aerr != nil {
				g.rpos, g.rend, g.rerr = 0, 0, aerr
				return true, time.Time{}
			}
			g.rpos, g.rend, g.rerr = 0, n, err
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, keepalive
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		g.rerr = err
		return true, time.Time{}
	}
}

// buf returns the read buffer, taking one from readBufs if it was given
// back.
func (g *guardConn) buf() *[readBufSize]byte {
	if g.rbuf == nil {
		g.rbuf = readBufs.Get().(*[readBufSize]byte)
	}
	return g.rbuf
}

// releaseBuf gives the read buffer back when it holds nothing: a parked
// session has no use for it until its client sends again.
func (g *guardConn) releaseBuf() {
	if g.rbuf != nil && g.rpos == g.rend {
		readBufs.Put(g.rbuf)
		g.rbuf, g.rpos, g.rend = nil, 0, 0
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// xmlScanner spots restricted XML in a byte stream split anywhere: "<!"
// not starting a CDATA section, "<?" not starting an XML declaration, and
// entity references other than the five predefined ones and character
// references. Markup inside CDATA sections is skipped.
type xmlScanner struct {
	state  uint8
	match  string // what must follow (state matching)
	i      int    // bytes of match seen
	ent    [8]byte
	entLen int
	rsq    int // consecutive ']' seen inside CDATA
}

const (
	scanText   uint8 = iota
	scanLT           // just after '<'
	scanMatch        // matching s.match
	scanCDATA        // inside <![CDATA[ … ]]>
	scanEntity       // after '&'
)

// check scans b and reports whether restricted XML was found.
func (s *xmlScanner) check(b []byte) bool {
	for _, c := range b {
		switch s.state {
		case scanText:
			switch c {
			case '<':
				s.state = scanLT
			case '&':
				s.state, s.entLen = scanEntity, 0
			}
		case scanLT:
			switch c {
			case '!':
				s.state, s.match, s.i = scanMatch, "[CDATA[", 0
			case '?':
				s.state, s.match, s.i = scanMatch, "xml", 0
			case '<':
			case '&':
				s.state, s.entLen = scanEntity, 0
			default:
				s.state = scanText
			}
		case scanMatch:
			if c != s.match[s.i] {
				return true
			}
			s.i++
			if s.i == len(s.match) {
				if s.match == "xml" {
					s.state = scanText // an XML declaration: the decoder checks its place
				} else {
					s.state, s.rsq = scanCDATA, 0
				}
			}
		case scanCDATA:
			switch {
			case c == ']':
				s.rsq++
			case c == '>' && s.rsq >= 2:
				s.state = scanText
			default:
				s.rsq = 0
			}
		case scanEntity:
			if c == ';' {
				if !predefinedEntity(s.ent[:s.entLen]) {
					return true
				}
				s.state = scanText
				continue
			}
			if s.entLen == len(s.ent) {
				return true // no predefined entity or character reference is this long
			}
			s.ent[s.entLen] = c
			s.entLen++
		}
	}
	return false
}

func predefinedEntity(name []byte) bool {
	switch string(name) {
	case "lt", "gt", "amp", "apos", "quot":
		return true
	}
	return len(name) > 1 && name[0] == '#'
}
