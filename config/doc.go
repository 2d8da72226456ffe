// Package config implements the xmppd configuration file: the TOML schema
// (TOML v1.1.0), its defaults, strict loading and validation.
//
// One struct, [Config], describes the whole file; each TOML table (server,
// log, storage, c2s, auth, roster, offline, muc, http, httpupload, tls) is
// one field, of its own type.
// [Default] returns a configuration the server runs with when there is no
// file at all, and a file only needs the keys it changes.
//
// Loading is strict. [Load] and [Parse] refuse a file with a syntax error, an
// unknown key, a value of the wrong type or a value [Config.Validate] refuses,
// and they report every problem at once, one per line, in the shape
//
//	config.toml:7: c2s.listen: invalid port "99999" (want 1-65535)
//
// Each problem is an [*Error] inside the error returned (use errors.As).
// Durations are strings such as "30s" (see [Duration]); sizes are integers
// in bytes and are named for what they bound (c2s.max_stanza_bytes).
// config.toml.example at the repository root sets every key to its default,
// and docs/configuration.md describes each one. `xmppd check-config` calls
// [Load], so it runs exactly the checks the server runs at startup.
//
// The package does not open listeners, databases or certificates: it checks
// that addresses parse, that the certificate files can be opened and that the
// values are in range, and leaves the rest to the packages that use them.
// Relative paths are relative to the working directory of the process, not
// to the directory of the file. Nothing here reloads a file while the server
// runs, and the package keeps no state of its own.
package config
