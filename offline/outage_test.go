package offline_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage/storagetest"
)

// dbProxy is a TCP proxy between xmppd and PostgreSQL that can take the
// database away: Down closes its listener (new connections are refused)
// and cuts every connection it carries; Up listens again on the same
// address.
type dbProxy struct {
	t      *testing.T
	addr   string // where it listens; immutable
	target string // PostgreSQL; immutable

	mu    sync.Mutex
	ln    net.Listener          // nil while down; guarded by mu
	conns map[net.Conn]struct{} // both ends of every proxied connection; guarded by mu
	wg    sync.WaitGroup        // accept loops and copies
}

func startProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.Down()
		p.wg.Wait()
	})
	return p
}

func (p *dbProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // Down closed it
			}
			p.pipe(c)
		}
	})
}

func (p *dbProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	p.wg.Go(func() { cp(up, c) })
	p.wg.Go(func() { cp(c, up) })
}

// Down refuses new connections and cuts the open ones.
func (p *dbProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Up accepts connections again, on the same address.
func (p *dbProxy) Up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// proxiedPostgres starts a proxy in front of a fresh PostgreSQL database
// and returns it with the option that points xmppd's storage at it.
func proxiedPostgres(t *testing.T) (*dbProxy, xmpptest.Option) {
	t.Helper()
	e := storagetest.Postgres(t)
	e.Require(t)
	cfg, err := pq.NewConfig(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host == "" || strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("PostgreSQL is reached over a Unix socket (%q); the proxy needs TCP", cfg.Host)
	}
	p := startProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	host, port, _ := net.SplitHostPort(p.addr)
	dsn := e.DSN
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Host = p.addr
		dsn = u.String()
	} else {
		dsn += " host=" + host + " port=" + port // in key=value form the last wins
	}
	return p, func(c *config.Config) {
		c.Storage.Driver = e.Driver
		c.Storage.DSN = dsn
	}
}

// records keeps the log records of a test, for counting ERROR lines.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many records of level have message msg.
func (r *records) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
		}
	}
	return n
}

// errors returns the messages of the ERROR records, in order.
func (r *records) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level >= slog.LevelError {
			out = append(out, rec.Message)
		}
	}
	return out
}

// bounced is an error reply as the sender's client parses it.
type bounced struct {
	ID    string `xml:"id,attr"`
	Type  string `xml:"type,attr"`
	Error struct {
		Type     string    `xml:"type,attr"`
		Internal *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-stanzas internal-server-error"`
		Text     string    `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text"`
	} `xml:"error"`
}

// TestDatabaseOutage: with PostgreSQL unreachable (its connections cut and
// new ones refused by a proxy), a message to an offline user is answered
// wait/internal-server-error, not cancel/service-unavailable; a login
// fails with temporary-auth-failure; a subscription request is answered
// with the same wait error (the roster could not record it); a message to
// an online user still arrives; the burst is one ERROR line, not one per
// stanza. When the
// database is back, without restarting xmppd, a message is stored and a
// login succeeds at once, and the recipient gets exactly the messages
// that were not refused.
func TestDatabaseOutage(t *testing.T) {
	proxy, pg := proxiedPostgres(t)
	logs := &records{}
	srv := xmpptest.StartLog(t, logs, pg)
	aliceJ := srv.AddUser(t, "alice", "pw")
	bob := srv.AddUser(t, "bob", "pw")
	carolJ := srv.AddUser(t, "carol", "pw")
	alice := srv.Login(t, aliceJ, "pw", xmpptest.LoginOptions{Resource: "a"})
	carol := srv.Login(t, carolJ, "pw", xmpptest.LoginOptions{Resource: "c"})
	alice.Send("<presence/>")
	carol.Send("<presence/>")
	alice.Sync()
	carol.Sync()

	if got := alice.Sync(); len(got) != 0 {
		t.Fatalf("alice got %q before sending anything", got[0].Raw)
	}
	alice.Send("%s", chat("before", "stored before the outage"))
	if got := alice.Sync(); len(got) != 0 {
		t.Fatalf("before the outage, alice got %q, want nothing (stored)", got[0].Raw)
	}

	proxy.Down()
	const n = 20
	for i := range n {
		alice.Send("%s", chat(fmt.Sprintf("down-%d", i), "sent during the outage"))
	}
	alice.Send("<message to='%s' type='chat' id='to-carol'><body>online</body></message>", carolJ)
	// The roster cannot record a subscription request either.
	alice.Send("<presence to='%s' type='subscribe' id='sub'/>", bob)
	got := alice.Sync()
	if len(got) != n+1 {
		t.Fatalf("during the outage alice got %d stanzas for %d messages to an offline user and a subscription request, want one error each: %q", len(got), n, got)
	}
	for i, e := range got {
		var b bounced
		if err := xml.Unmarshal([]byte(e.Raw), &b); err != nil {
			t.Fatalf("%q: %v", e.Raw, err)
		}
		kind, id := "message", fmt.Sprintf("down-%d", i)
		if i == n {
			kind, id = "presence", "sub"
		}
		if e.Name.Local != kind || b.ID != id || b.Type != "error" || b.Error.Type != "wait" || b.Error.Internal == nil ||
			b.Error.Text != "temporary storage failure; try again later" {
			t.Fatalf("%s %s during the outage answered %s, want a wait/internal-server-error with its text", kind, id, e.Raw)
		}
	}
	carol.Expect(wait, "the message to an online user", func(e xmpptest.Element) bool {
		return e.Name.Local == "message" && e.Attr("id") == "to-carol"
	})

	// A login: SASL PLAIN by hand, to see the failure's condition.
	r := srv.DialTLS(t)
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00bob\x00pw")) + "</auth>")
	if got := r.ReadUntil("</failure>", wait); !strings.Contains(got, "<temporary-auth-failure/>") {
		t.Fatalf("a login during the outage got %q, want temporary-auth-failure", got)
	}

	const lookup = "router: account lookup failed"
	if c := logs.count(slog.LevelError, lookup); c != 1 {
		t.Errorf("%d ERROR lines %q for %d failed lookups, want 1", c, lookup, n)
	}
	// Nothing else logs per stanza: each kind of failure at most once.
	errs := logs.errors()
	for _, m := range errs {
		if c := logs.count(slog.LevelError, m); c > 1 {
			t.Errorf("ERROR %q logged %d times during one outage: %q", m, c, errs)
		}
	}

	proxy.Up()
	// At once, no retry: the pool drops the connections the proxy cut
	// and opens new ones.
	alice.Send("%s", chat("after", "stored after the outage"))
	if got := alice.Sync(); len(got) != 0 {
		t.Fatalf("after the outage alice got %q, want nothing (stored)", got[0].Raw)
	}
	if c := logs.count(slog.LevelInfo, lookup+": recovered"); c != 1 {
		t.Errorf("%d INFO lines saying the lookups recovered, want 1", c)
	}
	stored, err := srv.DB().Offline().Count(t.Context(), bob.String())
	if err != nil {
		t.Fatal(err)
	}
	if stored != 2 {
		t.Fatalf("%d messages stored for bob, want 2 (before and after; those refused during the outage not)", stored)
	}

	b := srv.Login(t, bob, "pw", xmpptest.LoginOptions{Resource: "b"})
	b.Send("<presence/>")
	var ids []string
	for _, m := range expectMessages(t, b, 2) {
		ids = append(ids, m.ID)
	}
	if want := []string{"before", "after"}; !slices.Equal(ids, want) {
		t.Fatalf("bob got %q at login, want %q", ids, want)
	}
	b.ExpectNone(200*time.Millisecond, "a message refused during the outage", isMessage)
	if len(errs) == 0 {
		t.Fatal("no ERROR line at all for the outage")
	}
}
