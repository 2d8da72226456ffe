package c2s

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"mellium.im/xmpp/stream"
)

// Namespaces of the stream features xmppd lists itself.
const (
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsLimits  = "urn:xmpp:stream-limits:0"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// randomID returns 16 random characters for resources and ids.
func randomID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
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
