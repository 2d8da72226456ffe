package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lib/pq"
)

// postgresMaxConns bounds the connection pool to PostgreSQL.
const postgresMaxConns = 32

// openPostgres connects to the PostgreSQL server named by dsn and pings it
// within ctx. Errors name the server and database but never the password:
// they end up in logs and on the terminal of whoever runs xmppd.
func openPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	redacted, secret := redactDSN(dsn)
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, invalidDSN(redacted, secret)
	}
	// Parse, bind and execute in one round trip: without it lib/pq waits
	// for the server to describe every parameterised statement first.
	cfg.BinaryParameters = true
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: PostgreSQL DSN %s: %w", redacted, scrub(err, cfg.Password, secret))
	}
	sqldb := sql.OpenDB(connector)
	// database/sql keeps only 2 idle connections by default: under load
	// (logins arrive in bursts, each a few queries) it then closes and
	// reopens PostgreSQL connections all the time, and each new one is a
	// server process forked and authenticated. Keep a pool instead, and
	// bound it well below PostgreSQL's default max_connections (100).
	//
	// No ping or lifetime is needed for an outage: a pooled connection
	// that PostgreSQL or the network closed fails its next query with
	// driver.ErrBadConn (lib/pq maps EOF and fatal server errors to it),
	// and database/sql then drops it and runs the query again on another
	// connection, the last try on a new one. The first query after the
	// server is back succeeds (offline's TestDatabaseOutage).
	sqldb.SetMaxOpenConns(postgresMaxConns)
	sqldb.SetMaxIdleConns(postgresMaxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		db := cfg.Database
		if db == "" {
			db = cfg.User // the server's default database is the user's name
		}
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		return nil, fmt.Errorf("storage: cannot reach PostgreSQL at %s (database %s): %w",
			addr, db, scrub(err, cfg.Password, secret))
	}
	return sqldb, nil
}

// invalidDSN explains why a DSN does not parse without quoting its password.
// lib/pq's parse errors may quote the whole DSN (net/url does) or a piece of
// it, so the explanation comes from parsing the redacted DSN instead. If that
// parses, the fault was inside the password itself.
func invalidDSN(redacted, secret string) error {
	if _, err := pq.NewConfig(redacted); err != nil {
		return fmt.Errorf("storage: invalid PostgreSQL DSN: %w", scrub(err, secret))
	}
	return errors.New("storage: invalid PostgreSQL DSN: the password is malformed (in a URL, escape it with %XX)")
}

// scrub returns err unchanged when its text contains none of secrets.
// Otherwise it returns an error with the same text, each secret replaced by
// xxxxx, that does not unwrap to err: the chain would still hold the secret.
func scrub(err error, secrets ...string) error {
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// redactDSN returns dsn with every password replaced by xxxxx, and the
// password as written in dsn (still %-escaped in a URL), for scrub.
func redactDSN(dsn string) (redacted, secret string) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return redactURL(dsn)
	}
	return redactKeyValue(dsn)
}

// redactURL blanks the password of postgres://user:password@host/db and any
// password=… query parameter. It works on the text rather than through
// net/url, which cannot parse every DSN that needs redacting.
func redactURL(dsn string) (string, string) {
	scheme, rest, _ := strings.Cut(dsn, "://")
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	authority, tail := rest[:authEnd], rest[authEnd:]
	var secret string
	// net/url splits user info at the last '@', and so does this.
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, pw, ok := strings.Cut(authority[:at], ":"); ok {
			secret = pw
			authority = user + ":xxxxx" + authority[at:]
		}
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if hasQuery {
		query, frag, hasFrag := strings.Cut(query, "#")
		params := strings.Split(query, "&")
		for i, p := range params {
			k, v, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(k); err == nil && name == "password" || k == "password" {
				if secret == "" {
					secret = v
				}
				params[i] = k + "=xxxxx"
			}
		}
		tail = path + "?" + strings.Join(params, "&")
		if hasFrag {
			tail += "#" + frag
		}
	}
	return scheme + "://" + authority + tail, secret
}

// redactKeyValue blanks password values of a key=value DSN. It tokenises
// like lib/pq (after libpq's conninfo_parse): values are bare words with
// backslash escapes or single-quoted strings. From the first place the text
// stops making sense to the end, everything is blanked, since a malformed
// quote may have left a password spread over what follows. It works on byte
// offsets so that the secret it returns is exactly the bytes of the DSN.
func redactKeyValue(s string) (string, string) {
	space := func(i int) int { // size of the space rune at i, or 0
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			return n
		}
		return 0
	}
	skipSpace := func(i int) int {
		for i < len(s) {
			n := space(i)
			if n == 0 {
				break
			}
			i += n
		}
		return i
	}
	var out strings.Builder
	var secret string
	i := 0
	for i < len(s) {
		start := i
		keyStart := skipSpace(i)
		i = keyStart
		for i < len(s) && s[i] != '=' && space(i) == 0 {
			i++
		}
		key := s[keyStart:i]
		i = skipSpace(i)
		if keyStart == len(s) {
			out.WriteString(s[start:])
			break
		}
		if i >= len(s) || s[i] != '=' {
			if start == keyStart && start > 0 {
				// Glued to a quoted value: keep the blanked word separate
				// so the result still reads as the same malformed DSN.
				out.WriteString(" ")
			}
			out.WriteString(s[start:keyStart] + "xxxxx")
			break
		}
		i = skipSpace(i + 1)
		valStart := i
		terminated := true
		if i < len(s) && s[i] == '\'' {
			terminated = false
			for i++; i < len(s); i++ {
				if s[i] == '\\' {
					i++
					continue
				}
				if s[i] == '\'' {
					i++
					terminated = true
					break
				}
			}
		} else {
			for i < len(s) && space(i) == 0 {
				if s[i] == '\\' {
					i++
				}
				i++
			}
		}
		i = min(i, len(s))
		switch {
		case !terminated:
			out.WriteString(s[start:valStart] + "xxxxx")
			if key == "password" && secret == "" {
				secret = s[valStart:]
			}
			return out.String(), secret
		case key == "password":
			out.WriteString(s[start:valStart] + "xxxxx")
			if secret == "" {
				secret = strings.TrimSuffix(strings.TrimPrefix(s[valStart:i], "'"), "'")
			}
		default:
			out.WriteString(s[start:i])
		}
	}
	return out.String(), secret
}
