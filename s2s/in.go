package s2s

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/ratelimit"
	"xmppd.dev/xmppd/internal/xmlenc"
)

// in is a stream a peer opened to this server. Its goroutine reads,
// negotiates and routes; it writes only negotiation answers, so writes
// are few and serialised by wmu.
type in struct {
	s   *Service
	nc  net.Conn
	log *slog.Logger

	// nc changes once, to the TLS connection, under wmu. The rest is
	// the read goroutine's only.
	id         string
	from       string // of the current stream header
	to         string // of the current stream header; written under mu (Peers reads it)
	tls        bool
	certs      []*x509.Certificate
	saslDone   bool
	headerSent bool

	wmu sync.Mutex

	mu     sync.Mutex
	authed []string // peer domains authenticated on this stream
	method []string // how each authenticated
}

func (c *in) authMethod(domain string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.authed, domain); i >= 0 {
		return c.method[i]
	}
	return ""
}

func newIn(s *Service, nc net.Conn) *in {
	// The read rate is shaped on the socket, under TLS, for the
	// connection's whole life.
	if sh := ratelimit.New(s.opts.ReadRate, 2*s.opts.MaxStanzaBytes); sh != nil {
		nc = shapedConn{Conn: nc, shape: sh}
	}
	return &in{s: s, nc: nc, log: s.log.With("remote_addr", nc.RemoteAddr().String(), "dir", "in")}
}

func (c *in) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// shutdown ends the stream with <system-shutdown/> (from Shutdown).
func (c *in) shutdown() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	c.nc.Write(streamErrorXML("system-shutdown", "the server is shutting down"))
	c.nc.Close()
}

// conn returns the connection (TLS once started), for Shutdown's forced
// close.
func (c *in) conn() net.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.nc
}

func (c *in) isAuthed(domain string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.authed, domain)
}

func (c *in) addAuthed(domain, method string) {
	c.mu.Lock()
	if !slices.Contains(c.authed, domain) {
		c.authed = append(c.authed, domain)
		c.method = append(c.method, method)
	}
	c.mu.Unlock()
}

func (c *in) authedDomains() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.authed)
}

func (c *in) serve(direct bool) {
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("server connection panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if direct {
		if c.s.opts.TLS == nil {
			return
		}
		c.nc.SetDeadline(time.Now().Add(c.s.opts.ConnectTimeout))
		if err := c.startTLS(true); err != nil {
			c.log.Debug("direct TLS handshake failed", "err", err)
			return
		}
	}
	err := c.read()
	var se streamErr
	var pe peerError
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.As(err, &pe) && pe.cond == "system-shutdown":
		c.log.Info("the peer is shutting down", "peers", c.authedDomains())
	case errors.As(err, &pe):
		c.log.Warn("the peer ended its stream with an error", "condition", pe.cond, "text", pe.text)
	case errors.As(err, &se):
		if se.cond != "system-shutdown" {
			c.log.Warn("server stream error", "condition", se.cond, "text", se.text, "from", c.from)
		}
		c.write(c.withHeader(streamErrorXML(se.cond, se.text)))
	case errors.Is(err, io.EOF):
		if c.headerSent {
			c.write([]byte("</stream:stream>"))
		}
	case errors.Is(err, errTooLarge):
		c.log.Warn("peer stanza too large", "from", c.from, "max", c.s.opts.MaxStanzaBytes)
		c.write(c.withHeader(streamErrorXML("policy-violation", fmt.Sprintf("stanza exceeds %d bytes", c.s.opts.MaxStanzaBytes))))
	case errors.As(err, &syn):
		c.write(c.withHeader(streamErrorXML("not-well-formed", syn.Msg)))
	case errors.As(err, &ne) && ne.Timeout():
		c.write(c.withHeader(streamErrorXML("connection-timeout", "nothing arrived in time")))
	default:
		c.log.Debug("server connection ended", "err", err)
	}
	if d := c.authedDomains(); len(d) > 0 {
		c.log.Info("stream from the peer closed", "peers", d)
	}
}

// withHeader prefixes b with a stream header if none was sent: a stream
// error comes inside a stream (RFC 6120 §4.9.1.1).
func (c *in) withHeader(b []byte) []byte {
	if c.headerSent {
		return b
	}
	c.headerSent = true
	return append(header(c.to, c.from, streamID()), b...)
}

func (c *in) startTLS(direct bool) error {
	cfg := c.s.opts.TLS.Clone()
	cfg.ClientAuth = tls.RequestClientCert
	if direct {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	tc := tls.Server(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.wmu.Lock() // c.nc is read by shutdown
	c.nc, c.tls = tc, true
	c.wmu.Unlock()
	c.certs = tc.ConnectionState().PeerCertificates
	return nil
}

// certOK reports whether the peer's certificate verifies for domain.
func (c *in) certOK(domain string) bool {
	return c.tls && domain != "" && verifyCert(c.certs, c.s.opts.Roots, domain) == nil
}

// dialbackOK reports whether domain may authenticate by dialback here.
func (c *in) dialbackOK(domain string) bool {
	if c.s.insecure(domain) {
		return true
	}
	return c.s.opts.Dialback && (c.tls || !c.s.opts.RequireTLS)
}

// open reads the peer's stream header and answers with the server's and
// the features.
func (c *in) open(r *reader) error {
	c.nc.SetReadDeadline(time.Now().Add(c.s.opts.ConnectTimeout))
	h, err := r.header()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.from, c.to = "", ""
	c.mu.Unlock()
	if f := h["from"]; f != "" {
		if j, err := jid.Parse(f); err == nil && j.Localpart() == "" && j.Resourcepart() == "" {
			c.from = j.Domainpart()
		} else {
			return streamErr{"invalid-from", fmt.Sprintf("%q is not a domain", f)}
		}
	}
	if j, err := jid.Parse(h["to"]); err == nil && j.Localpart() == "" && j.Resourcepart() == "" {
		c.mu.Lock()
		c.to = j.Domainpart() // Peers reads it
		c.mu.Unlock()
	}
	if c.to == "" || !c.s.router.Serves(c.to) {
		return streamErr{"host-unknown", fmt.Sprintf("%q is not served here", h["to"])}
	}
	if c.from != "" && c.s.router.Serves(c.from) {
		// Nobody else speaks for our own domains (a wildcard
		// certificate another holds could otherwise pass EXTERNAL).
		return streamErr{"invalid-from", c.from + " is served here"}
	}
	if c.from != "" && !c.s.allowed(c.from) {
		return streamErr{"policy-violation", "federation with " + c.from + " is not allowed here"}
	}
	c.id = streamID()
	b := header(c.to, c.from, c.id)
	c.headerSent = true
	b = append(b, "<stream:features>"...)
	switch {
	case c.saslDone:
	case !c.tls && c.s.opts.TLS != nil:
		b = append(b, "<starttls xmlns='"+nsTLS+"'>"...)
		if c.s.mustTLS(c.from) {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
		if !c.s.mustTLS(c.from) && c.dialbackOK(c.from) {
			b = append(b, "<dialback xmlns='"+nsDBFeature+"'><errors/></dialback>"...)
		}
	default:
		if c.certOK(c.from) {
			b = append(b, "<mechanisms xmlns='"+nsSASL+"'><mechanism>EXTERNAL</mechanism></mechanisms>"...)
		}
		if c.dialbackOK(c.from) {
			b = append(b, "<dialback xmlns='"+nsDBFeature+"'><errors/></dialback>"...)
		}
	}
	b = append(b, "</stream:features>"...)
	return c.write(b)
}

// read runs the stream until it ends and returns why.
func (c *in) read() error {
	// A stream that authenticates no domain has this long in all, not
	// per element: failing attempts or verify requests every few seconds
	// must not hold a socket for ever. (A stream used only for db:verify
	// is closed too; the receiving server opens another when it needs
	// one.)
	unauthedUntil := time.Now().Add(2 * c.s.opts.ConnectTimeout)
	saslFailures := 0
	r := newReader(c.nc, c.s.opts.MaxStanzaBytes)
	if err := c.open(r); err != nil {
		return err
	}
	for {
		if len(c.authedDomains()) == 0 {
			d := time.Now().Add(c.s.opts.ConnectTimeout)
			if d.After(unauthedUntil) {
				d = unauthedUntil
			}
			c.nc.SetReadDeadline(d)
		} else {
			c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
		}
		start, err := r.next()
		if err != nil {
			return err
		}
		switch {
		case start.Name.Space == nsTLS && start.Name.Local == "starttls":
			if _, err := r.element(start); err != nil {
				return err
			}
			if c.tls || c.s.opts.TLS == nil {
				return streamErr{"policy-violation", "TLS is not available on this stream"}
			}
			if err := c.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
				return err
			}
			if err := c.startTLS(false); err != nil {
				return fmt.Errorf("s2s: TLS handshake: %w", err)
			}
			r = newReader(c.nc, c.s.opts.MaxStanzaBytes)
			if err := c.open(r); err != nil {
				return err
			}
		case start.Name.Space == nsSASL && start.Name.Local == "auth":
			e, err := r.element(start)
			if err != nil {
				return err
			}
			if !c.external(e) {
				c.log.Warn("SASL EXTERNAL refused", "from", c.from)
				if saslFailures++; saslFailures > 1 {
					return streamErr{"not-authorized", "SASL EXTERNAL failed twice"}
				}
				if err := c.write([]byte("<failure xmlns='" + nsSASL + "'><not-authorized/></failure>")); err != nil {
					return err
				}
				continue
			}
			c.addAuthed(c.from, "external")
			c.saslDone = true
			c.log.Info("peer authenticated", "peer", c.from, "local", c.to, "auth", "external")
			if err := c.write([]byte("<success xmlns='" + nsSASL + "'/>")); err != nil {
				return err
			}
			r = newReader(c.nc, c.s.opts.MaxStanzaBytes)
			if err := c.open(r); err != nil {
				return err
			}
		case start.Name.Space == NSDialback && start.Name.Local == "result":
			e, err := r.element(start)
			if err != nil {
				return err
			}
			if err := c.dialbackResult(e); err != nil {
				return err
			}
		case start.Name.Space == NSDialback && start.Name.Local == "verify":
			e, err := r.element(start)
			if err != nil {
				return err
			}
			if err := c.dialbackVerify(e); err != nil {
				return err
			}
		default:
			if len(c.authedDomains()) == 0 {
				return streamErr{"not-authorized", "authenticate before sending stanzas"}
			}
			st, err := r.stanza(start, c.isAuthed, c.s.router.Serves)
			if err != nil {
				return err
			}
			c.log.Debug("stanza from peer", "kind", st.Kind, "from", st.From, "to", st.To)
			c.s.router.Route(c.s.ctx, st)
		}
	}
}

// external checks SASL EXTERNAL (XEP-0178): a certificate valid for the
// stream's from, and an authorization identity that is empty or that
// domain.
func (c *in) external(e elem) bool {
	if e.attrs["mechanism"] != "EXTERNAL" || c.saslDone || !c.certOK(c.from) {
		return false
	}
	if e.text == "" || e.text == "=" {
		return true
	}
	authz, err := base64.StdEncoding.DecodeString(e.text)
	return err == nil && string(authz) == c.from
}

// dialbackResult takes a dialback request (XEP-0220 §2.1.2): the peer
// claims a domain, which the server checks with that domain's
// authoritative server before accepting stanzas from it on this stream.
func (c *in) dialbackResult(e elem) error {
	from, to := e.attrs["from"], e.attrs["to"]
	if !c.s.router.Serves(to) {
		return streamErr{"host-unknown", to + " is not served here"}
	}
	j, err := jid.Parse(from)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" || e.text == "" {
		return streamErr{"invalid-from", fmt.Sprintf("%q is not a domain", from)}
	}
	from = j.Domainpart()
	if c.s.router.Serves(from) {
		return streamErr{"invalid-from", from + " is served here"}
	}
	answer := func(typ string) error {
		b := []byte("<db:result")
		b = xmlenc.AppendAttr(b, "from", to)
		b = xmlenc.AppendAttr(b, "to", from)
		b = xmlenc.AppendAttr(b, "type", typ)
		return c.write(append(b, "/>"...))
	}
	if !c.s.allowed(from) {
		answer("invalid")
		return streamErr{"policy-violation", "federation with " + from + " is not allowed here"}
	}
	if !c.dialbackOK(from) {
		answer("invalid")
		return streamErr{"not-authorized", "dialback is not accepted here; " + from + " needs a certificate this server can verify"}
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.opts.ConnectTimeout)
	valid, err := c.s.verifyDialback(ctx, to, from, c.id, e.text)
	cancel()
	if err != nil {
		c.log.Info("dialback verification failed", "peer", from, "err", err)
	}
	if !valid {
		answer("invalid")
		return streamErr{"not-authorized", "dialback for " + from + " did not verify"}
	}
	c.addAuthed(from, "dialback")
	c.log.Info("peer authenticated", "peer", from, "local", to, "auth", "dialback")
	return answer("valid")
}

// dialbackVerify answers a receiving server asking whether a key is ours
// (XEP-0220 §2.1.3, we are the authoritative server).
func (c *in) dialbackVerify(e elem) error {
	from, to, id := e.attrs["from"], e.attrs["to"], e.attrs["id"]
	if !c.s.router.Serves(to) {
		return streamErr{"host-unknown", to + " is not served here"}
	}
	want := dialbackKey(c.s.opts.Secret, from, to, id)
	typ := "invalid"
	if subtle.ConstantTimeCompare([]byte(want), []byte(e.text)) == 1 {
		typ = "valid"
	}
	b := []byte("<db:verify")
	b = xmlenc.AppendAttr(b, "from", to)
	b = xmlenc.AppendAttr(b, "to", from)
	b = xmlenc.AppendAttr(b, "id", id)
	b = xmlenc.AppendAttr(b, "type", typ)
	return c.write(append(b, "/>"...))
}
