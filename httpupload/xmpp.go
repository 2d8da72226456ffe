package httpupload

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// Namespaces the service answers besides NS.
const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
	nsPing  = "urn:xmpp:ping"
	nsData  = "jabber:x:data"
)

// maxReleases bounds the rows read to compute a retry time.
const maxReleases = 1000

// HandleStanza takes every stanza addressed to the service's domain or a
// JID at it (router.StanzaHandler).
func (s *Service) HandleStanza(ctx context.Context, st *router.Stanza) {
	if st.From.Equal(jid.JID{}) {
		return
	}
	if st.Kind != router.KindIQ {
		if st.Kind == router.KindMessage && (st.Type == "" || st.Type == "chat" || st.Type == "normal") {
			s.fail(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, "this is a file upload service"), nil)
		}
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return
	}
	if st.To.Localpart() != "" || st.To.Resourcepart() != "" {
		s.fail(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, ""), nil)
		return
	}
	if st.Type == "get" {
		switch st.Payload {
		case xml.Name{Space: nsInfo, Local: "query"}:
			s.answer(ctx, st, s.info(st))
			return
		case xml.Name{Space: nsItems, Local: "query"}:
			s.answer(ctx, st, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsItems, Local: "query"}}))
			return
		case xml.Name{Space: nsPing, Local: "ping"}:
			s.answer(ctx, st, nil)
			return
		case xml.Name{Space: NS, Local: "request"}:
			// Not cut short by the requester's stream ending.
			sctx, cancel := storeCtx(ctx)
			payload, err := s.slot(sctx, st)
			cancel()
			if err != nil {
				var re *requestError
				if !errors.As(err, &re) {
					s.log.Error("upload slot request failed", "from", st.From.String(), "err", err)
					re = &requestError{e: errText(stanza.Wait, stanza.InternalServerError, "")}
				}
				s.fail(ctx, st, re.e, re.app)
				return
			}
			s.answer(ctx, st, payload)
			return
		}
	}
	s.fail(ctx, st, errText(stanza.Cancel, stanza.ServiceUnavailable, ""), nil)
}

// info is the service's disco#info: the store/file identity, its
// features and the XEP-0128 form with max-file-size.
func (s *Service) info(st *router.Stanza) xml.TokenReader {
	q := xml.StartElement{Name: xml.Name{Space: nsInfo, Local: "query"}}
	if node := nodeOf(st); node != "" {
		q.Attr = []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}
	}
	return xmlstream.Wrap(xmlstream.MultiReader(
		empty("identity", "category", "store", "type", "file", "name", "HTTP File Upload"),
		empty("feature", "var", nsInfo),
		empty("feature", "var", NS),
		xmlstream.Wrap(xmlstream.MultiReader(
			field("FORM_TYPE", "hidden", NS),
			field("max-file-size", "", strconv.FormatInt(s.opts.MaxFileSize, 10)),
		), xml.StartElement{Name: xml.Name{Space: nsData, Local: "x"}, Attr: attrs("type", "result")}),
	), q)
}

// nodeOf returns the node attribute of a disco query.
func nodeOf(st *router.Stanza) string {
	d := st.Decoder()
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == "query" {
			for _, a := range start.Attr {
				if a.Name.Space == "" && a.Name.Local == "node" {
					return a.Value
				}
			}
			return ""
		}
	}
}

// requestError is a refusal of a slot request: a stanza error and the
// XEP-0363 element that goes with it, if any.
type requestError struct {
	e   stanza.Error
	app xml.TokenReader
}

func (e *requestError) Error() string { return e.e.Error() }

func refuse(typ stanza.ErrorType, cond stanza.Condition, text string) *requestError {
	return &requestError{e: errText(typ, cond, text)}
}

// request is a parsed slot request.
type request struct {
	filename, size, contentType string
	hasFilename, hasSize        bool
}

// parseRequest reads the attributes of the <request/> of st.
func parseRequest(st *router.Stanza) (request, error) {
	d := st.Decoder()
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return request{}, errors.New("no request element")
		}
		if err != nil {
			return request{}, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Space != NS || start.Name.Local != "request" {
			continue
		}
		var r request
		for _, a := range start.Attr {
			if a.Name.Space != "" {
				continue
			}
			switch a.Name.Local {
			case "filename":
				r.filename, r.hasFilename = a.Value, true
			case "size":
				r.size, r.hasSize = a.Value, true
			case "content-type":
				r.contentType = a.Value
			}
		}
		return r, nil
	}
}

// slot answers a slot request: it checks who asks and what, reserves the
// size against the owner's quota and returns the <slot/>.
func (s *Service) slot(ctx context.Context, st *router.Stanza) (xml.TokenReader, error) {
	from := st.From.Bare()
	if from.Localpart() == "" || (!s.opts.AllowRemote && from.Domainpart() != s.opts.ServerDomain) {
		return nil, refuse(stanza.Cancel, stanza.Forbidden, "only users of "+s.opts.ServerDomain+" may upload files here")
	}
	req, err := parseRequest(st)
	if err != nil {
		return nil, refuse(stanza.Modify, stanza.BadRequest, "the request could not be read")
	}
	if !req.hasSize {
		return nil, refuse(stanza.Modify, stanza.BadRequest, "the request has no size")
	}
	size, err := strconv.ParseInt(req.size, 10, 64)
	if err != nil || size < 0 || req.size[0] == '+' {
		return nil, refuse(stanza.Modify, stanza.BadRequest, "the size is not a number of bytes")
	}
	if !req.hasFilename {
		return nil, refuse(stanza.Modify, stanza.BadRequest, "the request has no filename")
	}
	name, err := cleanFilename(req.filename)
	if err != nil {
		return nil, refuse(stanza.Modify, stanza.BadRequest, err.Error())
	}
	ctype := ""
	if req.contentType != "" {
		var ok bool
		if ctype, ok = cleanType(req.contentType); !ok {
			return nil, refuse(stanza.Modify, stanza.BadRequest, "the content-type is not a media type")
		}
	}
	if size > s.opts.MaxFileSize {
		max := strconv.FormatInt(s.opts.MaxFileSize, 10)
		return nil, &requestError{
			e: errText(stanza.Modify, stanza.NotAcceptable, "file too large: the maximum file size is "+max+" bytes"),
			app: xmlstream.Wrap(
				xmlstream.Wrap(xmlstream.Token(xml.CharData(max)), xml.StartElement{Name: xml.Name{Local: "max-file-size"}}),
				xml.StartElement{Name: xml.Name{Space: NS, Local: "file-too-large"}}),
		}
	}

	owner := from.String()
	lock := s.quotaLock(owner)
	lock.Lock()
	defer lock.Unlock()
	now := s.now()
	used, err := s.store.Used(ctx, owner, now)
	if err != nil {
		return nil, err
	}
	if used+size > s.opts.Quota {
		return nil, s.overQuota(ctx, owner, now, used, size)
	}
	u := storage.Upload{
		ID: newID(), Owner: owner, Filename: name, Size: size, ContentType: ctype,
		Created: now, Expires: now.Add(s.opts.SlotTimeout),
	}
	if err := s.store.CreateSlot(ctx, u); err != nil {
		return nil, err
	}
	s.log.Debug("upload slot granted", "owner", owner, "slot", u.ID, "size", size, "type", ctype)
	p := putParams{id: u.ID, name: name, size: size, expires: u.Expires.UnixMilli()}
	return xmlstream.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "put"}, Attr: attrs("url", s.putURL(p))}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "get"}, Attr: attrs("url", s.getURL(u.ID, name))}),
	), xml.StartElement{Name: xml.Name{Space: NS, Local: "slot"}}), nil
}

// overQuota is the refusal of a request for size bytes by owner, who
// holds used: resource-constraint, with the time enough of owner's files
// and slots will have expired to make room when there is one.
func (s *Service) overQuota(ctx context.Context, owner string, now time.Time, used, size int64) error {
	text := fmt.Sprintf("quota reached: you may hold %d bytes of files, and %d are taken", s.opts.Quota, used)
	re := refuse(stanza.Wait, stanza.ResourceConstraint, text)
	if size > s.opts.Quota {
		return re
	}
	rels, err := s.store.Releases(ctx, owner, now, s.opts.MaxAge, maxReleases)
	if err != nil {
		s.log.Warn("upload quota release times not read", "owner", owner, "err", err)
		return re
	}
	need := used + size - s.opts.Quota
	for _, r := range rels {
		if need -= r.Size; need <= 0 {
			// XEP-0082 stamps have whole seconds here; round up so that
			// the space is free at the time given.
			at := r.At.Add(time.Second - 1).Truncate(time.Second).UTC()
			re.app = xmlstream.Wrap(nil, xml.StartElement{
				Name: xml.Name{Space: NS, Local: "retry"},
				Attr: attrs("stamp", at.Format(time.RFC3339)),
			})
			break
		}
	}
	return re
}

// answer sends the result of st with payload (nil for an empty result).
func (s *Service) answer(ctx context.Context, st *router.Stanza, payload xml.TokenReader) {
	if payload == nil {
		payload = xmlstream.MultiReader()
	}
	reply, err := router.Build(router.KindIQ, "result", st.ID, st.To, st.From, payload)
	if err != nil {
		s.log.Error("upload service reply failed to encode", "err", err)
		s.fail(ctx, st, errText(stanza.Wait, stanza.InternalServerError, ""), nil)
		return
	}
	s.router.Route(context.WithoutCancel(ctx), reply)
}

// fail answers st with the error e, followed by the application-specific
// condition app when not nil (RFC 6120 §8.3.3.2).
func (s *Service) fail(ctx context.Context, st *router.Stanza, e stanza.Error, app xml.TokenReader) {
	if st.Type == "error" || st.Type == "result" {
		return
	}
	reply, err := router.Build(st.Kind, "error", st.ID, st.To, st.From, e.Wrap(app))
	if err != nil {
		s.log.Error("upload service error failed to encode", "err", err)
		return
	}
	s.router.Route(context.WithoutCancel(ctx), reply)
}

// errText is a shorthand for router.ErrorText.
func errText(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	return router.ErrorText(typ, cond, text)
}

// attrs builds attributes from name, value pairs.
func attrs(kv ...string) []xml.Attr {
	a := make([]xml.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, xml.Attr{Name: xml.Name{Local: kv[i]}, Value: kv[i+1]})
	}
	return a
}

// empty is an element without children.
func empty(name string, kv ...string) xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: name}, Attr: attrs(kv...)})
}

// field is a data form field with one value.
func field(v, typ, value string) xml.TokenReader {
	kv := []string{"var", v}
	if typ != "" {
		kv = append(kv, "type", typ)
	}
	return xmlstream.Wrap(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(value)), xml.StartElement{Name: xml.Name{Local: "value"}}),
		xml.StartElement{Name: xml.Name{Local: "field"}, Attr: attrs(kv...)})
}
