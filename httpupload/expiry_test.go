package httpupload_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage"
)

// expiresOf is the expiry a PUT URL carries.
func expiresOf(t *testing.T, s slot) time.Time {
	t.Helper()
	u, err := url.Parse(s.Put.URL)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	if err != nil {
		t.Fatalf("PUT URL %q: expires: %v", s.Put.URL, err)
	}
	return time.UnixMilli(ms)
}

// ceilSecond is t rounded up to a whole second, as retry stamps are.
func ceilSecond(t time.Time) time.Time { return t.Add(time.Second - 1).Truncate(time.Second).UTC() }

// TestQuota: files and outstanding slots count against a user's quota;
// past it the request is refused with resource-constraint and a retry
// time when expiries make room; other users have their own quota.
func TestQuota(t *testing.T) {
	const maxAge = 720 * time.Hour
	e := start(t, limits(1000, 1500, time.Hour, maxAge, time.Hour))
	bob := e.srv.Login(t, e.srv.AddUser(t, "bob", "pw"), "pw", xmpptest.LoginOptions{Resource: "r"})

	s1 := e.askSlot(t, e.alice, "one.bin", "1000", "-")
	el := e.iq(t, e.alice, "get", service, request("two.bin", "600", "-"))
	se := errorOf(t, el)
	if se.Type != "wait" || se.Condition != "resource-constraint" {
		t.Fatalf("over quota with a slot outstanding: %s/%s, want wait/resource-constraint: %s", se.Type, se.Condition, el.Raw)
	}
	if got, want := retryStamp(t, el), ceilSecond(expiresOf(t, s1)); !got.Equal(want) {
		t.Errorf("retry stamp %s, want the slot's expiry %s rounded up", got, want)
	}

	before := time.Now()
	if resp := put(t, s1, "", make([]byte, 1000)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	after := time.Now()
	el = e.iq(t, e.alice, "get", service, request("two.bin", "600", "-"))
	if se := errorOf(t, el); se.Condition != "resource-constraint" {
		t.Fatalf("over quota with a file stored: %s: %s", se.Condition, el.Raw)
	}
	if got := retryStamp(t, el); got.Before(before.Add(maxAge).Truncate(time.Second)) || got.After(ceilSecond(after.Add(maxAge))) {
		t.Errorf("retry stamp %s, want the file's expiry, between %s and %s", got, before.Add(maxAge).UTC(), after.Add(maxAge).UTC())
	}

	e.askSlot(t, e.alice, "fits.bin", "500", "-") // 1000 + 500 = the quota
	e.askSlot(t, bob, "bobs.bin", "1000", "-")    // bob's own quota
	el = e.iq(t, e.alice, "get", service, request("more.bin", "1", "-"))
	if se := errorOf(t, el); se.Condition != "resource-constraint" {
		t.Errorf("one byte over the quota: %s", el.Raw)
	}

	// A file larger than the whole quota never fits: no retry.
	e2 := start(t, limits(1000, 800, time.Hour, maxAge, time.Hour))
	el = e2.iq(t, e2.alice, "get", service, request("huge.bin", "900", "-"))
	if se := errorOf(t, el); se.Condition != "resource-constraint" || se.App != "" {
		t.Errorf("larger than the quota: %s/%q, want resource-constraint without retry", se.Condition, se.App)
	}
}

// retryStamp reads the stamp of the <retry/> in an error stanza.
func retryStamp(t *testing.T, el xmpptest.Element) time.Time {
	t.Helper()
	if se := errorOf(t, el); !strings.HasPrefix(se.App, "{urn:xmpp:http:upload:0}retry:") {
		t.Fatalf("application condition %q, want <retry/>: %s", se.App, el.Raw)
	}
	i := strings.Index(el.Raw, "<retry ")
	if i < 0 {
		t.Fatalf("no <retry/> in %s", el.Raw)
	}
	rest := el.Raw[i:]
	j := strings.Index(rest, "stamp='")
	if j < 0 {
		t.Fatalf("no stamp in %s", rest)
	}
	v := rest[j+len("stamp='"):]
	v = v[:strings.IndexByte(v, '\'')]
	ts, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatalf("retry stamp %q: %v", v, err)
	}
	return ts
}

// TestSlotExpiry: a slot not used within slot_timeout refuses its PUT
// with 403, stops counting against the quota, and is swept.
func TestSlotExpiry(t *testing.T) {
	e := start(t, limits(1000, 1000, 300*time.Millisecond, time.Hour, 50*time.Millisecond))
	s := e.askSlot(t, e.alice, "late.txt", "1000", "text/plain")
	exp := expiresOf(t, s)
	xmpptest.WaitFor(t, 3*time.Second, func() error {
		if time.Now().Before(exp.Add(10 * time.Millisecond)) {
			return errors.New("slot not expired yet")
		}
		return nil
	})
	if resp := put(t, s, "text/plain", make([]byte, 1000)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT after the slot expired: %s, want 403", resp.Status)
	}
	// The expired slot no longer counts: a file of the whole quota fits.
	e.askSlot(t, e.alice, "again.txt", "1000", "text/plain")
	xmpptest.WaitFor(t, 3*time.Second, func() error {
		_, err := e.srv.DB().HTTPUploads().Upload(context.Background(), s.id())
		if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("expired slot still stored (%v)", err)
		}
		return nil
	})
	if files := e.files(t); len(files) != 0 {
		t.Errorf("upload directory holds %q", files)
	}
}

// TestFileExpiry: a file older than max_age is no longer served, and the
// sweep deletes it from disk and from the database.
func TestFileExpiry(t *testing.T) {
	e := start(t, limits(1000, 1000, time.Minute, 800*time.Millisecond, 50*time.Millisecond))
	s := e.askSlot(t, e.alice, "brief.txt", "5", "text/plain")
	if resp := put(t, s, "text/plain", []byte("hello")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if resp := do(t, http.MethodGet, s.Get.URL, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET right after the upload: %s", resp.Status)
	}
	xmpptest.WaitFor(t, 5*time.Second, func() error {
		if resp := do(t, http.MethodGet, s.Get.URL, nil, nil); resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("GET: %s", resp.Status)
		}
		if _, err := os.Stat(filepath.Join(e.dir, s.id())); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file still on disk (%v)", err)
		}
		if _, err := e.srv.DB().HTTPUploads().Upload(context.Background(), s.id()); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("row still stored (%v)", err)
		}
		return nil
	})
	// The space is free again.
	e.askSlot(t, e.alice, "next.txt", "1000", "text/plain")
}
