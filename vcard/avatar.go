package vcard

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig learns the avatar formats XEP-0153 names
	_ "image/jpeg"
	_ "image/png"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmlenc"
	"xmppd.dev/xmppd/router"
)

// Avatar is an image as XEP-0084 publishes it.
type Avatar struct {
	ID            string // SHA-1 of Data, lower-case hex
	Type          string // media type, e.g. image/png
	Data          []byte
	Width, Height int // 0 when unknown
}

// NewAvatar makes the avatar of an image, its size read from the image
// when Go knows the format (PNG, JPEG, GIF).
func NewAvatar(typ string, data []byte) Avatar {
	a := Avatar{ID: photoHash(data), Type: typ, Data: data}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
		a.Width, a.Height = cfg.Width, cfg.Height
	}
	return a
}

// AvatarItems returns the payloads XEP-0398 §3.2 publishes for a vCard
// photo: the urn:xmpp:avatar:data item and the urn:xmpp:avatar:metadata
// item, both with id a.ID.
func AvatarItems(a Avatar) (data, metadata []byte) {
	data = []byte("<data xmlns='" + NSAvatarData + "'>" + base64.StdEncoding.EncodeToString(a.Data) + "</data>")
	m := []byte("<metadata xmlns='" + NSAvatarMetadata + "'><info")
	m = xmlenc.AppendAttr(m, "bytes", strconv.Itoa(len(a.Data)))
	if a.Height > 0 && a.Width > 0 {
		m = xmlenc.AppendAttr(m, "height", strconv.Itoa(a.Height))
	}
	m = xmlenc.AppendAttr(m, "id", a.ID)
	typ := a.Type
	if typ == "" {
		typ = "image/png" // info's type is required (XEP-0084 §4.2.1); PNG is what XEP-0153 requires support for
	}
	m = xmlenc.AppendAttr(m, "type", typ)
	if a.Height > 0 && a.Width > 0 {
		m = xmlenc.AppendAttr(m, "width", strconv.Itoa(a.Width))
	}
	return data, append(m, "/></metadata>"...)
}

// DisabledMetadata is the metadata payload that says the user has no
// avatar (XEP-0084 §4.5).
func DisabledMetadata() []byte { return []byte("<metadata xmlns='" + NSAvatarMetadata + "'/>") }

// ErrNoAvatar is returned by AvatarFromPEP when the metadata names no image
// the server can copy (only ones at URLs) or its data item is missing or
// does not match its id.
var ErrNoAvatar = errors.New("vcard: no avatar data to copy")

// AvatarFromPEP reads a metadata payload and finds its image among the data
// items (XEP-0398 §3.1): the info element without a url, whose data item
// has its id and whose SHA-1 matches it. disabled is true when the
// metadata has no info at all (XEP-0084 §4.5).
func AvatarFromPEP(metadata []byte, dataIDs []string, data [][]byte) (a Avatar, disabled bool, err error) {
	var md struct {
		XMLName xml.Name `xml:"urn:xmpp:avatar:metadata metadata"`
		Info    []struct {
			ID     string `xml:"id,attr"`
			Type   string `xml:"type,attr"`
			URL    string `xml:"url,attr"`
			Width  int    `xml:"width,attr"`
			Height int    `xml:"height,attr"`
		} `xml:"urn:xmpp:avatar:metadata info"`
	}
	if err := xml.Unmarshal(metadata, &md); err != nil {
		return a, false, fmt.Errorf("vcard: avatar metadata: %w", err)
	}
	if len(md.Info) == 0 {
		return a, true, nil
	}
	for _, in := range md.Info {
		if in.URL != "" {
			continue
		}
		for i, id := range dataIDs {
			if id != in.ID || i >= len(data) {
				continue
			}
			var d struct {
				XMLName xml.Name `xml:"urn:xmpp:avatar:data data"`
				B64     string   `xml:",chardata"`
			}
			if xml.Unmarshal(data[i], &d) != nil {
				continue
			}
			img, err := decodeBase64(d.B64)
			if err != nil || !strings.EqualFold(photoHash(img), in.ID) {
				continue
			}
			return Avatar{ID: photoHash(img), Type: in.Type, Data: img, Width: in.Width, Height: in.Height}, false, nil
		}
	}
	return a, false, ErrNoAvatar
}

// NickItem is the XEP-0172 payload of a nickname.
func NickItem(nick string) []byte {
	b := []byte("<nick xmlns='" + NSNick + "'>")
	b = xmlenc.AppendEscaped(b, []byte(nick), false)
	return append(b, "</nick>"...)
}

// NickFromPEP reads a XEP-0172 payload.
func NickFromPEP(payload []byte) (string, error) {
	var n struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/nick nick"`
		Nick    string   `xml:",chardata"`
	}
	if err := xml.Unmarshal(payload, &n); err != nil {
		return "", fmt.Errorf("vcard: nick: %w", err)
	}
	return strings.TrimSpace(n.Nick), nil
}

// replaceChild returns the vCard element vcard (nil: an empty one) with
// its children named local removed and elem (serialised, may be nil)
// appended.
func replaceChild(vcard []byte, local string, elem []byte) ([]byte, error) {
	if len(vcard) == 0 {
		vcard = []byte("<vCard xmlns='" + NS + "'/>")
	}
	d := xml.NewDecoder(bytes.NewReader(vcard))
	enc := xmlenc.Encoder{Default: "jabber:client"}
	depth, skip := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("vcard: stored vCard: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if skip > 0 || (depth == 2 && t.Name.Space == NS && t.Name.Local == local) {
				skip++
				continue
			}
		case xml.EndElement:
			depth--
			if skip > 0 {
				skip--
				continue
			}
			if depth == 0 {
				enc.Buf = append(enc.Buf, elem...)
			}
		default:
			if skip > 0 {
				continue
			}
		}
		if err := enc.EncodeToken(tok); err != nil {
			return nil, fmt.Errorf("vcard: stored vCard: %w", err)
		}
	}
	return enc.Buf, nil
}

// WithPhoto returns vcard with its PHOTO replaced by a's (TYPE and BINVAL),
// or removed when a is nil.
func WithPhoto(vcard []byte, a *Avatar) ([]byte, error) {
	var elem []byte
	if a != nil {
		elem = []byte("<PHOTO>")
		if a.Type != "" {
			elem = append(elem, "<TYPE>"...)
			elem = xmlenc.AppendEscaped(elem, []byte(a.Type), false)
			elem = append(elem, "</TYPE>"...)
		}
		elem = append(elem, "<BINVAL>"...)
		elem = append(elem, base64.StdEncoding.EncodeToString(a.Data)...)
		elem = append(elem, "</BINVAL></PHOTO>"...)
	}
	return replaceChild(vcard, "PHOTO", elem)
}

// WithNickname returns vcard with its NICKNAME replaced by nick (removed
// when nick is "").
func WithNickname(vcard []byte, nick string) ([]byte, error) {
	var elem []byte
	if nick != "" {
		elem = xmlenc.AppendEscaped([]byte("<NICKNAME>"), []byte(nick), false)
		elem = append(elem, "</NICKNAME>"...)
	}
	return replaceChild(vcard, "NICKNAME", elem)
}

// nodeOptions are the publish-options of the avatar and nickname nodes a
// vCard set publishes to: access_model open, as Prosody's
// mod_vcard_legacy creates them. The vCard they come from is readable by
// anyone, so a stricter model would hide nothing; and Conversations
// publishes its avatar with access_model=open, which a node created with
// the default (presence) would refuse as precondition-not-met.
func nodeOptions() map[string]string { return map[string]string{"pubsub#access_model": "open"} }

// publishDefault publishes with nodeOptions, which configure the node when
// the publish creates it. A node the owner configured otherwise
// (precondition-not-met) is published to without them: the owner's
// choice stands (Prosody's _defaults_only).
func publishDefault(ctx context.Context, p PEP, owner jid.JID, node, id string, payload []byte) error {
	_, err := p.Publish(ctx, owner, node, id, payload, nodeOptions())
	var ae router.AppError
	if errors.As(err, &ae) && ae.App.Name.Local == "precondition-not-met" {
		_, err = p.Publish(ctx, owner, node, id, payload, nil)
	}
	return err
}

// publish copies what a vCard set changed to PEP: the avatar (data, then
// metadata, XEP-0398 §3.2; disabled when the photo went) and the nickname.
// The vCard is stored already, so a failure is logged, not answered.
func (s *Service) publish(ctx context.Context, p PEP, owner jid.JID, old, c card) {
	key := owner.String()
	defer s.echo.Begin(key)()
	var err error
	switch {
	case c.photo == old.photo || c.photo == photoExternal:
		// Unchanged, or a URL whose image the server does not fetch.
	case c.photo == "":
		err = publishDefault(ctx, p, owner, NSAvatarMetadata, "", DisabledMetadata())
	default:
		a := NewAvatar(c.typ, c.image)
		data, meta := AvatarItems(a)
		if err = publishDefault(ctx, p, owner, NSAvatarData, a.ID, data); err == nil {
			err = publishDefault(ctx, p, owner, NSAvatarMetadata, a.ID, meta)
		}
	}
	if err != nil {
		s.log.Warn("vcard: publishing the avatar to PEP failed", "user", key, "err", err)
	}
	if c.nick != old.nick {
		if err := publishDefault(ctx, p, owner, NSNick, "", NickItem(c.nick)); err != nil {
			s.log.Warn("vcard: publishing the nickname to PEP failed", "user", key, "err", err)
		}
	}
}

// SyncFromPEP copies owner's PEP avatar (node urn:xmpp:avatar:metadata) or
// nickname (http://jabber.org/protocol/nick) into the stored vCard; other
// nodes are ignored. The PEP service calls it after a change to one of
// those nodes is stored, holding none of its locks (this calls Items). It
// does nothing while the change is this service's own publish, or when
// the vCard already says the same. The account's presence is broadcast
// again when the photo changed.
func (s *Service) SyncFromPEP(ctx context.Context, owner jid.JID, node string) error {
	p := s.opts.PEP
	owner = owner.Bare()
	key := owner.String()
	if p == nil || (node != NSAvatarMetadata && node != NSNick) || s.echo.Active(key) {
		return nil
	}
	_, payloads, err := p.Items(ctx, owner, node)
	if err != nil {
		return fmt.Errorf("vcard: sync %s of %s: %w", node, key, err)
	}
	var change func(cur []byte) ([]byte, string, bool, error)
	switch node {
	case NSAvatarMetadata:
		var a Avatar
		disabled := len(payloads) == 0
		if !disabled {
			dataIDs, data, err := p.Items(ctx, owner, NSAvatarData)
			if err != nil {
				return fmt.Errorf("vcard: sync %s of %s: %w", NSAvatarData, key, err)
			}
			a, disabled, err = AvatarFromPEP(payloads[len(payloads)-1], dataIDs, data)
			if err != nil {
				return nil // only URLs, or data not there (yet): nothing to copy
			}
		}
		want := ""
		if !disabled {
			want = a.ID
		}
		change = func(cur []byte) ([]byte, string, bool, error) {
			c, _ := parseCard(xml.NewDecoder(bytes.NewReader(cur)), 1<<30)
			if len(cur) > 0 && c.photo == want {
				return nil, "", false, nil
			}
			if len(cur) == 0 && want == "" {
				return nil, "", false, nil
			}
			var ap *Avatar
			if !disabled {
				ap = &a
			}
			v, err := WithPhoto(cur, ap)
			return v, want, true, err
		}
	case NSNick:
		nick := ""
		if len(payloads) > 0 {
			if nick, err = NickFromPEP(payloads[len(payloads)-1]); err != nil {
				return nil // not a nickname: nothing to copy
			}
		}
		change = func(cur []byte) ([]byte, string, bool, error) {
			c, _ := parseCard(xml.NewDecoder(bytes.NewReader(cur)), 1<<30)
			if c.nick == nick {
				return nil, "", false, nil
			}
			v, err := WithNickname(cur, nick)
			return v, c.photo, true, err
		}
	}
	photoChanged, err := s.apply(ctx, key, change)
	if err != nil {
		return err
	}
	if photoChanged {
		s.rebroadcast(ctx, owner)
	}
	return nil
}

// apply changes key's stored vCard with change, which returns the new
// vCard and its photo value, or false for no change.
func (s *Service) apply(ctx context.Context, key string, change func(cur []byte) ([]byte, string, bool, error)) (photoChanged bool, err error) {
	s.write.Lock()
	defer s.write.Unlock()
	cur, oldPhoto, _, err := s.store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	v, photo, ok, err := change(cur)
	if err != nil || !ok {
		return false, err
	}
	if len(v) > s.opts.MaxBytes {
		s.log.Warn("vcard: PEP avatar not copied: the vCard would exceed max_bytes", "user", key, "bytes", len(v))
		return false, nil
	}
	if err := s.store.Set(ctx, key, v, photo); err != nil {
		return false, err
	}
	s.mu.Lock()
	if _, online := s.photos[key]; online {
		s.photos[key] = photo
	}
	s.notePhoto(key, photo)
	s.mu.Unlock()
	return photo != oldPhoto, nil
}
