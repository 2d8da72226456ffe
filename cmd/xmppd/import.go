package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/migration"
	"xmppd.dev/xmppd/migration/openfire"
	"xmppd.dev/xmppd/migration/openfirexml"
	"xmppd.dev/xmppd/migration/xep0227"
	"xmppd.dev/xmppd/storage"
)

const importUsage = `usage: xmppd [-config FILE] import SOURCE ...

sources:
  xep0227 FILE|DIR... [--dry-run] [--rewrite-domain]
        XEP-0227 portable export files (Prosody, ejabberd, Tigase, xmppd);
        a directory stands for its *.xml files (Prosody writes one per user)
  openfire-xml FILE [--dry-run] [--domain DOMAIN] [--rewrite-domain]
        the XML file of Openfire's User Import/Export plugin
  openfire --dsn URL [--hsqldb FILE] [--security-xml FILE] [--dry-run] [--rewrite-domain]
        an Openfire database, read directly

Each user is imported in one transaction (account, password, roster,
offline messages, vCard, private XML), then each group chat room in one:
a failure leaves no half-imported user, and importing again duplicates
nothing (existing accounts are updated, messages already there are not
added twice).

The server must be stopped: the import refuses to run while an xmppd
serves the same database (it holds the database's instance lock), since a
running server would neither see the imported accounts' rosters nor keep
from writing over the imported rooms. --dry-run needs no lock: it reads the
source, checks every user and prints what would be imported, including
each user who cannot keep their password and why, and writes nothing.

Users whose source keeps only SCRAM-SHA-1 keys (no password) log in with
SCRAM-SHA-1 or PLAIN; they are counted in the report.

A source whose domain is not this server's is refused unless
--rewrite-domain is given, which rewrites every JID of the old domain and
its subdomains (conference.old.example becomes conference.<ours>).
`

const exportUsage = `usage: xmppd [-config FILE] export xep0227 FILE

Writes the server's accounts, with their SCRAM credentials (no password is
known to xmppd), rosters, offline messages, vCards and private XML, to FILE
as a XEP-0227 portable export (urn:xmpp:pie:0; credentials as
urn:xmpp:pie:0#scram, as Prosody writes them). Group chat rooms are not in
XEP-0227 and are not exported. FILE is written whole or not at all.

The server must be stopped (the export holds the database's instance lock),
so that the file is one consistent state.
`

// openfireSource is what 'import openfire' reads from.
type openfireSource struct {
	DSN         string // PostgreSQL or MySQL/MariaDB URL of Openfire's database
	HSQLDB      string // the openfire.script of Openfire's embedded database
	SecurityXML string // Openfire's conf/security.xml, for the passwordKey's salt
}

// readOpenfireDB reads an Openfire database into the portable form. The
// reader checks Openfire's xmpp.domain against domain itself and, with
// rewrite, rewrites JIDs inside stored stanzas too (offline messages,
// room logs, bookmarks), which runImport's rewriting leaves alone.
func readOpenfireDB(ctx context.Context, src openfireSource, domain string, rewrite bool) (*migration.Data, error) {
	return openfire.Read(ctx, openfire.Options{
		DSN: src.DSN, HSQLDBScript: src.HSQLDB, SecurityXML: src.SecurityXML,
		Domain: domain, RewriteDomain: rewrite,
	})
}

func (e *env) importCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, importUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	var (
		dryRun, rewrite bool
		read            func(cfg config.Config) (*migration.Data, error)
	)
	switch sub {
	case "xep0227":
		fs := e.subFlags("import xep0227", importUsage)
		fs.BoolVar(&dryRun, "dry-run", false, "check and report; write nothing")
		fs.BoolVar(&rewrite, "rewrite-domain", false, "rewrite the file's domain to this server's")
		rest, err := parseInterleaved(e, fs, args, -1)
		if err != nil {
			return err
		}
		read = func(config.Config) (*migration.Data, error) { return readXEP0227(rest) }
	case "openfire-xml":
		fs := e.subFlags("import openfire-xml", importUsage)
		fs.BoolVar(&dryRun, "dry-run", false, "check and report; write nothing")
		fs.BoolVar(&rewrite, "rewrite-domain", false, "rewrite --domain to this server's")
		domain := fs.String("domain", "", "the Openfire server's domain (default: this server's)")
		rest, err := parseInterleaved(e, fs, args, 1)
		if err != nil {
			return err
		}
		read = func(cfg config.Config) (*migration.Data, error) {
			d := *domain
			if d == "" {
				d = cfg.Server.Domain
			}
			return readFile(rest[0], func(r io.Reader, name string) (*migration.Data, error) { return openfirexml.Read(r, name, d) })
		}
	case "openfire":
		fs := e.subFlags("import openfire", importUsage)
		fs.BoolVar(&dryRun, "dry-run", false, "check and report; write nothing")
		fs.BoolVar(&rewrite, "rewrite-domain", false, "rewrite Openfire's xmpp.domain to this server's")
		var src openfireSource
		fs.StringVar(&src.DSN, "dsn", "", "Openfire's database URL")
		fs.StringVar(&src.HSQLDB, "hsqldb", "", "Openfire's embedded database script (embedded-db/openfire.script)")
		fs.StringVar(&src.SecurityXML, "security-xml", "", "Openfire's conf/security.xml")
		if _, err := parseInterleaved(e, fs, args, 0); err != nil {
			return err
		}
		if (src.DSN == "") == (src.HSQLDB == "") {
			fmt.Fprint(e.stderr, "xmppd: import openfire needs one of --dsn or --hsqldb\n")
			return errUsage
		}
		read = func(cfg config.Config) (*migration.Data, error) {
			return readOpenfireDB(ctx, src, cfg.Server.Domain, rewrite)
		}
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, importUsage)
		return nil
	default:
		fmt.Fprintf(e.stderr, "xmppd: unknown import source %q\n", sub)
		fmt.Fprint(e.stderr, importUsage)
		return errUsage
	}
	return e.runImport(ctx, read, dryRun, rewrite)
}

// parseInterleaved parses fs's flags wherever they are among args (flag
// stops at the first argument otherwise) and wants n arguments (n < 0:
// one or more).
func parseInterleaved(e *env, fs *flag.FlagSet, args []string, n int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != n && (n >= 0 || len(pos) == 0) {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// readXEP0227 reads XEP-0227 files, and the *.xml files of directories
// (Prosody's mod_storage_xep0227 writes one file per user), into one Data:
// every file must be of the same host.
func readXEP0227(paths []string) (*migration.Data, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		// Glob sorts; a directory without files is an error, not an
		// import of nothing.
		m, err := filepath.Glob(filepath.Join(p, "*.xml"))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no *.xml files in the directory", p)
		}
		files = append(files, m...)
	}
	var all *migration.Data
	for _, f := range files {
		d, err := readFile(f, func(r io.Reader, name string) (*migration.Data, error) { return xep0227.Read(r, name) })
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = d
			continue
		}
		if !strings.EqualFold(d.Domain, all.Domain) {
			return nil, fmt.Errorf("%s is of host %s, %s of %s: import one host at a time", f, d.Domain, files[0], all.Domain)
		}
		all.Users = append(all.Users, d.Users...)
		all.Skipped = append(all.Skipped, d.Skipped...)
	}
	return all, nil
}

func readFile(path string, read func(io.Reader, string) (*migration.Data, error)) (*migration.Data, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return read(f, path)
}

// lockedStorage opens the configured database holding its instance lock,
// and brings the schema up to date.
func (e *env) lockedStorage(ctx context.Context, what string) (*storage.DB, config.Config, error) {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return nil, cfg, err
	}
	db, err := storage.Open(ctx, cfg.Storage.Driver, cfg.StorageDSN())
	if err != nil {
		return nil, cfg, err
	}
	if err := db.LockInstance(ctx); err != nil {
		db.Close()
		if errors.Is(err, storage.ErrLocked) {
			return nil, cfg, fmt.Errorf("%s refused: an xmppd server is running on this database (%v); stop it first, since a running server would not see the change and could write over it", what, err)
		}
		return nil, cfg, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, cfg, err
	}
	return db, cfg, nil
}

func (e *env) runImport(ctx context.Context, read func(config.Config) (*migration.Data, error), dryRun, rewrite bool) error {
	var (
		db  *storage.DB
		cfg config.Config
		err error
	)
	if dryRun {
		if cfg, _, err = e.loadConfig(); err != nil {
			return err
		}
	} else {
		// The lock first, so that a running server is named before a long
		// read of the source.
		if db, cfg, err = e.lockedStorage(ctx, "import"); err != nil {
			return err
		}
		defer db.Close()
	}
	// The whole source is read and checked before anything is written: a
	// file cut short or refused writes nothing.
	d, err := read(cfg)
	if err != nil {
		return err
	}
	if !strings.EqualFold(d.Domain, cfg.Server.Domain) {
		if !rewrite {
			return fmt.Errorf("the source's domain is %s, this server's is %s: give --rewrite-domain to rewrite every JID of %s (and its subdomains) to %s", d.Domain, cfg.Server.Domain, d.Domain, cfg.Server.Domain)
		}
		d.RewriteDomain(cfg.Server.Domain)
	}
	p := newProgress(e.stderr)
	rep, err := migration.Write(ctx, db, d, migration.WriteOptions{
		DryRun:     dryRun,
		Progress:   p.update,
		Iterations: cfg.Auth.SCRAMIterations,
		MUCService: cfg.MUCDomain(),
		// Messages the server would sweep at start are reported instead.
		OfflineMaxAge: cfg.Offline.MaxAge.Duration,
	})
	p.done()
	printReport(e.stdout, rep, dryRun)
	return err
}

func printReport(w io.Writer, r migration.Report, dryRun bool) {
	verb := "imported"
	if dryRun {
		verb = "would import (dry run: nothing written)"
	}
	fmt.Fprintf(w, "%s:\n", verb)
	for _, c := range []struct {
		n    int
		what string
	}{
		{r.Users, "users"}, {r.RosterItems, "roster items"}, {r.OfflineMessages, "offline messages"},
		{r.VCards, "vCards"}, {r.PrivateXML, "private XML namespaces"}, {r.Rooms, "group chat rooms"},
		{r.Affiliations, "room affiliations"}, {r.ReservedNicks, "reserved room nicknames"},
		{r.RoomMessages, "room log messages"}, {r.SharedGroups, "shared roster groups"},
		{r.SharedGroupMembers, "shared group memberships"},
	} {
		fmt.Fprintf(w, "  %8d %s\n", c.n, c.what)
	}
	fmt.Fprintf(w, "passwords: %d derived from the password (SCRAM-SHA-1 and SCRAM-SHA-256), %d with SCRAM-SHA-1 keys only (see [auth] legacy_scram_sha1), %d without any\n",
		r.DerivedFromPassword, len(r.SHA1Only), len(r.NoPassword))
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(lines))
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	section("users who cannot keep their password (set one with 'xmppd user passwd JID')", problems(r.NoPassword))
	section("users whose password does not match their SCRAM-SHA-1 keys", problems(r.PasswordMismatch))
	section("users not imported", problems(r.Invalid))
	section("skipped", r.Skipped)
}

func problems(ps []migration.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// progress shows an import's progress on stderr: one line updated in
// place on a terminal, a line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	start time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd())), start: time.Now()}
}

func (p *progress) update(done, total int) {
	now := time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if done != total && now.Sub(p.last) < every {
		return
	}
	p.last = now
	if total < 100 && !p.tty {
		return // small imports need no progress lines
	}
	line := fmt.Sprintf("%d/%d users and rooms (%d%%), %s", done, total, done*100/max(total, 1), now.Sub(p.start).Round(time.Second))
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

func (e *env) exportCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "xep0227" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(e.stdout, exportUsage)
			return nil
		}
		fmt.Fprint(e.stderr, exportUsage)
		return errUsage
	}
	fs := e.subFlags("export xep0227", exportUsage)
	rest, err := parseInterleaved(e, fs, args[1:], 1)
	if err != nil {
		return err
	}
	db, cfg, err := e.lockedStorage(ctx, "export")
	if err != nil {
		return err
	}
	defer db.Close()
	d, err := migration.ReadStorage(ctx, db, cfg.Server.Domain)
	if err != nil {
		return err
	}
	path := rest[0]
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := xep0227.Write(tmp, d); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported %d users to %s\n", len(d.Users), path)
	return nil
}
