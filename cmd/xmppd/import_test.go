package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// accountsIn lists the accounts of the database cfg names.
func accountsIn(t *testing.T, driver, dsn string) []string {
	t.Helper()
	db, err := storage.Open(t.Context(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	accts, err := db.Accounts().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range accts {
		out = append(out, a.JID)
	}
	return out
}

// TestImportExportCommands runs export and import through the command
// line on each engine: a dry run writes nothing, a bad file writes
// nothing, an import beside a running server is refused, and the
// exported file imports into a fresh database.
func TestImportExportCommands(t *testing.T) {
	for _, e := range storagetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			e.Require(t)
			dir := t.TempDir()
			srcCfg := writeConfig(t, e.Driver, e.DSN, "")
			dstEngine := storagetest.SQLite(t)
			if e.Name == "postgres" {
				dstEngine = storagetest.Postgres(t)
			}
			dstCfg := writeConfig(t, dstEngine.Driver, dstEngine.DSN, "")
			for _, u := range []string{"alice@localhost", "bob@localhost"} {
				if r := xmppd(t, "pw-"+u+"\n", "-config", srcCfg, "user", "add", u); r.code != 0 {
					t.Fatalf("user add: %+v", r)
				}
			}
			file := filepath.Join(dir, "export.xml")
			if r := xmppd(t, "", "-config", srcCfg, "export", "xep0227", file); r.code != 0 || !strings.Contains(r.stdout, "exported 2 users") {
				t.Fatalf("export: %+v", r)
			}

			r := xmppd(t, "", "-config", dstCfg, "import", "xep0227", file, "--dry-run")
			if r.code != 0 || !strings.Contains(r.stdout, "dry run") || !strings.Contains(r.stdout, "       2 users") {
				t.Fatalf("dry run: %+v", r)
			}
			if got := accountsIn(t, dstEngine.Driver, dstEngine.DSN); len(got) != 0 {
				t.Fatalf("dry run wrote %q", got)
			}

			good, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cut := filepath.Join(dir, "cut.xml")
			if err := os.WriteFile(cut, good[:len(good)-40], 0o600); err != nil {
				t.Fatal(err)
			}
			r = xmppd(t, "", "-config", dstCfg, "import", "xep0227", cut)
			if r.code != 1 || !strings.Contains(r.stderr, "cut.xml:") {
				t.Fatalf("truncated file: %+v", r)
			}
			if got := accountsIn(t, dstEngine.Driver, dstEngine.DSN); len(got) != 0 {
				t.Fatalf("a truncated file wrote %q", got)
			}

			// A server on the destination: the import is refused, and
			// says why.
			cfg, err := config.Load(dstCfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.C2S.Listen, cfg.C2S.DirectTLSListen = "127.0.0.1:0", "127.0.0.1:0"
			srv := xmpptest.StartConfig(t, cfg)
			r = xmppd(t, "", "-config", dstCfg, "import", "xep0227", file)
			if r.code != 1 || !strings.Contains(r.stderr, "import refused: an xmppd server is running on this database") {
				t.Fatalf("import beside a server: %+v", r)
			}
			r = xmppd(t, "", "-config", dstCfg, "export", "xep0227", filepath.Join(dir, "again.xml"))
			if r.code != 1 || !strings.Contains(r.stderr, "export refused") {
				t.Fatalf("export beside a server: %+v", r)
			}
			srv.Stop(t)

			r = xmppd(t, "", "-config", dstCfg, "import", "xep0227", file)
			if r.code != 0 || !strings.Contains(r.stdout, "       2 users") {
				t.Fatalf("import: %+v", r)
			}
			if got := accountsIn(t, dstEngine.Driver, dstEngine.DSN); strings.Join(got, " ") != "alice@localhost bob@localhost" {
				t.Fatalf("imported accounts %q", got)
			}
			// A directory of per-user files, as Prosody writes them.
			perUser := filepath.Join(dir, "prosody")
			if err := os.Mkdir(perUser, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"carol", "dave"} {
				f := "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='" + u + "' password='pw'/></host></server-data>"
				if err := os.WriteFile(filepath.Join(perUser, u+".xml"), []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if r := xmppd(t, "", "-config", dstCfg, "import", "xep0227", "--dry-run", perUser, file); r.code != 0 || !strings.Contains(r.stdout, "       4 users") {
				t.Fatalf("import of a directory and a file: %+v", r)
			}
			// Another domain is refused without --rewrite-domain.
			other := filepath.Join(dir, "other.xml")
			if err := os.WriteFile(other, []byte(strings.Replace(string(good), "<host jid='localhost'>", "<host jid='old.example'>", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			r = xmppd(t, "", "-config", dstCfg, "import", "xep0227", other)
			if r.code != 1 || !strings.Contains(r.stderr, "--rewrite-domain") {
				t.Fatalf("other domain: %+v", r)
			}
			// An Openfire database of a schema this xmppd does not know is
			// refused, naming the version (migration/openfire tests the rest).
			script := filepath.Join(dir, "openfire.script")
			if err := os.WriteFile(script, []byte("CREATE MEMORY TABLE OFVERSION(NAME VARCHAR(50) NOT NULL,VERSION INTEGER NOT NULL)\nINSERT INTO OFVERSION VALUES('openfire',1000)\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if r := xmppd(t, "", "-config", dstCfg, "import", "openfire", "--hsqldb", script, "--dry-run"); r.code != 1 || !strings.Contains(r.stderr, "1000") {
				t.Fatalf("import openfire of schema 1000: %+v", r)
			}
		})
	}
}

// TestProgress: off a terminal, a large import prints a line now and
// then and one at the end; a small one prints none.
func TestProgress(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b)
	for i := 1; i <= 500; i++ {
		p.update(i, 500)
	}
	p.done()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) < 1 || len(lines) > 3 || !strings.HasPrefix(lines[len(lines)-1], "500/500 users and rooms (100%)") {
		t.Errorf("progress of 500: %q", b.String())
	}
	b.Reset()
	p = newProgress(&b)
	for i := 1; i <= 10; i++ {
		p.update(i, 10)
	}
	p.done()
	if b.Len() != 0 {
		t.Errorf("progress of 10: %q", b.String())
	}
}
