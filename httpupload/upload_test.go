package httpupload_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestDisco: the service is in the server's disco#items, and its
// disco#info has the store/file identity, the XEP-0363 feature and the
// XEP-0128 form with max-file-size.
func TestDisco(t *testing.T) {
	e := start(t, limits(5000, 100000, 5*60e9, 3600e9, 3600e9))

	items := e.iq(t, e.alice, "get", e.srv.Domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if !items.Contains("jid='" + service + "'") {
		t.Errorf("server disco#items has no %s: %s", service, items.Raw)
	}

	info := e.iq(t, e.alice, "get", service, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	var q struct {
		Identities []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
		} `xml:"identity"`
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
		Forms []struct {
			Type   string `xml:"type,attr"`
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Type   string   `xml:"type,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"jabber:x:data x"`
	}
	if err := xml.Unmarshal([]byte(info.Inner), &q); err != nil || info.Attr("type") != "result" {
		t.Fatalf("disco#info: %s (%v)", info.Raw, err)
	}
	if len(q.Identities) != 1 || q.Identities[0].Category != "store" || q.Identities[0].Type != "file" {
		t.Errorf("identities %+v, want one store/file", q.Identities)
	}
	var feats []string
	for _, f := range q.Features {
		feats = append(feats, f.Var)
	}
	if !strings.Contains(strings.Join(feats, " "), "urn:xmpp:http:upload:0") {
		t.Errorf("features %q lack urn:xmpp:http:upload:0", feats)
	}
	if len(q.Forms) != 1 || q.Forms[0].Type != "result" {
		t.Fatalf("forms %+v, want one result form", q.Forms)
	}
	got := map[string]string{}
	for _, f := range q.Forms[0].Fields {
		if len(f.Values) != 1 {
			t.Errorf("field %s has values %q", f.Var, f.Values)
			continue
		}
		got[f.Var] = f.Type + "=" + f.Values[0]
	}
	want := map[string]string{"FORM_TYPE": "hidden=urn:xmpp:http:upload:0", "max-file-size": "=5000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("form fields %v, want %v", got, want)
	}

	for name, tc := range map[string]struct{ typ, to, payload, cond string }{
		"items":           {"get", service, "<query xmlns='http://jabber.org/protocol/disco#items'/>", ""},
		"ping":            {"get", service, "<ping xmlns='urn:xmpp:ping'/>", ""},
		"unknown payload": {"get", service, "<query xmlns='jabber:iq:version'/>", "service-unavailable"},
		"request as set":  {"set", service, request("a.txt", "1", "text/plain"), "service-unavailable"},
		"to a user there": {"get", "bob@" + service, request("a.txt", "1", "text/plain"), "service-unavailable"},
	} {
		el := e.iq(t, e.alice, tc.typ, tc.to, tc.payload)
		switch {
		case tc.cond == "" && el.Attr("type") != "result":
			t.Errorf("%s: %s, want a result", name, el.Raw)
		case tc.cond != "":
			if got := errorOf(t, el); got.Condition != tc.cond {
				t.Errorf("%s: condition %q, want %q", name, got.Condition, tc.cond)
			}
		}
	}
}

// TestRoundTrip: a slot, a PUT of random bytes, then GET, a range, HEAD
// and a CORS preflight; what comes back is byte for byte what went up,
// with the safety headers.
func TestRoundTrip(t *testing.T) {
	e := start(t)
	body := make([]byte, 100_000)
	rand.Read(body)
	name := "très cool #1?.png"
	s := e.askSlot(t, e.alice, name, strconv.Itoa(len(body)), "image/png")

	base := "http://localhost:" + e.srv.HTTP[strings.LastIndexByte(e.srv.HTTP, ':')+1:] + "/upload/" + s.id() + "/"
	if want := base + "tr%C3%A8s%20cool%20%231%3F.png"; s.Get.URL != want {
		t.Errorf("GET URL %q, want %q", s.Get.URL, want)
	}
	if !strings.HasPrefix(s.Put.URL, s.Get.URL+"?") || len(s.Put.Headers) != 0 {
		t.Errorf("PUT URL %q with headers %+v, want the GET URL with a signed query and no headers", s.Put.URL, s.Put.Headers)
	}
	if resp := do(t, http.MethodGet, s.Get.URL, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET before the upload: %s, want 404", resp.Status)
	}

	resp := put(t, s, "image/png", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, readAll(t, resp))
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("PUT Access-Control-Allow-Origin = %q", got)
	}
	if got, err := e.stored(t, s.id()); err != nil || !bytes.Equal(got, body) {
		t.Errorf("file on disk under the slot id: %d bytes, %v; want the %d bytes sent", len(got), err, len(body))
	}
	if files := e.files(t); len(files) != 1 || files[0] != s.id() {
		t.Errorf("upload directory holds %q, want only %q (no client-chosen names, no temporary files)", files, s.id())
	}

	resp = do(t, http.MethodGet, s.Get.URL, nil, nil)
	got := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d bytes; want 200 and the %d bytes uploaded", resp.Status, len(got), len(body))
	}
	for h, want := range map[string]string{
		"Content-Type":                "image/png",
		"Content-Length":              strconv.Itoa(len(body)),
		"X-Content-Type-Options":      "nosniff",
		"Content-Disposition":         `inline; filename*=utf-8''tr%C3%A8s%20cool%20#1%3F.png`,
		"Access-Control-Allow-Origin": "*",
		"Accept-Ranges":               "bytes",
		"Content-Security-Policy":     "default-src 'none'; frame-ancestors 'none'",
	} {
		if v := resp.Header.Get(h); v != want {
			t.Errorf("GET %s = %q, want %q", h, v, want)
		}
	}

	resp = do(t, http.MethodGet, s.Get.URL, nil, map[string]string{"Range": "bytes=1000-1999"})
	if got := readAll(t, resp); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[1000:2000]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(body)) {
		t.Errorf("range GET: %s, Content-Range %q, %d bytes; want 206 and bytes 1000-1999", resp.Status, resp.Header.Get("Content-Range"), len(got))
	}

	resp = do(t, http.MethodHead, s.Get.URL, nil, nil)
	if got := readAll(t, resp); resp.StatusCode != http.StatusOK || len(got) != 0 ||
		resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("HEAD: %s, Content-Length %q, type %q, %d body bytes", resp.Status, resp.Header.Get("Content-Length"), resp.Header.Get("Content-Type"), len(got))
	}

	resp = do(t, http.MethodOptions, s.Put.URL, nil, map[string]string{
		"Origin": "https://web.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type",
	})
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, Authorization, Range",
	} {
		if v := resp.Header.Get(h); v != want {
			t.Errorf("OPTIONS %s = %q, want %q", h, v, want)
		}
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("OPTIONS: %s, want 204", resp.Status)
	}
	if resp := do(t, http.MethodDelete, s.Get.URL, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %s, want 405", resp.Status)
	}
	if resp := do(t, http.MethodGet, base+"other.png", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET with another file name: %s, want 404", resp.Status)
	}
}

// TestServedTypes: only types that cannot run script in a browser are
// inline; the others are attachments under a sandboxing policy. A slot
// without a content type takes the PUT's.
func TestServedTypes(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		announced, sent, served, disposition string
	}{
		{"image/jpeg", "image/jpeg", "image/jpeg", "inline"},
		{"audio/ogg", "audio/ogg", "audio/ogg", "inline"},
		{"video/mp4", "video/mp4", "video/mp4", "inline"},
		{"text/plain; charset=utf-8", "Text/Plain;Charset=utf-8", "text/plain; charset=utf-8", "inline"},
		{"image/svg+xml", "image/svg+xml", "image/svg+xml", "attachment"},
		{"text/html", "text/html", "text/html", "attachment"},
		{"application/pdf", "application/pdf", "application/pdf", "attachment"},
		{"-", "", "application/octet-stream", "attachment"},
		{"-", "image/gif", "image/gif", "inline"},
	} {
		body := []byte("<svg onload=alert(1)>")
		s := e.askSlot(t, e.alice, "f.bin", strconv.Itoa(len(body)), tc.announced)
		if resp := put(t, s, tc.sent, body); resp.StatusCode != http.StatusCreated {
			t.Errorf("%s/%s: PUT %s %s", tc.announced, tc.sent, resp.Status, readAll(t, resp))
			continue
		}
		resp := do(t, http.MethodGet, s.Get.URL, nil, nil)
		csp := "default-src 'none'; frame-ancestors 'none'"
		if tc.disposition == "attachment" {
			csp += "; sandbox"
		}
		if ct, cd, p := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), resp.Header.Get("Content-Security-Policy"); ct != tc.served ||
			cd != tc.disposition+`; filename=f.bin` || p != csp || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s/%s: served as %q, %q, CSP %q; want %q, %s, CSP %q", tc.announced, tc.sent, ct, cd, p, tc.served, tc.disposition, csp)
		}
	}
}

// TestSlotRefusals: every refusal of a slot request, with its condition,
// type and XEP-0363 element; and names that are cleaned rather than
// refused.
func TestSlotRefusals(t *testing.T) {
	e := start(t, limits(1000, 1<<20, 5*60e9, 3600e9, 3600e9))
	for _, tc := range []struct {
		name, filename, size, ctype string
		typ, cond, app              string
	}{
		{"too large", "a.bin", "1001", "-", "modify", "not-acceptable",
			"{urn:xmpp:http:upload:0}file-too-large:<max-file-size>1000</max-file-size>"},
		{"no size", "a.bin", "-", "-", "modify", "bad-request", ""},
		{"empty size", "a.bin", "", "-", "modify", "bad-request", ""},
		{"size not a number", "a.bin", "ten", "-", "modify", "bad-request", ""},
		{"negative size", "a.bin", "-1", "-", "modify", "bad-request", ""},
		{"size with a sign", "a.bin", "+10", "-", "modify", "bad-request", ""},
		{"size overflows", "a.bin", "99999999999999999999", "-", "modify", "bad-request", ""},
		{"no filename", "-", "10", "-", "modify", "bad-request", ""},
		{"empty filename", "", "10", "-", "modify", "bad-request", ""},
		{"blank filename", "   ", "10", "-", "modify", "bad-request", ""},
		{"dot", ".", "10", "-", "modify", "bad-request", ""},
		{"dot dot", "..", "10", "-", "modify", "bad-request", ""},
		{"traversal", "../../etc/passwd", "10", "-", "modify", "bad-request", ""},
		{"absolute path", "/etc/passwd", "10", "-", "modify", "bad-request", ""},
		{"backslash", `..\..\boot.ini`, "10", "-", "modify", "bad-request", ""},
		{"tab", "a\tb.txt", "10", "-", "modify", "bad-request", ""},
		{"newline", "a\nb.txt", "10", "-", "modify", "bad-request", ""},
		{"C1 control", "a\u0085b.txt", "10", "-", "modify", "bad-request", ""},
		{"bidi override", "photo\u202egpj.exe", "10", "-", "modify", "bad-request", ""},
		{"bad content type", "a.txt", "10", "text", "modify", "bad-request", ""},
		{"content type with junk", "a.txt", "10", "text/plain; x", "modify", "bad-request", ""},
	} {
		el := e.iq(t, e.alice, "get", service, request(tc.filename, tc.size, tc.ctype))
		got := errorOf(t, el)
		if got.Type != tc.typ || got.Condition != tc.cond || got.App != tc.app {
			t.Errorf("%s: error %s/%s app %q, want %s/%s app %q (%s)", tc.name, got.Type, got.Condition, got.App, tc.typ, tc.cond, tc.app, el.Raw)
		}
		if got.Text == "" {
			t.Errorf("%s: no text in %s", tc.name, el.Raw)
		}
	}
	if files := e.files(t); len(files) != 0 {
		t.Errorf("upload directory holds %q after refusals", files)
	}

	// Cleaned, not refused: white space around, overlong names (the
	// extension kept), characters that mean something in URLs.
	for _, tc := range []struct{ filename, served string }{
		{"  report.pdf\u00a0", "report.pdf"},
		{strings.Repeat("é", 150) + ".jpeg", strings.Repeat("é", 97) + ".jpeg"},
		{strings.Repeat("x", 300), strings.Repeat("x", 200)},
		{"%2e%2e", "%2e%2e"},
		{"a?b#c&d=e;f", "a?b#c&d=e;f"},
	} {
		s := e.askSlot(t, e.alice, tc.filename, "3", "-")
		if resp := put(t, s, "", []byte("abc")); resp.StatusCode != http.StatusCreated {
			t.Errorf("%q: PUT %s %s", tc.filename, resp.Status, readAll(t, resp))
			continue
		}
		resp := do(t, http.MethodGet, s.Get.URL, nil, nil)
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if resp.StatusCode != http.StatusOK || params["filename"] != tc.served {
			t.Errorf("%q: GET %s, served as %q (%q); want %q", tc.filename, resp.Status, params["filename"], s.Get.URL, tc.served)
		}
	}
}

// TestHTTPS: with tls_listen set the URLs are https, served with the
// server's certificate.
func TestHTTPS(t *testing.T) {
	e := start(t, xmpptest.WithHTTPS())
	s := e.askSlot(t, e.alice, "note.txt", "5", "text/plain")
	port := e.srv.HTTPS[strings.LastIndexByte(e.srv.HTTPS, ':')+1:]
	if !strings.HasPrefix(s.Get.URL, "https://localhost:"+port+"/upload/") {
		t.Fatalf("GET URL %q, want https on port %s", s.Get.URL, port)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPut, s.Put.URL, strings.NewReader("hello"))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT over TLS: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = c.Get(s.Get.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello" || resp.TLS == nil || resp.ProtoMajor != 2 {
		t.Errorf("GET over TLS: %q (TLS %v, %s)", b, resp.TLS != nil, resp.Proto)
	}
}

// TestPostgres: the same service on PostgreSQL: a slot, its upload, the
// file served back, the slot used once, and the quota counting it.
func TestPostgres(t *testing.T) {
	e := start(t, xmpptest.WithPostgres(t), limits(1000, 1000, 5*60e9, 3600e9, 3600e9))
	s := e.askSlot(t, e.alice, "pg.txt", "600", "text/plain")
	body := bytes.Repeat([]byte("p"), 600)
	if resp := put(t, s, "text/plain", body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, readAll(t, resp))
	}
	if resp := put(t, s, "text/plain", body); resp.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s, want 409", resp.Status)
	}
	if got := readAll(t, do(t, http.MethodGet, s.Get.URL, nil, nil)); !bytes.Equal(got, body) {
		t.Errorf("GET: %d bytes, want the 600 uploaded", len(got))
	}
	el := e.iq(t, e.alice, "get", service, request("more.txt", "600", "text/plain"))
	if se := errorOf(t, el); se.Condition != "resource-constraint" || !strings.Contains(se.App, "retry") {
		t.Errorf("over quota: %s/%q", se.Condition, se.App)
	}
}
