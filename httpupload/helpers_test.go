package httpupload_test

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// service is the upload service's domain on the test server.
const service = "upload.localhost"

// timeout bounds each wait for a stanza.
const timeout = 5 * time.Second

// env is a test server with HTTP on, and alice logged in.
type env struct {
	srv   *xmpptest.Server
	alice *xmpptest.Client
	dir   string // the upload directory
	n     int    // request ids
}

// start starts a server with the HTTP listener and the upload service,
// with opts applied after, and logs alice in.
func start(t *testing.T, opts ...xmpptest.Option) *env {
	t.Helper()
	srv := xmpptest.Start(t, append([]xmpptest.Option{xmpptest.WithHTTP()}, opts...)...)
	alice := srv.Login(t, srv.AddUser(t, "alice", "pw"), "pw", xmpptest.LoginOptions{Resource: "r"})
	return &env{srv: srv, alice: alice, dir: srv.Config.UploadDir()}
}

// limits sets [httpupload] sizes and durations.
func limits(maxFile, quota int, slotTimeout, maxAge, sweep time.Duration) xmpptest.Option {
	return func(c *config.Config) {
		u := &c.HTTPUpload
		u.MaxFileSize, u.QuotaBytes = maxFile, quota
		u.SlotTimeout = config.Duration{Duration: slotTimeout}
		u.MaxAge = config.Duration{Duration: maxAge}
		u.SweepInterval = config.Duration{Duration: sweep}
	}
}

// attr escapes s for a single-quoted attribute, control characters
// included (as character references, which XML allows for tab, newline
// and carriage return only; the others are never sent).
func attr(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '\'':
			b.WriteString("&apos;")
		case '\t', '\n', '\r':
			fmt.Fprintf(&b, "&#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// iq sends an IQ of type typ with payload to to and returns the answer.
func (e *env) iq(t *testing.T, c *xmpptest.Client, typ, to, payload string) xmpptest.Element {
	t.Helper()
	e.n++
	id := fmt.Sprintf("q%d", e.n)
	c.Send("<iq type='%s' id='%s' to='%s'>%s</iq>", typ, id, to, payload)
	return c.Expect(timeout, "answer to "+id, func(el xmpptest.Element) bool {
		return el.Name.Local == "iq" && el.Attr("id") == id
	})
}

// request builds a slot request; an attribute whose value is "-" is left out.
func request(filename, size, ctype string) string {
	var b strings.Builder
	b.WriteString("<request xmlns='urn:xmpp:http:upload:0'")
	for _, a := range [][2]string{{"filename", filename}, {"size", size}, {"content-type", ctype}} {
		if a[1] != "-" {
			fmt.Fprintf(&b, " %s='%s'", a[0], attr(a[1]))
		}
	}
	b.WriteString("/>")
	return b.String()
}

// slot is the answer to a slot request.
type slot struct {
	Put struct {
		URL     string `xml:"url,attr"`
		Headers []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:",chardata"`
		} `xml:"header"`
	} `xml:"put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"get"`
}

// id is the slot id: the second-last segment of the GET URL.
func (s slot) id() string {
	parts := strings.Split(s.Get.URL, "/")
	return parts[len(parts)-2]
}

// askSlot requests a slot as c and fails the test unless it is granted.
func (e *env) askSlot(t *testing.T, c *xmpptest.Client, filename, size, ctype string) slot {
	t.Helper()
	el := e.iq(t, c, "get", service, request(filename, size, ctype))
	if el.Attr("type") != "result" {
		t.Fatalf("slot request for %q (%s bytes, %q) refused: %s", filename, size, ctype, el.Raw)
	}
	var s struct {
		XMLName xml.Name `xml:"urn:xmpp:http:upload:0 slot"`
		slot
	}
	if err := xml.Unmarshal([]byte(el.Inner), &s); err != nil {
		t.Fatalf("slot answer %s: %v", el.Raw, err)
	}
	return s.slot
}

// stanzaError is an error answer: its type, its defined condition, its
// text and its application-specific condition (raw XML).
type stanzaError struct {
	Type, Condition, Text, App string
}

// errorOf reads the <error/> of an error stanza.
func errorOf(t *testing.T, el xmpptest.Element) stanzaError {
	t.Helper()
	if el.Attr("type") != "error" {
		t.Fatalf("want an error, got %s", el.Raw)
	}
	var x struct {
		Error struct {
			Type     string `xml:"type,attr"`
			Children []struct {
				XMLName xml.Name
				Inner   string `xml:",innerxml"`
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal([]byte("<x xmlns='jabber:client'>"+el.Inner+"</x>"), &x); err != nil {
		t.Fatalf("error stanza %s: %v", el.Raw, err)
	}
	se := stanzaError{Type: x.Error.Type}
	for _, c := range x.Error.Children {
		switch {
		case c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.XMLName.Local == "text":
			se.Text = c.Inner
		case c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas":
			se.Condition = c.XMLName.Local
		default:
			se.App = "{" + c.XMLName.Space + "}" + c.XMLName.Local + ":" + c.Inner
		}
	}
	return se
}

// do sends an HTTP request with the standard client.
func do(t *testing.T, method, u string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// put uploads body to the slot's PUT URL with the given content type.
func put(t *testing.T, s slot, ctype string, body []byte) *http.Response {
	t.Helper()
	h := map[string]string{}
	if ctype != "" {
		h["Content-Type"] = ctype
	}
	return do(t, http.MethodPut, s.Put.URL, body, h)
}

// readAll reads a response body.
func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

// raw sends one HTTP/1.1 request written by hand to addr, target exactly
// as given (no cleaning, no escaping), and returns the response with its
// body read.
func raw(t *testing.T, addr, method, target string, header map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, target)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp, got
}

// target is the request target (path and query) of an absolute URL.
func target(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.RequestURI()
}

// files lists the upload directory (temporary files included).
func (e *env) files(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	return names
}

// stored returns the contents of the file of slot id on disk.
func (e *env) stored(t *testing.T, id string) ([]byte, error) {
	t.Helper()
	return os.ReadFile(filepath.Join(e.dir, id))
}
