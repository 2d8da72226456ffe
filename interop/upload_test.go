package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
)

// uploadExtra is what slixmpp_upload.py records of the upload, for alice
// (the uploader) and bob (who downloads the URL alice sent him).
type uploadExtra struct {
	Service     string  `json:"service"`
	MaxFileSize float64 `json:"max_file_size"`
	URL         string  `json:"url"`
	TooLarge    string  `json:"too_large"`
	TooLargeMax *string `json:"too_large_max"`

	Status             int    `json:"status"`
	Length             int    `json:"length"`
	SHA256             string `json:"sha256"`
	ContentType        string `json:"content_type"`
	ContentDisposition string `json:"content_disposition"`
	NoSniff            string `json:"nosniff"`
}

// requireAiohttp skips the test when slixmpp's XEP-0363 plugin cannot
// work (it needs python3-aiohttp), and fails it instead under CI=true.
func requireAiohttp(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import aiohttp").CombinedOutput(); err != nil {
		msg := "interop: " + python + " cannot import aiohttp (apt-get install python3-aiohttp): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; required under CI=true")
		}
		t.Skip(msg)
	}
}

// TestSlixmppUpload: slixmpp's XEP-0363 plugin finds the upload service
// through disco, reads max-file-size from its form, gets a slot and PUTs
// a file; bob downloads the URL alice sends him and gets the same bytes;
// a request over the limit is refused with not-acceptable and the limit
// (testdata/slixmpp_upload.py).
func TestSlixmppUpload(t *testing.T) {
	requireSlixmpp(t)
	requireAiohttp(t)
	const maxSize = 1 << 20
	srv := xmpptest.Start(t, xmpptest.WithHTTP(), func(c *config.Config) { c.HTTPUpload.MaxFileSize = maxSize })
	alice := srv.AddUser(t, "alice", "alice-pw")
	bob := srv.AddUser(t, "bob", "bob-pw")
	data := make([]byte, 300_000)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "holiday photo.png")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	res := runSlixmpp(t, srv, "slixmpp_upload.py",
		"--alice-jid", alice.String(), "--alice-password", "alice-pw",
		"--bob-jid", bob.String(), "--bob-password", "bob-pw",
		"--file", file,
	)
	a, b := res.get(t, "alice"), res.get(t, "bob")
	checkLoggedIn(t, "alice", a, "SCRAM-SHA-256")
	checkLoggedIn(t, "bob", b, "SCRAM-SHA-256")
	var ax, bx uploadExtra
	if err := json.Unmarshal(a.Extra, &ax); err != nil {
		t.Fatalf("alice's record: %v (%s)", err, a.Extra)
	}
	if err := json.Unmarshal(b.Extra, &bx); err != nil {
		t.Fatalf("bob's record: %v (%s)", err, b.Extra)
	}

	if ax.Service != "upload."+srv.Domain || ax.MaxFileSize != maxSize {
		t.Errorf("slixmpp found service %q with max-file-size %v, want upload.%s and %d", ax.Service, ax.MaxFileSize, srv.Domain, maxSize)
	}
	port := srv.HTTP[strings.LastIndexByte(srv.HTTP, ':')+1:]
	if !strings.HasPrefix(ax.URL, "http://localhost:"+port+"/upload/") || !strings.HasSuffix(ax.URL, "/holiday%20photo.png") {
		t.Errorf("GET URL %q", ax.URL)
	}
	if bx.Status != http.StatusOK || bx.Length != len(data) || bx.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("bob downloaded: status %d, %d bytes, sha256 %s; want 200, %d bytes, %x", bx.Status, bx.Length, bx.SHA256, len(data), sum)
	}
	if bx.ContentType != "image/png" || bx.ContentDisposition != `inline; filename="holiday photo.png"` || bx.NoSniff != "nosniff" {
		t.Errorf("served with type %q, disposition %q, X-Content-Type-Options %q", bx.ContentType, bx.ContentDisposition, bx.NoSniff)
	}
	if ax.TooLarge != "modify/not-acceptable" || ax.TooLargeMax == nil || *ax.TooLargeMax != "1048576" {
		t.Errorf("request over the limit: %q with max-file-size %v, want modify/not-acceptable with 1048576", ax.TooLarge, ax.TooLargeMax)
	}
	if len(b.Received) != 1 || b.Received[0].Body != ax.URL {
		t.Errorf("bob received %+v, want one message with the URL", b.Received)
	}

	// And the bytes on the server are the bytes slixmpp read from disk.
	if ax.URL == "" {
		return
	}
	resp, err := http.Get(ax.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, data) {
		t.Errorf("GET %s: %d bytes differ from the %d uploaded", ax.URL, len(got), len(data))
	}
}
