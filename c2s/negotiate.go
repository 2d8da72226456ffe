package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// Namespaces of the stream features xmppd lists itself.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsLimits  = "urn:xmpp:stream-limits:0"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// startTLS is the STARTTLS feature (RFC 6120 §5). mellium's own cannot be
// made optional and would hand the decoder a tls.Conn we cannot guard, so
// the server side is kept here: answer <proceed/> and wrap the socket in
// TLS and then in a fresh guard.
func startTLS(cfg *tls.Config, required bool, raw net.Conn, max int64) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsTLS, Local: "starttls"},
		Prohibited: xmpp.Secure,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := e.EncodeToken(start); err != nil {
				return required, err
			}
			if required {
				req := xml.StartElement{Name: xml.Name{Local: "required"}}
				if err := e.EncodeToken(req); err != nil {
					return required, err
				}
				if err := e.EncodeToken(req.End()); err != nil {
					return required, err
				}
			}
			return required, e.EncodeToken(start.End())
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return required, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			r := s.TokenReader()
			defer r.Close()
			// mellium pushed the <starttls/> start element back; consume it
			// and its end.
			if _, err := r.Token(); err != nil {
				return 0, nil, err
			}
			if err := xmlstream.Skip(r); err != nil {
				return 0, nil, err
			}
			if _, err := io.WriteString(s.Conn(), "<proceed xmlns='"+nsTLS+"'/>"); err != nil {
				return 0, nil, err
			}
			tc := tls.Server(raw, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return 0, nil, err
			}
			return xmpp.Secure, newGuardConn(tc, max), nil
		},
	}
}

// info returns an informational feature (listed, never negotiated).
func info(name xml.Name, necessary, prohibited xmpp.SessionState, body func(e xmlstream.TokenWriter) error) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       name,
		Necessary:  necessary,
		Prohibited: prohibited,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := e.EncodeToken(start); err != nil {
				return false, err
			}
			if body != nil {
				if err := body(e); err != nil {
					return false, err
				}
			}
			return false, e.EncodeToken(start.End())
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return false, nil, d.Skip()
		},
	}
}

func element(e xmlstream.TokenWriter, name, text string) error {
	start := xml.StartElement{Name: xml.Name{Local: name}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if text != "" {
		if err := e.EncodeToken(xml.CharData(text)); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// sessionFeature advertises the legacy session establishment as optional
// (RFC 6121 Appendix E); old clients send the IQ and get a result.
func sessionFeature() xmpp.StreamFeature {
	return info(xml.Name{Space: nsSession, Local: "session"}, xmpp.Authn, xmpp.Ready, func(e xmlstream.TokenWriter) error {
		return element(e, "optional", "")
	})
}

// limitsFeature advertises the stanza size limit (XEP-0478).
func limitsFeature(maxBytes int) xmpp.StreamFeature {
	return info(xml.Name{Space: nsLimits, Local: "limits"}, xmpp.Authn, xmpp.Ready, func(e xmlstream.TokenWriter) error {
		return element(e, "max-bytes", strconv.Itoa(maxBytes))
	})
}

// randomID returns 16 random characters for resources and ids.
func randomID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// bindFeature binds the resource (RFC 6120 §7): the client's choice when it
// is a valid resourcepart, otherwise one the server makes up (§7.7.2.1 lets
// the server override it).
func bindFeature(user func() jid.JID, bound func(jid.JID)) xmpp.StreamFeature {
	return xmpp.BindCustom(func(_ jid.JID, res string) (jid.JID, error) {
		u := user()
		if u.Equal(jid.JID{}) {
			return jid.JID{}, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}
		}
		var j jid.JID
		var err error
		if res != "" {
			j, err = u.WithResource(res)
		}
		if res == "" || err != nil {
			j, err = u.WithResource("xmppd-" + randomID())
			if err != nil {
				return jid.JID{}, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
			}
		}
		bound(j)
		return j, nil
	})
}

// streamHeader is what the server sends before a stream error when the
// client's header could not be accepted (RFC 6120 §4.9.1.3).
func streamHeader(domain string) []byte {
	return []byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='" +
		randomID() + "' from='" + string(xmlAttrEscape(domain)) + "'>")
}

// streamError serialises a stream error with an English text, followed by
// the closing stream tag.
func streamError(e stream.Error, text string) []byte {
	b := []byte("<stream:error><" + e.Err + " xmlns='" + nsStreams + "'/>")
	if text != "" {
		b = append(b, "<text xmlns='"+nsStreams+"' xml:lang='en'>"...)
		b = append(b, xmlAttrEscape(text)...)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error></stream:stream>"...)
}

func streamErrorFrom(e stream.Error) []byte {
	text := ""
	if len(e.Text) > 0 {
		text = e.Text[0].Value
	}
	return streamError(e, text)
}

// withText returns e with an English text.
func withText(e stream.Error, text string) stream.Error {
	e.Text = []struct{ Lang, Value string }{{"en", text}}
	return e
}

// closeTag ends a stream without error.
var closeTag = []byte("</stream:stream>")

// classifyReadError maps why reading stopped to a close reason and the
// bytes to send (a stream error, or the closing tag).
func classifyReadError(err error, maxBytes int) (CloseReason, []byte) {
	var se stream.Error
	var syn *xml.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return CloseClient, closeTag
	case errors.Is(err, errIdle):
		return CloseIdle, streamError(stream.ConnectionTimeout, "no answer to ping")
	case errors.Is(err, errTooLarge):
		return CloseStreamError, streamError(stream.PolicyViolation, "stanza exceeds "+strconv.Itoa(maxBytes)+" bytes")
	case errors.Is(err, errRestrictedXML):
		return CloseStreamError, streamError(stream.RestrictedXML, "comments, processing instructions, DTDs and entity declarations are not allowed")
	case errors.Is(err, errTooDeep):
		return CloseStreamError, streamError(stream.PolicyViolation, "stanza nested too deeply")
	case errors.Is(err, errInvalidFrom):
		return CloseStreamError, streamError(stream.InvalidFrom, "from must be your own JID")
	case errors.Is(err, errTextAtTop):
		return CloseStreamError, streamError(stream.BadFormat, "text is not allowed between stanzas")
	case errors.Is(err, errNotStanza):
		return CloseStreamError, streamError(stream.UnsupportedStanzaType, "only message, presence and iq in jabber:client are accepted")
	case errors.As(err, &se):
		// The client sent a stream error: it is closing.
		return CloseClient, closeTag
	case errors.As(err, &syn) && syn.Msg == "unexpected EOF":
		return CloseReadError, nil
	case errors.As(err, &syn):
		return CloseStreamError, streamError(stream.NotWellFormed, syn.Msg)
	case isNetError(err):
		return CloseReadError, nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "proc inst"), strings.Contains(msg, "comment"), strings.Contains(msg, "directive"):
		return CloseStreamError, streamError(stream.RestrictedXML, "comments, processing instructions and DTDs are not allowed")
	case strings.Contains(msg, "unexpected stream restart"):
		return CloseStreamError, streamError(stream.NotWellFormed, "unexpected stream restart")
	}
	return CloseStreamError, streamError(stream.NotWellFormed, "")
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}
