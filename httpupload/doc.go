// Package httpupload implements XEP-0363: HTTP File Upload, so that
// attachments travel as URLs: a client asks the service for a slot over
// XMPP, PUTs the file to the slot's URL, and sends the GET URL to its
// contacts.
//
// # XMPP side
//
// [Service.Register] makes the service the handler of its own domain
// (upload.<domain> by default, router.Registry.Domain) and lists it in the
// server's disco#items. Its disco#info has the identity store/file, the
// feature urn:xmpp:http:upload:0 and a XEP-0128 form with max-file-size.
// A slot request (<request xmlns='urn:xmpp:http:upload:0' filename size
// content-type/> in an IQ get) is answered with <slot><put url/><get
// url/></slot>, or refused:
//
//   - <forbidden/> (cancel) to a user of another domain, unless
//     [Options].AllowRemote;
//   - <bad-request/> (modify) for a missing or invalid size, a missing,
//     empty or hostile filename (path separators, control or bidirectional
//     formatting characters, "." or "..", invalid UTF-8) or an invalid
//     content type; an overlong name is shortened, keeping its extension;
//   - <not-acceptable/> (modify) with <file-too-large><max-file-size/>
//     for a file over [Options].MaxFileSize;
//   - <resource-constraint/> (wait) when the file would take the user over
//     [Options].Quota, which counts the files stored and the slots granted
//     and not yet used or expired; it carries <retry stamp/> when enough of
//     the user's files or slots expire by then to make room.
//
// The quota check and the slot's creation are serialised per user within
// the process.
//
// # HTTP side
//
// [Service.ServeHTTP] is mounted under /upload/ on the server's [http]
// listeners; URLs are /upload/<id>/<filename> under [Options].PublicURL
// (a reverse proxy in front must map that URL's path to the listener's
// root). id is 128 random bits, which also name the file on disk, so no
// client-chosen name ever reaches the file system; the sanitised filename
// is the URL's last segment and the Content-Disposition filename.
//
// The PUT URL carries the announced size, the slot's expiry and an
// HMAC-SHA256 over id, filename, size and expiry with a secret kept in
// [Options].SecretFile (created 0600 on first start), so no header is
// needed. A PUT is accepted once, before the slot expires, with exactly
// the announced Content-Length and content type; otherwise nothing is
// stored and the answer is 404 (not an upload path), 403 (bad or missing
// signature, expired or unknown slot), 409 (already uploaded, or an upload
// of it in progress), 411 (no Content-Length), 413 (longer than
// announced), 400 (shorter than announced, or the body ended early) or 415
// (another content type). The body goes to a temporary file in the upload
// directory, is synced and renamed into place only when complete, and is
// removed on any failure or disconnection.
//
// GET and HEAD serve a file with http.ServeContent (Content-Length, range
// requests, conditional requests), X-Content-Type-Options: nosniff and a
// Content-Security-Policy of default-src 'none'. Images (PNG, JPEG, GIF,
// WebP), audio, video and text/plain are inline; anything else (SVG and
// HTML included) is an attachment under a sandboxing policy. Every
// response carries CORS headers (Access-Control-Allow-Origin: *), and
// OPTIONS answers preflight requests, so browser clients can upload.
//
// # Limits and expiry
//
// Files older than [Options].MaxAge are no longer served, and a sweep every
// SweepInterval deletes them (file, then row) along with slots unused one
// SlotTimeout past their expiry. [Service.Start] starts the sweep;
// [Service.Stop] ends it and waits for HTTP requests in progress. Reads
// and writes of a transfer that stall for a minute end it.
//
// # What it does not do
//
// A deleted account's files and slots are deleted by [DeleteOwner], which
// xmppd user del calls; a server running meanwhile is not told. There is
// no per-user listing or deletion of files over XMPP or HTTP, no virus scanning, no
// thumbnails, and no support for the pre-1.0 namespaces
// (urn:xmpp:http:upload, eu:siacs:conversations:http:upload).
package httpupload
