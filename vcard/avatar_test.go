package vcard

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/router"
)

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAvatarConversion: a vCard photo becomes XEP-0084 data and metadata
// items (id the SHA-1, size read from the image), which convert back to
// the same photo; metadata naming only a URL, data that does not match
// its id, or no data item give ErrNoAvatar; metadata without info says
// disabled.
func TestAvatarConversion(t *testing.T) {
	img := pngOf(t, 64, 48)
	a := NewAvatar("image/png", img)
	if a.ID != photoHash(img) || a.Width != 64 || a.Height != 48 {
		t.Fatalf("NewAvatar = %+v", a)
	}
	data, meta := AvatarItems(a)
	wantMeta := "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='" + itoa(len(img)) + "' height='48' id='" + a.ID + "' type='image/png' width='64'/></metadata>"
	if string(meta) != wantMeta {
		t.Fatalf("metadata = %s\nwant %s", meta, wantMeta)
	}
	if !strings.HasPrefix(string(data), "<data xmlns='urn:xmpp:avatar:data'>iVBOR") {
		t.Fatalf("data = %.60s", data)
	}
	_, unknownMeta := AvatarItems(NewAvatar("", []byte("not an image")))
	if !strings.Contains(string(unknownMeta), "type='image/png'") || strings.Contains(string(unknownMeta), "width") {
		t.Errorf("metadata of an unknown image = %s", unknownMeta)
	}

	other := []byte("<data xmlns='urn:xmpp:avatar:data'>AAAA</data>")
	got, disabled, err := AvatarFromPEP(meta, []string{"x", a.ID}, [][]byte{other, data})
	if err != nil || disabled || got.ID != a.ID || !bytes.Equal(got.Data, img) || got.Type != "image/png" || got.Width != 64 {
		t.Fatalf("AvatarFromPEP = %+v, %v, %v", got, disabled, err)
	}
	// Several infos: the one without a URL counts.
	multi := []byte("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='9' id='ffff' type='image/png' url='https://example.org/a.png'/><info bytes='" + itoa(len(img)) + "' id='" + a.ID + "' type='image/png'/></metadata>")
	if got, _, err := AvatarFromPEP(multi, []string{a.ID}, [][]byte{data}); err != nil || got.ID != a.ID {
		t.Fatalf("AvatarFromPEP with a URL info first = %+v, %v", got, err)
	}
	urlOnly := []byte("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='9' id='ffff' type='image/png' url='https://example.org/a.png'/></metadata>")
	if _, _, err := AvatarFromPEP(urlOnly, []string{"ffff"}, [][]byte{other}); !errors.Is(err, ErrNoAvatar) {
		t.Errorf("URL only: %v", err)
	}
	if _, _, err := AvatarFromPEP(meta, []string{a.ID}, [][]byte{other}); !errors.Is(err, ErrNoAvatar) {
		t.Errorf("data not matching its id: %v", err)
	}
	if _, _, err := AvatarFromPEP(meta, nil, nil); !errors.Is(err, ErrNoAvatar) {
		t.Errorf("no data: %v", err)
	}
	if _, disabled, err := AvatarFromPEP(DisabledMetadata(), nil, nil); !disabled || err != nil {
		t.Errorf("disabled: %v, %v", disabled, err)
	}

	// Into a vCard and back out.
	v, err := WithPhoto([]byte("<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><EXTVAL>http://x</EXTVAL></PHOTO><NICKNAME>n</NICKNAME></vCard>"), &a)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCard(xmlDecoder(v), 1<<20)
	if err != nil || c.photo != a.ID || c.typ != "image/png" || !bytes.Equal(c.image, img) || c.nick != "n" {
		t.Fatalf("card of %s = %+v, %v", v, c, err)
	}
	if !strings.HasPrefix(string(v), "<vCard xmlns='vcard-temp'><FN>A</FN><NICKNAME>n</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>") {
		t.Errorf("WithPhoto = %.120s", v)
	}
	v, _ = WithPhoto(v, nil)
	if string(v) != "<vCard xmlns='vcard-temp'><FN>A</FN><NICKNAME>n</NICKNAME></vCard>" {
		t.Errorf("photo removed = %s", v)
	}
	if v, _ = WithPhoto(nil, &a); !strings.HasPrefix(string(v), "<vCard xmlns='vcard-temp'><PHOTO>") {
		t.Errorf("photo into no vCard = %.60s", v)
	}
}

// TestNickConversion: a XEP-0172 nickname into and out of a vCard.
func TestNickConversion(t *testing.T) {
	item := NickItem("Alice & <co>")
	if string(item) != "<nick xmlns='http://jabber.org/protocol/nick'>Alice &amp; &lt;co&gt;</nick>" {
		t.Fatalf("NickItem = %s", item)
	}
	if n, err := NickFromPEP(item); err != nil || n != "Alice & <co>" {
		t.Fatalf("NickFromPEP = %q, %v", n, err)
	}
	if _, err := NickFromPEP([]byte("<nick xmlns='other'>x</nick>")); err == nil {
		t.Error("a nick in another namespace read")
	}
	v, _ := WithNickname([]byte("<vCard xmlns='vcard-temp'><NICKNAME>old</NICKNAME><FN>A</FN></vCard>"), "new")
	if string(v) != "<vCard xmlns='vcard-temp'><FN>A</FN><NICKNAME>new</NICKNAME></vCard>" {
		t.Errorf("WithNickname = %s", v)
	}
	v, _ = WithNickname(v, "")
	if string(v) != "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>" {
		t.Errorf("nickname removed = %s", v)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// memStore is an in-memory Store for the sync tests (storage itself is
// tested on both engines in package storage and through the protocol).
type memStore struct {
	mu    sync.Mutex
	cards map[string][]byte
	photo map[string]string
	sets  int
}

func (m *memStore) Get(_ context.Context, user string) ([]byte, string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.cards[user]
	return v, m.photo[user], ok, nil
}

func (m *memStore) Photo(_ context.Context, user string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.cards[user]
	return m.photo[user], ok, nil
}

func (m *memStore) WithPhoto(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for u, p := range m.photo {
		if p != "" {
			out = append(out, u)
		}
	}
	return out, nil
}

func (m *memStore) Set(_ context.Context, user string, v []byte, photo string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cards[user], m.photo[user] = v, photo
	m.sets++
	return nil
}

// fakePEP keeps items per node and calls watch after each publish, as the
// PEP service will call SyncFromPEP (here synchronously, the hardest case
// for the echo guard).
type fakePEP struct {
	mu        sync.Mutex
	items     map[string][][2]string // node → (id, payload), oldest first
	published []string               // node/id of each publish
	watch     func(node string)
}

func (p *fakePEP) Publish(_ context.Context, owner jid.JID, node, id string, payload []byte, _ map[string]string) (string, error) {
	p.mu.Lock()
	if id == "" {
		id = "gen"
	}
	list := p.items[node]
	for i := range list {
		if list[i][0] == id {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	p.items[node] = append(list, [2]string{id, string(payload)})
	p.published = append(p.published, node+"/"+id)
	w := p.watch
	p.mu.Unlock()
	if w != nil {
		w(node)
	}
	return id, nil
}

func (p *fakePEP) Items(_ context.Context, owner jid.JID, node string) ([]string, [][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	var payloads [][]byte
	for _, it := range p.items[node] {
		ids = append(ids, it[0])
		payloads = append(payloads, []byte(it[1]))
	}
	return ids, payloads, nil
}

// TestSyncFromPEP: a vCard set publishes the avatar (data before
// metadata) and nickname once, without the notifications echoing back
// into the vCard; a PEP avatar and nickname published by a client go into
// the vCard; a sync that changes nothing writes nothing; a disabled avatar
// removes the photo.
func TestSyncFromPEP(t *testing.T) {
	ctx := context.Background()
	owner := jid.MustParse("alice@localhost")
	store := &memStore{cards: map[string][]byte{}, photo: map[string]string{}}
	pep := &fakePEP{items: map[string][][2]string{}}
	s := New(store, router.New(jid.MustParse("localhost"), nil, nil), Options{PEP: pep}, nil)
	syncs := 0
	pep.watch = func(node string) {
		syncs++
		if err := s.SyncFromPEP(ctx, owner, node); err != nil {
			t.Errorf("SyncFromPEP(%s): %v", node, err)
		}
	}
	reg := router.New(jid.MustParse("localhost"), nil, nil).Registry()
	s.Register(reg)
	if f := reg.AccountFeatures(); !strings.Contains(strings.Join(f, " "), NSConversion) {
		t.Errorf("account features with PEP wired = %q", f)
	}

	img := pngOf(t, 8, 8)
	a := NewAvatar("image/png", img)
	v, _ := WithPhoto([]byte("<vCard xmlns='vcard-temp'><NICKNAME>ali</NICKNAME></vCard>"), &a)
	c, err := parseCard(xmlDecoder(v), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.store1(ctx, owner, c); err != nil {
		t.Fatal(err)
	}
	s.publish(ctx, pep, owner, card{}, c)
	want := []string{NSAvatarData + "/" + a.ID, NSAvatarMetadata + "/" + a.ID, NSNick + "/gen"}
	if strings.Join(pep.published, " ") != strings.Join(want, " ") {
		t.Fatalf("published %q, want %q", pep.published, want)
	}
	if syncs != 3 || store.sets != 1 {
		t.Fatalf("%d syncs ran, %d vCard writes; want 3 ignored, 1 write", syncs, store.sets)
	}
	// Run after the publish (an asynchronous watcher): nothing to change.
	for _, node := range []string{NSAvatarMetadata, NSNick, NSAvatarData, "urn:xmpp:other"} {
		if err := s.SyncFromPEP(ctx, owner, node); err != nil {
			t.Fatal(err)
		}
	}
	if store.sets != 1 {
		t.Fatalf("syncs of unchanged nodes wrote the vCard (%d writes)", store.sets)
	}

	// A client publishes a new avatar and nickname through PEP.
	img2 := pngOf(t, 16, 16)
	a2 := NewAvatar("image/png", img2)
	data, meta := AvatarItems(a2)
	pep.Publish(ctx, owner, NSAvatarData, a2.ID, data, nil)
	if store.sets != 1 {
		t.Fatalf("a data item alone changed the vCard")
	}
	pep.Publish(ctx, owner, NSAvatarMetadata, a2.ID, meta, nil)
	pep.Publish(ctx, owner, NSNick, "", NickItem("Alice"), nil)
	got, photo, _, _ := store.Get(ctx, owner.String())
	c, _ = parseCard(xmlDecoder(got), 1<<20)
	if photo != a2.ID || c.photo != a2.ID || !bytes.Equal(c.image, img2) || c.nick != "Alice" || store.sets != 3 {
		t.Fatalf("vCard after PEP publishes: photo %s, card %+v, %d writes", photo, c, store.sets)
	}
	pep.Publish(ctx, owner, NSAvatarMetadata, "", DisabledMetadata(), nil)
	got, photo, _, _ = store.Get(ctx, owner.String())
	if photo != "" || strings.Contains(string(got), "PHOTO") {
		t.Fatalf("vCard after the avatar was disabled: %s (%q)", got, photo)
	}
}

func xmlDecoder(b []byte) *xml.Decoder { return xml.NewDecoder(bytes.NewReader(b)) }
