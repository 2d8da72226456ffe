package httpupload_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// TestPutRefusals: every way a PUT can be wrong is refused with its
// status and stores nothing; the slot is still usable afterwards, once.
func TestPutRefusals(t *testing.T) {
	e := start(t)
	body := []byte("0123456789")
	size := strconv.Itoa(len(body))
	s := e.askSlot(t, e.alice, "data.png", size, "image/png")
	other := e.askSlot(t, e.alice, "other.png", size, "image/png")
	pu, err := url.Parse(s.Put.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	path, id := pu.EscapedPath(), s.id()
	sig := q.Get("sig")
	// with returns the PUT target with query key set to value ("" removes it).
	with := func(key, value string) string {
		q := pu.Query()
		if value == "" {
			q.Del(key)
		} else {
			q.Set(key, value)
		}
		return path + "?" + q.Encode()
	}
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	flipped := []byte(sig)
	flipped[3] ^= 1
	otherID := strings.Repeat("0", 32)
	if otherID == id {
		otherID = strings.Repeat("1", 32)
	}
	good := map[string]string{"Content-Type": "image/png", "Content-Length": size}
	hdr := func(kv ...string) map[string]string {
		h := map[string]string{"Content-Type": "image/png", "Content-Length": size}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(h, kv[i])
			} else {
				h[kv[i]] = kv[i+1]
			}
		}
		return h
	}
	chunked := "a\r\n" + string(body) + "\r\n0\r\n\r\n"

	for _, tc := range []struct {
		name   string
		target string
		header map[string]string
		body   string
		status int
	}{
		{"longer than announced", s.Put.URL, hdr("Content-Length", "11"), string(body) + "x", http.StatusRequestEntityTooLarge},
		{"shorter than announced", s.Put.URL, hdr("Content-Length", "9"), string(body[:9]), http.StatusBadRequest},
		{"no Content-Length", s.Put.URL, hdr("Content-Length", "", "Transfer-Encoding", "chunked"), chunked, http.StatusLengthRequired},
		{"other content type", s.Put.URL, hdr("Content-Type", "image/jpeg"), string(body), http.StatusUnsupportedMediaType},
		{"no content type", s.Put.URL, hdr("Content-Type", ""), string(body), http.StatusUnsupportedMediaType},
		{"size changed", with("size", "11"), hdr("Content-Length", "11"), string(body) + "x", http.StatusForbidden},
		{"size changed, same length", with("size", "9"), hdr("Content-Length", "9"), string(body[:9]), http.StatusForbidden},
		{"expiry extended", with("expires", strconv.FormatInt(exp+3600_000, 10)), good, string(body), http.StatusForbidden},
		{"expiry removed", with("expires", ""), good, string(body), http.StatusForbidden},
		{"signature changed", with("sig", string(flipped)), good, string(body), http.StatusForbidden},
		{"signature missing", with("sig", ""), good, string(body), http.StatusForbidden},
		{"no query", path, good, string(body), http.StatusForbidden},
		{"size twice", path + "?" + pu.RawQuery + "&size=10", good, string(body), http.StatusForbidden},
		{"filename changed", strings.Replace(with("sig", sig), "data.png", "data.jpg", 1), good, string(body), http.StatusForbidden},
		{"slot id changed", strings.Replace(s.Put.URL[strings.Index(s.Put.URL, "/upload/"):], id, otherID, 1), good, string(body), http.StatusForbidden},
		{"another slot's signature", target(t, other.Put.URL[:strings.Index(other.Put.URL, "?")]) + "?" + pu.RawQuery, good, string(body), http.StatusForbidden},
		{"encoded slash in filename", "/upload/" + id + "/..%2F..%2Fdata.png?" + pu.RawQuery, good, string(body), http.StatusForbidden},
		{"encoded slash in slot path", "/upload/" + id + "%2Fdata.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"dot dot", "/upload/../upload/" + id + "/data.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"encoded dot dot", "/upload/%2e%2e/" + id + "/data.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"dot dot as filename", "/upload/" + id + "/..?" + pu.RawQuery, good, string(body), http.StatusForbidden},
		{"absolute path", "/upload//etc/passwd?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"absolute path as filename", "/upload/" + id + "//etc/passwd?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"extra segment", "/upload/" + id + "/x/data.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"upper-case slot id", "/upload/" + strings.ToUpper(id) + "/data.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
		{"outside the prefix", "/uploads/" + id + "/data.png?" + pu.RawQuery, good, string(body), http.StatusNotFound},
	} {
		resp, text := raw(t, e.srv.HTTP, http.MethodPut, tc.target, tc.header, []byte(tc.body))
		if resp.StatusCode != tc.status {
			t.Errorf("%s: PUT %s: %s %q, want %d", tc.name, tc.target, resp.Status, text, tc.status)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: no CORS header on the refusal", tc.name)
		}
		if files := e.files(t); len(files) != 0 {
			t.Fatalf("%s: upload directory holds %q after a refused PUT", tc.name, files)
		}
		if resp := do(t, http.MethodGet, s.Get.URL, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: GET after a refused PUT: %s, want 404", tc.name, resp.Status)
		}
	}

	// The slot is untouched: the right PUT works, once.
	if resp := put(t, s, "image/png", body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after the refusals: %s %s", resp.Status, readAll(t, resp))
	}
	if resp := put(t, s, "image/png", []byte("9876543210")); resp.StatusCode != http.StatusConflict {
		t.Errorf("second PUT to the same URL: %s, want 409", resp.Status)
	}
	resp := do(t, http.MethodGet, s.Get.URL, nil, nil)
	if got := readAll(t, resp); !bytes.Equal(got, body) {
		t.Errorf("after the reused URL, GET gives %q, want %q", got, body)
	}
	for _, target := range []string{
		"/upload/../" + id + "/data.png", "/upload/%2e%2e/%2e%2e/etc/passwd", "/upload/" + id + "/..%2Fdata.png",
		"/upload/" + id + "/data.png%00", "/upload/" + id + "/", "/upload/" + id, "/upload/",
	} {
		if resp, _ := raw(t, e.srv.HTTP, http.MethodGet, target, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", target, resp.Status)
		}
	}
}

// TestPutConcurrent: while one PUT of a slot is under way, another is
// refused with 409; the first completes.
func TestPutConcurrent(t *testing.T) {
	e := start(t)
	body := bytes.Repeat([]byte("ab"), 5000)
	s := e.askSlot(t, e.alice, "big.txt", strconv.Itoa(len(body)), "text/plain")
	conn, r := startPut(t, e, s, "text/plain", len(body), body[:100])
	xmpptest.WaitFor(t, 2*time.Second, e.tempFile(t))

	if resp := put(t, s, "text/plain", body); resp.StatusCode != http.StatusConflict {
		t.Errorf("PUT during another PUT of the slot: %s, want 409", resp.Status)
	}
	if _, err := conn.Write(body[100:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("first PUT: %v %v", resp, err)
	}
	got := readAll(t, do(t, http.MethodGet, s.Get.URL, nil, nil))
	if !bytes.Equal(got, body) {
		t.Errorf("GET gives %d bytes, want the %d uploaded", len(got), len(body))
	}
}

// TestPutInterrupted: a client that goes away mid-upload leaves no file
// behind, and the slot can be uploaded to afterwards.
func TestPutInterrupted(t *testing.T) {
	e := start(t)
	body := bytes.Repeat([]byte("z"), 20000)
	s := e.askSlot(t, e.alice, "cut.bin", strconv.Itoa(len(body)), "application/octet-stream")
	conn, _ := startPut(t, e, s, "application/octet-stream", len(body), body[:5000])
	xmpptest.WaitFor(t, 2*time.Second, e.tempFile(t))
	conn.Close()
	xmpptest.WaitFor(t, 2*time.Second, func() error {
		if files := e.files(t); len(files) != 0 {
			return fmt.Errorf("upload directory holds %q", files)
		}
		return nil
	})
	if resp := do(t, http.MethodGet, s.Get.URL, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after an interrupted PUT: %s, want 404", resp.Status)
	}
	// The server may still be finishing the interrupted PUT when the
	// client comes back: a 409 then is "try again", never lost data.
	xmpptest.WaitFor(t, 2*time.Second, func() error {
		resp := put(t, s, "application/octet-stream", body)
		if resp.StatusCode == http.StatusConflict && strings.Contains(string(readAll(t, resp)), "being uploaded") {
			return fmt.Errorf("PUT after an interrupted one: still busy")
		}
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT after an interrupted one: %s %s", resp.Status, readAll(t, resp))
		}
		return nil
	})
	if got := readAll(t, do(t, http.MethodGet, s.Get.URL, nil, nil)); !bytes.Equal(got, body) {
		t.Errorf("GET after the second PUT gives %d bytes, want the %d uploaded", len(got), len(body))
	}
}

// startPut opens a connection and sends a PUT's headers (Content-Length
// n) and the first part of its body.
func startPut(t *testing.T, e *env, s slot, ctype string, n int, part []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", target(t, s.Put.URL), ctype, n)
	if _, err := conn.Write(part); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// tempFile returns a condition: the upload directory holds one temporary
// file (an upload is being received).
func (e *env) tempFile(t *testing.T) func() error {
	return func() error {
		files := e.files(t)
		if len(files) != 1 || !strings.HasPrefix(files[0], ".upload-") {
			return fmt.Errorf("upload directory holds %q, want one temporary file", files)
		}
		return nil
	}
}
