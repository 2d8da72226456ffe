package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// request is a parsed archive query: the XEP-0313 form and the XEP-0059
// result set management.
type request struct {
	queryID  string
	with     jid.JID
	start    int64 // inclusive; 0: none
	end      int64
	afterID  string // the extended filters (urn:xmpp:mam:2#extended)
	beforeID string
	ids      []string
	idsSet   bool

	max       int
	after     string // RSM
	before    string
	hasBefore bool // <before/>, maybe empty: the last page
	flip      bool
}

func badRequest(text string) error {
	return router.ErrorText(stanza.Modify, stanza.BadRequest, text)
}

// parseRequest reads <query queryid node><x type='submit'>…</x><set>…</set><flip-page/></query>.
func parseRequest(iq *router.Stanza) (*request, error) {
	d := iq.Decoder()
	r := &request{max: -1}
	depth := 0
	var field string
	var values []string
	var inValue bool
	var text []byte
	var rsm string // the RSM child being read
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, badRequest("malformed query")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				for _, a := range t.Attr {
					switch {
					case a.Name.Space != "":
					case a.Name.Local == "queryid":
						r.queryID = a.Value
					case a.Name.Local == "node" && a.Value != "":
						return nil, router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "this archive has no nodes")
					}
				}
			case depth == 3 && t.Name == xml.Name{Space: NS, Local: "flip-page"}:
				r.flip = true
			case depth == 4 && t.Name == xml.Name{Space: NSData, Local: "field"}:
				field, values = "", values[:0]
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "var" {
						field = a.Value
					}
				}
			case depth == 5 && t.Name == xml.Name{Space: NSData, Local: "value"}:
				inValue, text = true, text[:0]
			case depth == 4 && t.Name.Space == NSRSM:
				rsm, text = t.Name.Local, text[:0]
				if rsm == "before" {
					r.hasBefore = true
				}
			}
		case xml.CharData:
			if inValue || rsm != "" {
				text = append(text, t...)
			}
		case xml.EndElement:
			switch {
			case depth == 5 && inValue:
				values = append(values, string(text))
				inValue = false
			case depth == 4 && field != "":
				if err := r.setField(field, values); err != nil {
					return nil, err
				}
				field = ""
			case depth == 4 && rsm != "":
				if err := r.setRSM(rsm, string(text)); err != nil {
					return nil, err
				}
				rsm = ""
			}
			depth--
			if depth == 0 {
				return r, nil
			}
		}
	}
}

func (r *request) setField(name string, values []string) error {
	one := ""
	if len(values) > 0 {
		one = values[0]
	}
	switch name {
	case "FORM_TYPE":
		if one != NS {
			return badRequest("FORM_TYPE must be " + NS)
		}
	case "with":
		j, err := jid.Parse(one)
		if err != nil {
			return router.ErrorText(stanza.Modify, stanza.JIDMalformed, "with is not a JID")
		}
		r.with = j
	case "start", "end":
		t, err := time.Parse(time.RFC3339Nano, one)
		if err != nil {
			return badRequest(name + " is not an XEP-0082 date and time")
		}
		if name == "start" {
			r.start = t.UnixMicro()
		} else {
			r.end = t.UnixMicro()
		}
	case "after-id":
		r.afterID = one
	case "before-id":
		r.beforeID = one
	case "ids":
		r.ids, r.idsSet = slices.Clone(values), true
		if len(r.ids) > maxIDs {
			return badRequest("at most " + strconv.Itoa(maxIDs) + " ids")
		}
	default:
		return badRequest("unsupported field " + name)
	}
	return nil
}

func (r *request) setRSM(name, value string) error {
	switch name {
	case "max":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return badRequest("max must be a number")
		}
		r.max = n
	case "after":
		if value == "" {
			return badRequest("after needs an id")
		}
		r.after = value
	case "before":
		r.before = value
	case "index":
		return router.ErrorText(stanza.Cancel, stanza.FeatureNotImplemented, "paging by index is not supported; use after and before")
	}
	return nil
}

// maxIDs is the most ids one query may name: what storage looks up at
// once.
const maxIDs = storage.MaxQuerySeqs

// archiveRef names the archive a query reads; its results come from it.
type archiveRef struct {
	owner jid.JID // the archive: an account's or a room's bare JID
}

// query answers a query of the user's own archive.
func (s *Service) query(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	return s.run(ctx, archiveRef{owner: iq.From.Bare()}, iq)
}

// run answers a query: the result messages go to the session that asked
// (iq.From), then the returned <fin/> payload ends it.
func (s *Service) run(ctx context.Context, ref archiveRef, iq *router.Stanza) (xml.TokenReader, error) {
	r, err := parseRequest(iq)
	if err != nil {
		return nil, err
	}
	s.w.sync(syncWait)
	owner := ref.owner.String()
	q := storage.ArchiveQuery{Owner: owner, Start: r.start, End: r.end}
	if !r.with.Equal(jid.JID{}) {
		q.With, q.WithResource = r.with.Bare().String(), r.with.Resourcepart()
	}
	if r.idsSet {
		q.Seqs = []int64{}
		for _, id := range r.ids {
			if seq, ok := seqOf(id); ok {
				q.Seqs = append(q.Seqs, seq)
			}
		}
	}
	// The extended filters and the RSM bounds all narrow (exclusive).
	bound := func(id string, after bool) error {
		if id == "" {
			return nil
		}
		seq, err := s.lookup(ctx, owner, id)
		if err != nil {
			return err
		}
		if after {
			q.After = max(q.After, seq)
		} else if q.Before == 0 || seq < q.Before {
			q.Before = seq
		}
		return nil
	}
	for _, b := range []struct {
		id    string
		after bool
	}{{r.afterID, true}, {r.beforeID, false}, {r.after, true}, {r.before, false}} {
		if err := bound(b.id, b.after); err != nil {
			return nil, err
		}
	}
	count, err := s.store.Count(ctx, q)
	if err != nil {
		return nil, err
	}
	max := r.max
	switch {
	case max < 0:
		max = DefaultPage
	case max > MaxPage:
		max = MaxPage
	}
	var page []storage.ArchivedMessage
	complete := true
	if max > 0 {
		q.Limit, q.Newest = max+1, r.hasBefore
		page, err = s.store.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(page) > max {
			page, complete = page[:max], false
		}
		if r.hasBefore {
			slices.Reverse(page) // chronological within the page
		}
		if r.idsSet {
			page = slices.DeleteFunc(page, func(m storage.ArchivedMessage) bool { return !slices.Contains(r.ids, m.ID) })
		}
	} else {
		complete = count == 0
	}
	if r.flip {
		slices.Reverse(page)
	}
	if sess, ok := s.router.SessionOf(iq.From); ok {
		for _, m := range page {
			if err := sess.Deliver(resultMessage(ref.owner, iq.From, r.queryID, m)); err != nil {
				break // the session closed itself; nobody reads the rest
			}
		}
	}
	return finPayload(r.queryID, complete, page, count), nil
}

// lookup turns a stanza id of owner's archive into its sequence number;
// an id that is not there is item-not-found (XEP-0313 §5.1.2).
func (s *Service) lookup(ctx context.Context, owner, id string) (int64, error) {
	notFound := router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no message "+id+" in this archive")
	seq, ok := seqOf(id)
	if !ok {
		return 0, notFound
	}
	m, err := s.store.Get(ctx, owner, seq)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && m.ID != id) {
		return 0, notFound
	}
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// stampLayout is XEP-0082's DateTime in UTC, to the microsecond.
const stampLayout = "2006-01-02T15:04:05.000000Z"

// resultMessage wraps an archived message for the session that asked:
// <message from=archive to=requester><result queryid id><forwarded>
// <delay stamp/><message xmlns='jabber:client' …/></forwarded></result></message>.
func resultMessage(archive, to jid.JID, queryID string, m storage.ArchivedMessage) []byte {
	b := make([]byte, 0, len(m.Stanza)+300)
	b = append(b, "<message"...)
	b = xmlenc.AppendAttr(b, "from", archive.String())
	b = xmlenc.AppendAttr(b, "to", to.String())
	b = append(b, "><result"...)
	b = xmlenc.AppendAttr(b, "xmlns", NS)
	if queryID != "" {
		b = xmlenc.AppendAttr(b, "queryid", queryID)
	}
	b = xmlenc.AppendAttr(b, "id", m.ID)
	b = append(b, "><forwarded"...)
	b = xmlenc.AppendAttr(b, "xmlns", NSForward)
	b = append(b, "><delay"...)
	b = xmlenc.AppendAttr(b, "xmlns", NSDelay)
	b = xmlenc.AppendAttr(b, "stamp", stampOf(m.Seq).Format(stampLayout))
	b = append(b, "/>"...)
	b = xmlenc.AppendDeclaringNS(b, m.Stanza, stanza.NSClient) // XEP-0297: inside <forwarded/> it would be in urn:xmpp:forward:0
	return append(b, "</forwarded></result></message>"...)
}

// finPayload is <fin complete><set><first/><last/><count/></set></fin>.
func finPayload(queryID string, complete bool, page []storage.ArchivedMessage, count int) xml.TokenReader {
	el := func(name, text string) xml.TokenReader {
		return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: name}})
	}
	var set []xml.TokenReader
	if len(page) > 0 {
		set = append(set, el("first", page[0].ID), el("last", page[len(page)-1].ID))
	}
	set = append(set, el("count", strconv.Itoa(count)))
	attrs := []xml.Attr{}
	if queryID != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "queryid"}, Value: queryID})
	}
	if complete {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "complete"}, Value: "true"})
	}
	return xmlstream.Wrap(
		xmlstream.Wrap(xmlstream.MultiReader(set...), xml.StartElement{Name: xml.Name{Space: NSRSM, Local: "set"}}),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "fin"}, Attr: attrs},
	)
}

// form answers a get of <query/>: the fields a query may use (§4.1.1).
func (s *Service) form(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	return formPayload(), nil
}

func formPayload() xml.TokenReader {
	field := func(name, typ string, value string) xml.TokenReader {
		var inner xml.TokenReader
		if value != "" {
			inner = xmlstream.Wrap(xmlstream.Token(xml.CharData(value)), xml.StartElement{Name: xml.Name{Local: "value"}})
		}
		return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "field"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "var"}, Value: name}, {Name: xml.Name{Local: "type"}, Value: typ},
		}})
	}
	x := xmlstream.Wrap(xmlstream.MultiReader(
		field("FORM_TYPE", "hidden", NS),
		field("with", "jid-single", ""),
		field("start", "text-single", ""),
		field("end", "text-single", ""),
		field("after-id", "text-single", ""),
		field("before-id", "text-single", ""),
		field("ids", "text-multi", ""),
	), xml.StartElement{Name: xml.Name{Space: NSData, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "form"}}})
	return xmlstream.Wrap(x, xml.StartElement{Name: xml.Name{Space: NS, Local: "query"}})
}

// metadata answers <metadata/> (§4.2.1 of XEP-0313 1.1): the first and
// last message of the user's archive.
func (s *Service) metadata(ctx context.Context, iq *router.Stanza) (xml.TokenReader, error) {
	return s.metadataOf(ctx, iq.From.Bare())
}

func (s *Service) metadataOf(ctx context.Context, owner jid.JID) (xml.TokenReader, error) {
	s.w.sync(syncWait)
	first, last, ok, err := s.store.Bounds(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	var inner xml.TokenReader
	if ok {
		edge := func(name string, m storage.ArchivedMessage) xml.TokenReader {
			return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: name}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "id"}, Value: m.ID},
				{Name: xml.Name{Local: "timestamp"}, Value: stampOf(m.Seq).Format(stampLayout)},
			}})
		}
		inner = xmlstream.MultiReader(edge("start", first), edge("end", last))
	}
	return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: NS, Local: "metadata"}}), nil
}
