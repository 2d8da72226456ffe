package httpupload

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

var _ router.StanzaHandler = (*Service)(nil)
var _ http.Handler = (*Service)(nil)
var _ Store = (*storage.HTTPUploads)(nil)
var _ OwnerStore = (*storage.HTTPUploads)(nil)
var _ Router = (*router.Router)(nil)

// capture is a Router that keeps what the service sends.
type capture struct {
	mu  sync.Mutex
	got []*router.Stanza
}

func (c *capture) Route(_ context.Context, st *router.Stanza) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, st)
}

// last returns the last stanza sent, as text.
func (c *capture) last(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) == 0 {
		t.Fatal("the service sent nothing")
	}
	return string(c.got[len(c.got)-1].Raw)
}

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTest returns a service on SQLite with a fake clock, not started.
func newTest(t *testing.T, change func(*Options)) (*Service, *capture, *clock) {
	t.Helper()
	db := storagetest.Open(t, storagetest.SQLite(t))
	dir := t.TempDir()
	clk := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 250e6, time.UTC)}
	opts := Options{
		Domain: "upload.example.org", ServerDomain: "example.org",
		Dir: filepath.Join(dir, "files"), SecretFile: filepath.Join(dir, "secret"),
		PublicURL: "https://example.org:5443/", MaxFileSize: 100, Quota: 100,
		SlotTimeout: 5 * time.Minute, MaxAge: time.Hour, SweepInterval: time.Hour, Now: clk.Now,
	}
	if change != nil {
		change(&opts)
	}
	c := &capture{}
	s, err := New(c, db.HTTPUploads(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, c, clk
}

// ask sends a slot request from from and returns the answer.
func ask(t *testing.T, s *Service, c *capture, from, filename, size string) string {
	t.Helper()
	raw := "<iq type='get' id='x' from='" + from + "' to='upload.example.org'><request xmlns='urn:xmpp:http:upload:0' filename='" +
		filename + "' size='" + size + "' content-type='text/plain'/></iq>"
	st, err := router.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	s.HandleStanza(context.Background(), st)
	return c.last(t)
}

// urls returns the PUT and GET URLs of a slot answer.
func urls(t *testing.T, answer string) (putURL, getURL string) {
	t.Helper()
	attr := func(el string) string {
		i := strings.Index(answer, "<"+el+" url='")
		if i < 0 {
			t.Fatalf("no <%s url> in %s", el, answer)
		}
		v := answer[i+len(el)+7:]
		return strings.ReplaceAll(v[:strings.IndexByte(v, '\'')], "&amp;", "&")
	}
	return attr("put"), attr("get")
}

// TestRemoteUsers: only users of the server's domain get slots, unless
// AllowRemote; a domain (a component) never does.
func TestRemoteUsers(t *testing.T) {
	s, c, _ := newTest(t, nil)
	for _, from := range []string{"mallory@evil.example/x", "conference.example.org", "example.org"} {
		if got := ask(t, s, c, from, "a.txt", "1"); !strings.Contains(got, "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>") ||
			!strings.Contains(got, "type='cancel'") {
			t.Errorf("request from %s: %s, want forbidden", from, got)
		}
	}
	if got := ask(t, s, c, "alice@example.org/r", "a.txt", "1"); !strings.Contains(got, "<slot xmlns='urn:xmpp:http:upload:0'>") {
		t.Errorf("request from a local user: %s, want a slot", got)
	}

	s, c, _ = newTest(t, func(o *Options) { o.AllowRemote = true })
	if got := ask(t, s, c, "mallory@evil.example/x", "a.txt", "1"); !strings.Contains(got, "<slot ") {
		t.Errorf("request from a remote user with AllowRemote: %s, want a slot", got)
	}
}

// TestClock drives slot expiry, retry stamps, file expiry and the sweep
// with a fake clock.
func TestClock(t *testing.T) {
	s, c, clk := newTest(t, nil)
	const alice = "alice@example.org/r"
	put := func(u, body string) int {
		req := httptest.NewRequest(http.MethodPut, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w.Code
	}
	get := func(u string) (int, string) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, u, nil))
		return w.Code, w.Body.String()
	}

	// t0: a slot of 60 bytes; another of 60 does not fit until the first
	// expires at t0+5m (rounded up to the second).
	p1, g1 := urls(t, ask(t, s, c, alice, "one.txt", "60"))
	if !strings.HasPrefix(g1, "https://example.org:5443/upload/") {
		t.Errorf("GET URL %q", g1)
	}
	if got := ask(t, s, c, alice, "two.txt", "60"); !strings.Contains(got, "<retry xmlns='urn:xmpp:http:upload:0' stamp='2030-01-01T00:05:01Z'>") {
		t.Errorf("over quota: %s, want a retry at 00:05:01", got)
	}
	// One millisecond after the expiry: PUT refused, and the slot no
	// longer counts.
	clk.add(5*time.Minute + time.Millisecond)
	if code := put(p1, strings.Repeat("x", 60)); code != http.StatusForbidden {
		t.Errorf("PUT 1 ms after the expiry: %d, want 403", code)
	}
	p2, g2 := urls(t, ask(t, s, c, alice, "two.txt", "60"))
	if code := put(p2, strings.Repeat("y", 60)); code != http.StatusCreated {
		t.Fatalf("PUT: %d", code)
	}
	if got := ask(t, s, c, alice, "three.txt", "60"); !strings.Contains(got, "stamp='2030-01-01T01:05:01Z'") {
		t.Errorf("over quota with a file: %s, want a retry at the file's expiry 01:05:01", got)
	}

	// The sweep: the expired slot goes at once it is one timeout past
	// its expiry; the file at MaxAge.
	s.sweep(context.Background())
	if _, err := s.store.Upload(context.Background(), strings.Split(g1, "/")[4]); err != nil {
		t.Errorf("slot swept before its grace ended: %v", err)
	}
	clk.add(5 * time.Minute)
	s.sweep(context.Background())
	if _, err := s.store.Upload(context.Background(), strings.Split(g1, "/")[4]); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired slot after the sweep: %v, want not found", err)
	}
	if code, body := get(g2); code != http.StatusOK || body != strings.Repeat("y", 60) {
		t.Errorf("GET before MaxAge: %d %q", code, body)
	}
	clk.add(time.Hour - 5*time.Minute)
	if code, _ := get(g2); code != http.StatusNotFound {
		t.Errorf("GET at MaxAge: %d, want 404", code)
	}
	id2 := strings.Split(g2, "/")[4]
	if _, err := os.Stat(s.path(id2)); err != nil {
		t.Fatalf("file gone before the sweep: %v", err)
	}
	s.sweep(context.Background())
	if _, err := os.Stat(s.path(id2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after the sweep: %v, want gone", err)
	}
	if _, err := s.store.Upload(context.Background(), id2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("row after the sweep: %v, want gone", err)
	}
}

// TestSecret: the key is made once, 0600, and reused; a short one is
// refused.
func TestSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	a, created, err := loadSecret(p)
	if err != nil || !created || len(a) != secretLen {
		t.Fatalf("first load: %d bytes, created %v, %v", len(a), created, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	b, created, err := loadSecret(p)
	if err != nil || created || !bytes.Equal(a, b) {
		t.Errorf("second load: created %v, same %v, %v", created, bytes.Equal(a, b), err)
	}
	os.WriteFile(p, []byte("short"), 0o600)
	if _, _, err := loadSecret(p); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

// TestSignature: changing any signed field breaks the signature, and a
// signature is only valid for the key that made it.
func TestSignature(t *testing.T) {
	s := &Service{secret: bytes.Repeat([]byte{1}, secretLen)}
	p := putParams{id: "0123456789abcdef0123456789abcdef", name: "a.txt", size: 10, expires: 1_900_000_000_000}
	sig := s.sign(p)
	if !s.verify(p, sig) {
		t.Fatal("own signature refused")
	}
	for name, q := range map[string]putParams{
		"id":      {id: "0123456789abcdef0123456789abcdee", name: p.name, size: p.size, expires: p.expires},
		"name":    {id: p.id, name: "a.txt2", size: p.size, expires: p.expires},
		"size":    {id: p.id, name: p.name, size: 11, expires: p.expires},
		"expires": {id: p.id, name: p.name, size: p.size, expires: p.expires + 1},
		"shifted": {id: p.id, name: "a.txt\x0010", size: 1, expires: p.expires},
	} {
		if s.verify(q, sig) {
			t.Errorf("signature still valid with %s changed", name)
		}
	}
	other := &Service{secret: bytes.Repeat([]byte{2}, secretLen)}
	if other.verify(p, sig) {
		t.Error("signature valid under another key")
	}
	for _, bad := range []string{"", "!!!", sig[:10], sig + "A"} {
		if s.verify(p, bad) {
			t.Errorf("signature %q accepted", bad)
		}
	}
}

// TestParsePath: only /upload/<32 hex>/<one segment> is an upload path.
func TestParsePath(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	for path, want := range map[string]string{
		"/upload/" + id + "/a.txt":              "a.txt",
		"/upload/" + id + "/a%20b%3F.txt":       "a b?.txt",
		"/upload/" + id + "/..%2Fetc":           "../etc",
		"/upload/" + id + "/%2e%2e":             "..",
		"/upload/" + id + "/":                   "",
		"/upload/" + id:                         "",
		"/upload/" + id + "/a/b":                "",
		"/upload/" + id + "//etc/passwd":        "",
		"/upload/../" + id + "/a":               "",
		"/upload/%2e%2e/" + id + "/a":           "",
		"/upload/" + strings.ToUpper(id) + "/a": "",
		"/upload/" + id + "x/a":                 "",
		"/upload/" + id + "%2Fa":                "",
		"/upload/" + id + "/%zz":                "",
		"/other/" + id + "/a":                   "",
	} {
		_, name, ok := parsePath(path)
		if ok != (want != "") || name != want {
			t.Errorf("parsePath(%q) = %q, %v; want %q", path, name, ok, want)
		}
	}
}

// FuzzCleanFilename: a cleaned name is never empty, never longer than
// maxNameBytes, valid UTF-8, without separators or control characters,
// and cleaning it again changes nothing.
func FuzzCleanFilename(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "a\x00b", "é.jpeg", strings.Repeat("é", 150) + ".png", " x ", "..", "\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := cleanFilename(in)
		if err != nil {
			return
		}
		if out == "" || len(out) > maxNameBytes || strings.ContainsAny(out, "/\\\x00") || out == "." || out == ".." {
			t.Fatalf("cleanFilename(%q) = %q", in, out)
		}
		if again, err := cleanFilename(out); err != nil || again != out {
			t.Fatalf("cleanFilename(%q) = %q, then %q, %v", in, out, again, err)
		}
		if _, name, ok := parsePath(urlPath(strings.Repeat("a", 32), out)); !ok || name != out {
			t.Fatalf("URL of %q parses back as %q, %v", out, name, ok)
		}
	})
}

// TestDomain: New refuses a service domain that is not one.
func TestDomain(t *testing.T) {
	for _, d := range []string{"", "a@upload.example.org", "upload.example.org/r"} {
		if _, err := New(&capture{}, nil, Options{Domain: d}, nil); err == nil {
			t.Errorf("New accepted domain %q", d)
		}
	}
}
