package private

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
)

const legacy = `<storage xmlns='storage:bookmarks'>` +
	`<conference jid='Council@Conference.Underhill.org' name='Council of Oberon' autojoin='1'>` +
	`<nick>Puck</nick><password>pass &amp; word</password>` +
	`<minimize xmlns='xmpp:gajim.org/bookmarks'>1</minimize><print_status>yes</print_status></conference>` +
	`<conference jid='tea@rooms.example' autojoin='false'/>` +
	`<conference jid='coffee@rooms.example' name='Coffee' autojoin="true"></conference>` +
	`<conference name='no jid'/>` +
	`<conference jid='tea@rooms.example' name='a second tea'/>` +
	`<url name='Wiki' url='https://wiki.example/'/>` +
	`</storage>`

// TestStorageToItems: XEP-0048 conferences become XEP-0402 items (ids
// normalised, autojoin 1/true/false, nick and password, every other child
// under <extensions/>); a conference without a jid and a repeated jid are
// dropped.
func TestStorageToItems(t *testing.T) {
	ids, payloads, err := StorageToItems([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{"council@conference.underhill.org", "tea@rooms.example", "coffee@rooms.example"}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("ids = %q, want %q", ids, wantIDs)
	}
	want := []string{
		`<conference xmlns='urn:xmpp:bookmarks:1' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pass &amp; word</password>` +
			`<extensions><minimize xmlns='xmpp:gajim.org/bookmarks'>1</minimize><print_status xmlns='storage:bookmarks'>yes</print_status></extensions></conference>`,
		`<conference xmlns='urn:xmpp:bookmarks:1'></conference>`,
		`<conference xmlns='urn:xmpp:bookmarks:1' name='Coffee' autojoin='true'></conference>`,
	}
	for i := range want {
		if string(payloads[i]) != want[i] {
			t.Errorf("item %s = %s\nwant %s", ids[i], payloads[i], want[i])
		}
	}
}

// TestBookmarkRoundTrips: storage → items → storage keeps every bookmark,
// extension and <url/> (given the old storage); items → storage → items
// gives the same items; XEP-0402 items with extensions and autojoin
// forms parse as meant.
func TestBookmarkRoundTrips(t *testing.T) {
	ids, payloads, err := StorageToItems([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	back := ItemsToStorage(ids, payloads, []byte(legacy))
	wantBack := `<storage xmlns='storage:bookmarks'>` +
		`<conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pass &amp; word</password>` +
		`<minimize xmlns='xmpp:gajim.org/bookmarks'>1</minimize><print_status xmlns='storage:bookmarks'>yes</print_status></conference>` +
		`<conference jid='tea@rooms.example'></conference>` +
		`<conference jid='coffee@rooms.example' name='Coffee' autojoin='true'></conference>` +
		`<url xmlns='storage:bookmarks' name='Wiki' url='https://wiki.example/'></url></storage>`
	if string(back) != wantBack {
		t.Fatalf("storage again = %s\nwant %s", back, wantBack)
	}
	if !sameStorage(back, []byte(legacy)) {
		t.Error("sameStorage: the round trip differs from the original")
	}
	ids2, payloads2, err := StorageToItems(back)
	if err != nil || !slices.Equal(ids, ids2) {
		t.Fatalf("items again: %q, %v", ids2, err)
	}
	for i := range payloads {
		if string(payloads[i]) != string(payloads2[i]) {
			t.Errorf("item %s again = %s\nwant %s", ids[i], payloads2[i], payloads[i])
		}
	}
	// Without the old storage, the <url/> has nowhere to come from.
	if s := ItemsToStorage(ids, payloads, nil); strings.Contains(string(s), "url") {
		t.Errorf("url from nowhere: %s", s)
	}

	b, err := ParseConference("Room@Muc.Example", []byte(`<conference xmlns="urn:xmpp:bookmarks:1" autojoin="1" name="R">
		<nick> N </nick><extensions><state xmlns='urn:xmpp:bookmarks:1:ext'><pinned/></state></extensions><unknown/></conference>`))
	if err != nil {
		t.Fatal(err)
	}
	want := Bookmark{JID: "room@muc.example", Name: "R", Autojoin: true, Nick: "N",
		Extensions: []byte("<state xmlns='urn:xmpp:bookmarks:1:ext'><pinned></pinned></state>")}
	if !b.Equal(want) {
		t.Fatalf("ParseConference = %+v\nwant %+v", b, want)
	}
	if _, err := ParseConference("not a jid@", []byte("<conference xmlns='urn:xmpp:bookmarks:1'/>")); err == nil {
		t.Error("an item whose id is no JID parsed")
	}
	if _, err := ParseConference("r@m", []byte("<conference xmlns='storage:bookmarks'/>")); err == nil {
		t.Error("a payload in the legacy namespace parsed as XEP-0402")
	}
	// One broken item costs the others nothing.
	got := ParseItems([]string{"a@m", "b@m", "a@m"}, [][]byte{[]byte("<conference xmlns='urn:xmpp:bookmarks:1'/>"), []byte("<junk/>"), []byte("<conference xmlns='urn:xmpp:bookmarks:1' name='dup'/>")})
	if len(got) != 1 || got[0].JID != "a@m" || got[0].Name != "" {
		t.Errorf("ParseItems = %+v", got)
	}
}

// TestDiff: only new and changed bookmarks are published, only the gone
// retracted (XEP-0402 §5.3.2: no notification for an unchanged item).
func TestDiff(t *testing.T) {
	cur := []Bookmark{{JID: "a@m", Name: "A"}, {JID: "b@m", Autojoin: true}, {JID: "c@m", Extensions: []byte("<x xmlns='e'/>")}}
	next := []Bookmark{{JID: "a@m", Name: "A"}, {JID: "b@m"}, {JID: "c@m", Extensions: []byte("<x xmlns='e'/>")}, {JID: "d@m"}}
	pub, ret := Diff(cur, next)
	if len(pub) != 2 || pub[0].JID != "b@m" || pub[1].JID != "d@m" || len(ret) != 0 {
		t.Fatalf("Diff = %+v, %q", pub, ret)
	}
	pub, ret = Diff(next, cur[:1])
	if len(pub) != 0 || !slices.Equal(ret, []string{"b@m", "c@m", "d@m"}) {
		t.Fatalf("Diff to fewer = %+v, %q", pub, ret)
	}
	if pub, ret := Diff(cur, cur); len(pub)+len(ret) != 0 {
		t.Fatalf("Diff of equal lists = %+v, %q", pub, ret)
	}
}

type memStore struct {
	mu   sync.Mutex
	data map[string]map[string][]byte
	sets int
}

func (m *memStore) Get(_ context.Context, user, ns string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.data[user][ns]
	return d, ok, nil
}

func (m *memStore) Namespaces(_ context.Context, user string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for ns := range m.data[user] {
		out = append(out, ns)
	}
	return out, nil
}

func (m *memStore) Set(_ context.Context, user string, items map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[user] == nil {
		m.data[user] = map[string][]byte{}
	}
	for ns, d := range items {
		m.data[user][ns] = d
	}
	m.sets++
	return nil
}

// fakePEP keeps items per node, records writes, and calls watch after
// each write, synchronously, as a PEP service calling SyncFromPEP might.
type fakePEP struct {
	mu     sync.Mutex
	items  map[string][][2]string
	writes []string
	opts   map[string]map[string]string
	watch  func(node string)
}

func (p *fakePEP) Publish(_ context.Context, _ jid.JID, node, id string, payload []byte, opts map[string]string) (string, error) {
	p.mu.Lock()
	list := p.items[node]
	for i := range list {
		if list[i][0] == id {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	p.items[node] = append(list, [2]string{id, string(payload)})
	p.writes = append(p.writes, "publish "+node+" "+id)
	p.opts[node] = opts
	w := p.watch
	p.mu.Unlock()
	if w != nil {
		w(node)
	}
	return id, nil
}

func (p *fakePEP) Retract(_ context.Context, _ jid.JID, node, id string) error {
	p.mu.Lock()
	list := p.items[node]
	for i := range list {
		if list[i][0] == id {
			p.items[node] = append(list[:i], list[i+1:]...)
			break
		}
	}
	p.writes = append(p.writes, "retract "+node+" "+id)
	w := p.watch
	p.mu.Unlock()
	if w != nil {
		w(node)
	}
	return nil
}

func (p *fakePEP) Items(_ context.Context, _ jid.JID, node string) ([]string, [][]byte, error) {
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

func (p *fakePEP) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.writes
	p.writes = nil
	return w
}

// TestBookmarkSync: a private set of bookmarks publishes each room to
// XEP-0402 and the whole storage to XEP-0048's node, once, without echo;
// a second set publishes only what changed and retracts what went; a
// XEP-0402 publish by a client reaches the private copy (keeping <url/>)
// and the legacy node; a legacy publish reaches the XEP-0402 items; syncs
// with nothing to change write nothing.
func TestBookmarkSync(t *testing.T) {
	ctx := context.Background()
	owner := jid.MustParse("alice@localhost")
	key := owner.String()
	store := &memStore{data: map[string]map[string][]byte{}}
	pep := &fakePEP{items: map[string][][2]string{}, opts: map[string]map[string]string{}}
	s := New(store, Options{PEP: pep}, nil)
	pep.watch = func(node string) {
		if err := s.SyncFromPEP(ctx, owner, node); err != nil {
			t.Errorf("SyncFromPEP(%s): %v", node, err)
		}
	}
	setPrivate := func(storage string) {
		t.Helper()
		if err := s.put(ctx, owner, map[string][]byte{NSBookmarks: []byte(storage)}); err != nil {
			t.Fatal(err)
		}
		if err := s.pushToPEP(ctx, pep, owner, []byte(storage)); err != nil {
			t.Fatal(err)
		}
	}

	setPrivate(legacy)
	want := []string{
		"publish urn:xmpp:bookmarks:1 council@conference.underhill.org",
		"publish urn:xmpp:bookmarks:1 tea@rooms.example",
		"publish urn:xmpp:bookmarks:1 coffee@rooms.example",
		"publish storage:bookmarks current",
	}
	if got := pep.take(); !slices.Equal(got, want) {
		t.Fatalf("writes = %q\nwant %q", got, want)
	}
	if o := pep.opts[NSBookmarks2]; o["pubsub#access_model"] != "whitelist" || o["pubsub#max_items"] != "max" || o["pubsub#send_last_published_item"] != "never" || o["pubsub#persist_items"] != "true" {
		t.Errorf("XEP-0402 publish-options = %v", o)
	}
	if o := pep.opts[NSBookmarks]; o["pubsub#access_model"] != "whitelist" || o["pubsub#persist_items"] != "true" {
		t.Errorf("XEP-0048 publish-options = %v", o)
	}
	if store.sets != 1 {
		t.Fatalf("the echo rewrote the private copy: %d writes", store.sets)
	}

	// The same again: nothing to write anywhere.
	setPrivate(legacy)
	if got := pep.take(); len(got) != 0 {
		t.Fatalf("an unchanged set wrote %q", got)
	}
	// tea renamed, coffee gone.
	setPrivate(`<storage xmlns='storage:bookmarks'><conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick><password>pass &amp; word</password>` +
		`<minimize xmlns='xmpp:gajim.org/bookmarks'>1</minimize><print_status>yes</print_status></conference><conference jid='tea@rooms.example' name='Tea'/></storage>`)
	want = []string{
		"publish urn:xmpp:bookmarks:1 tea@rooms.example",
		"retract urn:xmpp:bookmarks:1 coffee@rooms.example",
		"publish storage:bookmarks current",
	}
	if got := pep.take(); !slices.Equal(got, want) {
		t.Fatalf("writes = %q\nwant %q", got, want)
	}

	// A XEP-0402 client adds a room: the private copy and the legacy node
	// follow; the private copy's <url/> of an earlier set is kept.
	store.Set(ctx, key, map[string][]byte{NSBookmarks: []byte(legacy)})
	sets := store.sets
	pep.Publish(ctx, owner, NSBookmarks2, "new@rooms.example", []byte("<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>p</nick></conference>"), Bookmarks2Options())
	want = []string{"publish urn:xmpp:bookmarks:1 new@rooms.example", "publish storage:bookmarks current"}
	if got := pep.take(); !slices.Equal(got, want) {
		t.Fatalf("writes = %q\nwant %q", got, want)
	}
	priv, _, _ := store.Get(ctx, key, NSBookmarks)
	if store.sets != sets+1 || !strings.Contains(string(priv), "<conference jid='new@rooms.example' autojoin='true'><nick>p</nick></conference>") ||
		!strings.Contains(string(priv), "<url xmlns='storage:bookmarks' name='Wiki'") || strings.Contains(string(priv), "coffee") {
		t.Fatalf("private copy after a XEP-0402 publish (%d writes): %s", store.sets-sets, priv)
	}
	ids, payloads, _ := pep.Items(ctx, owner, NSBookmarks)
	if len(ids) != 1 || !sameStorage(payloads[0], priv) {
		t.Fatalf("legacy node = %s, want %s", payloads, priv)
	}
	// The get answers from PEP.
	got, ok, err := s.load(ctx, owner, NSBookmarks)
	if err != nil || !ok || !sameStorage(got, priv) {
		t.Fatalf("load = %s, %v, %v", got, ok, err)
	}

	// A XEP-0048 PEP client replaces the list: only tea stays.
	pep.Publish(ctx, owner, NSBookmarks, LegacyItem, []byte("<storage xmlns='storage:bookmarks'><conference jid='tea@rooms.example' name='Tea'/></storage>"), LegacyOptions())
	want = []string{
		"publish storage:bookmarks current",
		"retract urn:xmpp:bookmarks:1 council@conference.underhill.org",
		"retract urn:xmpp:bookmarks:1 new@rooms.example",
	}
	if got := pep.take(); !slices.Equal(got, want) {
		t.Fatalf("writes = %q\nwant %q", got, want)
	}
	if ids, _, _ := pep.Items(ctx, owner, NSBookmarks2); !slices.Equal(ids, []string{"tea@rooms.example"}) {
		t.Fatalf("XEP-0402 items after a legacy publish: %q", ids)
	}
	// Syncs that find everything in step write nothing.
	sets = store.sets
	for _, node := range []string{NSBookmarks2, NSBookmarks, "urn:xmpp:other"} {
		if err := s.SyncFromPEP(ctx, owner, node); err != nil {
			t.Fatal(err)
		}
	}
	if got := pep.take(); len(got) != 0 || store.sets != sets {
		t.Fatalf("in-step syncs wrote %q and %d private copies", got, store.sets-sets)
	}
}
