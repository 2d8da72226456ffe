package httpupload

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"xmppd.dev/xmppd/storage"
)

// PathPrefix is where the server mounts the service's HTTP handler.
const PathPrefix = "/upload/"

// transferIdle is how long a PUT body or a GET response may make no
// progress before the transfer is cut.
const transferIdle = time.Minute

// ServeHTTP serves PUT (upload), GET and HEAD (download) and OPTIONS (CORS
// preflight) under PathPrefix.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Range")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Content-Disposition, Accept-Ranges, ETag")
	h.Set("X-Content-Type-Options", "nosniff")
	if !s.enter() {
		httpError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	defer s.requests.Done()
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.put(w, r)
	case http.MethodGet, http.MethodHead:
		s.get(w, r)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// httpError answers with status and a one-line text.
func httpError(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Del("Content-Disposition")
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, text)
}

// parsePath splits an escaped request path /upload/<id>/<name>; each
// segment is unescaped on its own, so an encoded slash stays inside its
// segment (and makes a name no slot has).
func parsePath(escaped string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(escaped, PathPrefix)
	if !found {
		return "", "", false
	}
	id, rawName, found := strings.Cut(rest, "/")
	if !found || !validID(id) || rawName == "" || strings.Contains(rawName, "/") {
		return "", "", false
	}
	name, err := url.PathUnescape(rawName)
	if err != nil || name == "" {
		return "", "", false
	}
	return id, name, true
}

// put receives the file of a slot.
func (s *Service) put(w http.ResponseWriter, r *http.Request) {
	id, name, ok := parsePath(r.URL.EscapedPath())
	if !ok {
		httpError(w, http.StatusNotFound, "not an upload URL")
		return
	}
	p, ok := putQuery(r.URL.RawQuery)
	if !ok {
		httpError(w, http.StatusForbidden, "the upload URL is not signed")
		return
	}
	p.id, p.name = id, name
	if !s.verify(p.putParams, p.sig) {
		httpError(w, http.StatusForbidden, "the upload URL's signature does not match")
		return
	}
	if s.now().UnixMilli() > p.expires {
		httpError(w, http.StatusForbidden, "the upload slot has expired")
		return
	}
	if !s.claim(id) {
		httpError(w, http.StatusConflict, "this slot is being uploaded to")
		return
	}
	claimed := true
	defer func() {
		if claimed {
			s.release(id)
		}
	}()
	u, err := s.store.Upload(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		httpError(w, http.StatusForbidden, "the upload slot has expired")
		return
	case err != nil:
		s.log.Error("upload slot lookup failed", "slot", id, "err", err)
		httpError(w, http.StatusInternalServerError, "internal server error")
		return
	case !u.Uploaded.IsZero():
		httpError(w, http.StatusConflict, "this slot has been uploaded to already")
		return
	case u.Filename != name || u.Size != p.size:
		s.log.Error("signed upload URL does not match its slot", "slot", id)
		httpError(w, http.StatusForbidden, "the upload URL does not match its slot")
		return
	}
	switch n := r.ContentLength; {
	case n < 0:
		httpError(w, http.StatusLengthRequired, "Content-Length is required")
		return
	case n > u.Size:
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Content-Length %d is more than the %d bytes announced", n, u.Size))
		return
	case n < u.Size:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("Content-Length %d is less than the %d bytes announced", n, u.Size))
		return
	}
	ctype, ok := putType(r.Header.Values("Content-Type"), u.ContentType)
	if !ok {
		want := u.ContentType
		if want == "" {
			want = "a media type"
		}
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be "+want+", as announced")
		return
	}
	if err := s.receive(w, r, u); err != nil {
		// Nothing of this upload is left: the slot is free for the
		// client's next try at once, not only once the answer (to a
		// client that may be gone) is written.
		s.release(id)
		claimed = false
		var me *http.MaxBytesError
		switch {
		case errors.As(err, &me):
			httpError(w, http.StatusRequestEntityTooLarge, "the body is longer than announced")
		case errors.Is(err, errShortBody):
			httpError(w, http.StatusBadRequest, "the body is shorter than announced")
		default:
			s.log.Error("upload not stored", "slot", id, "err", err)
			httpError(w, http.StatusInternalServerError, "internal server error")
		}
		return
	}
	ctx, cancel := storeCtx(r.Context())
	defer cancel()
	if err := s.store.MarkUploaded(ctx, id, ctype, s.now()); err != nil {
		os.Remove(s.path(id))
		switch {
		case errors.Is(err, storage.ErrExists):
			httpError(w, http.StatusConflict, "this slot has been uploaded to already")
		case errors.Is(err, storage.ErrNotFound):
			httpError(w, http.StatusForbidden, "the upload slot has expired")
		default:
			s.log.Error("upload not recorded", "slot", id, "err", err)
			httpError(w, http.StatusInternalServerError, "internal server error")
		}
		return
	}
	s.log.Debug("file uploaded", "slot", id, "owner", u.Owner, "size", u.Size)
	w.Header().Set("Location", s.getURL(id, name))
	w.WriteHeader(http.StatusCreated)
}

// signedPut is what the query of a PUT URL gives.
type signedPut struct {
	putParams
	sig string
}

// putQuery reads size, expires and sig from a PUT URL's query; each must
// be there once.
func putQuery(raw string) (signedPut, bool) {
	q, err := url.ParseQuery(raw)
	if err != nil || len(q["size"]) != 1 || len(q["expires"]) != 1 || len(q["sig"]) != 1 {
		return signedPut{}, false
	}
	var p signedPut
	p.sig = q.Get("sig")
	p.size, err = strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || p.size < 0 {
		return signedPut{}, false
	}
	p.expires, err = strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return signedPut{}, false
	}
	return p, true
}

// putType checks the Content-Type of a PUT against the announced one and
// returns the type to store. When none was announced any media type is
// taken, and none at all means application/octet-stream.
func putType(got []string, announced string) (string, bool) {
	if len(got) > 1 {
		return "", false
	}
	if len(got) == 0 || got[0] == "" {
		if announced == "" {
			return "application/octet-stream", true
		}
		return "", false
	}
	t, ok := cleanType(got[0])
	if !ok || (announced != "" && t != announced) {
		return "", false
	}
	return t, true
}

// errShortBody is returned by receive when the body ends before the
// announced size.
var errShortBody = errors.New("httpupload: body shorter than announced")

// receive writes the body of r, u.Size bytes, to u's file: into a
// temporary file in the same directory, synced, then renamed into place.
// On any error nothing is left behind.
func (s *Service) receive(w http.ResponseWriter, r *http.Request, u storage.Upload) (err error) {
	f, err := os.CreateTemp(s.opts.Dir, tmpPattern)
	if err != nil {
		return fmt.Errorf("httpupload: create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	rc := http.NewResponseController(w)
	defer rc.SetReadDeadline(time.Time{})
	body := &idleReader{r: http.MaxBytesReader(w, r.Body, u.Size), rc: rc}
	n, err := io.Copy(f, body)
	switch {
	case err != nil:
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return err
		}
		s.log.Debug("upload interrupted", "slot", u.ID, "received", n, "err", err)
		return errShortBody
	case n < u.Size:
		return errShortBody
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("httpupload: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("httpupload: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path(u.ID)); err != nil {
		return fmt.Errorf("httpupload: rename %s: %w", tmp, err)
	}
	syncDir(s.opts.Dir)
	return nil
}

// syncDir makes a rename in dir durable; a failure only weakens that.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// idleReader reads a request body, moving the connection's read deadline
// forward before each read so that a stalled upload ends.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (i *idleReader) Read(p []byte) (int, error) {
	i.rc.SetReadDeadline(time.Now().Add(transferIdle))
	return i.r.Read(p)
}

// idleWriter writes a response, moving the connection's write deadline
// forward before each write so that a stalled download ends.
type idleWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (i *idleWriter) Write(p []byte) (int, error) {
	i.rc.SetWriteDeadline(time.Now().Add(transferIdle))
	return i.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the underlying writer.
func (i *idleWriter) Unwrap() http.ResponseWriter { return i.ResponseWriter }

// get serves an uploaded file (GET and HEAD).
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	id, name, ok := parsePath(r.URL.EscapedPath())
	if !ok {
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	u, err := s.store.Upload(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		httpError(w, http.StatusNotFound, "no such file")
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.log.Error("upload lookup failed", "slot", id, "err", err)
		}
		httpError(w, http.StatusInternalServerError, "internal server error")
		return
	}
	gone := u.Uploaded.Add(s.opts.MaxAge)
	if u.Uploaded.IsZero() || u.Filename != name || !s.now().Before(gone) {
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	f, err := os.Open(s.path(id))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Error("uploaded file not opened", "slot", id, "err", err)
		}
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != u.Size {
		s.log.Error("uploaded file does not have its recorded size", "slot", id, "err", err)
		httpError(w, http.StatusNotFound, "no such file")
		return
	}
	h := w.Header()
	ctype := u.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	disposition, csp := "attachment", "default-src 'none'; frame-ancestors 'none'; sandbox"
	if inline(ctype) {
		disposition, csp = "inline", "default-src 'none'; frame-ancestors 'none'"
	}
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": name}); d != "" {
		disposition = d
	}
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Security-Policy", csp)
	h.Set("ETag", `"`+id+`"`)
	maxAge := max(0, int(gone.Sub(s.now()).Seconds()))
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge)+", immutable")
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{})
	http.ServeContent(&idleWriter{ResponseWriter: w, rc: rc}, r, "", u.Uploaded, f)
}
