package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/config"
	"xmppd.dev/xmppd/httpupload"
	"xmppd.dev/xmppd/server"
	"xmppd.dev/xmppd/storage"
)

// defaultConfigFile is read when -config is not given and it exists.
const defaultConfigFile = "config.toml"

// loadConfig loads -config, else ./config.toml when present, else the
// defaults.
func (e *env) loadConfig() (config.Config, string, error) {
	path := e.configPath
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			path = defaultConfigFile
		}
	}
	c, err := config.Load(path)
	return c, path, err
}

func (e *env) logger(c config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

func (e *env) serve(ctx context.Context, args []string) error {
	fs := e.subFlags("serve", `usage: xmppd [-config FILE] serve [-cpuprofile FILE] [-memprofile FILE]

Runs the server until SIGINT or SIGTERM. It opens the storage, brings the
schema up to date, and listens on the configured ports.

  -cpuprofile FILE   write a CPU profile (go tool pprof) while serving
  -memprofile FILE   write a heap profile when the server stops
`)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to FILE")
	memProfile := fs.String("memprofile", "", "write a heap profile to FILE at exit")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer func() {
			f, err := os.Create(*memProfile)
			if err != nil {
				fmt.Fprintf(e.stderr, "xmppd: memprofile: %v\n", err)
				return
			}
			defer f.Close()
			runtime.GC()
			pprof.WriteHeapProfile(f)
		}()
	}
	cfg, path, err := e.loadConfig()
	if err != nil {
		return err
	}
	log := e.logger(cfg)
	if path == "" {
		log.Info("no configuration file; using the defaults", "domain", cfg.Server.Domain, "data_dir", cfg.Server.DataDir)
	} else {
		log.Info("loaded configuration", "file", path)
	}
	srv := server.New(cfg, log, softwareVersion())
	if err := srv.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-srv.Err():
		log.Error("listener failed; shutting down", "err", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("stopped")
	return serveErr
}

func (e *env) checkConfig(args []string) error {
	fs := e.subFlags("check-config", `usage: xmppd [-config FILE] check-config

Loads and validates the configuration and exits: 0 when it is valid, 1 with
every problem (file, line and key) otherwise.
`)
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	_, path, err := e.loadConfig()
	if err != nil {
		return err
	}
	if path == "" {
		path = "(no file: defaults)"
	}
	fmt.Fprintf(e.stdout, "%s: configuration is valid\n", path)
	return nil
}

// openStorage opens the configured database and brings its schema up to
// date, reporting applied migrations on out (nil: silently).
func (e *env) openStorage(ctx context.Context, out io.Writer) (*storage.DB, config.Config, error) {
	cfg, _, err := e.loadConfig()
	if err != nil {
		return nil, cfg, err
	}
	db, err := storage.Open(ctx, cfg.Storage.Driver, cfg.StorageDSN())
	if err != nil {
		return nil, cfg, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, cfg, err
	}
	if out != nil {
		for _, m := range applied {
			fmt.Fprintf(out, "applied %s\n", m)
		}
	}
	return db, cfg, nil
}

func (e *env) migrate(ctx context.Context, args []string) error {
	fs := e.subFlags("migrate", `usage: xmppd [-config FILE] migrate

Brings the database schema up to date and exits. 'serve' does the same at
start; this is for upgrades run by hand.
`)
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	db, _, err := e.openStorage(ctx, e.stdout)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "schema version %d\n", v)
	return nil
}

const userUsage = `usage: xmppd [-config FILE] user COMMAND

commands:
  add JID       create an account
  passwd JID    set an account's password
  del JID       delete an account and everything kept for it
  list          list accounts

The password is read as one line from standard input when it is not a
terminal, and prompted for twice without echo otherwise.
`

func (e *env) user(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, userUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add", "passwd", "del":
		fs := e.subFlags("user "+sub, "usage: xmppd [-config FILE] user "+sub+" JID\n\n"+userHelp[sub])
		rest, err := e.parse(fs, args, 1)
		if err != nil {
			return err
		}
		return e.userChange(ctx, sub, rest[0])
	case "list":
		fs := e.subFlags("user list", "usage: xmppd [-config FILE] user list\n\nLists the accounts, one JID a line.\n")
		if _, err := e.parse(fs, args, 0); err != nil {
			return err
		}
		return e.userList(ctx)
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, userUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "xmppd: unknown user command %q\n", sub)
	fmt.Fprint(e.stderr, userUsage)
	return errUsage
}

var userHelp = map[string]string{
	"add":    "Creates the account JID (e.g. alice@example.org). The password is read\nfrom standard input, or prompted for twice on a terminal.\n",
	"passwd": "Sets a new password for the account JID.\n",
	"del": `Deletes the account JID and everything stored for it: its credentials,
roster, offline messages, uploaded files (from the upload directory) and
unused upload slots, its affiliations with group chat rooms and its name as
the creator of rooms. Other users' roster entries for JID stay, with their
subscriptions to and from it ended. Rooms it alone owned go on without an
owner; each is named, to be given one with 'xmppd room owner ROOM JID'.

Run it with the server stopped: a running server keeps the account's
sessions and its place in the rooms it has loaded until it restarts.
`,
}

func (e *env) userChange(ctx context.Context, sub, arg string) error {
	j, err := auth.NormalizeJID(arg)
	if err != nil {
		return err
	}
	db, cfg, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if j.Domainpart() != cfg.Server.Domain {
		return fmt.Errorf("%s is not at this server's domain %s", j, cfg.Server.Domain)
	}
	svc := auth.New(db.Accounts(), cfg.Auth.SCRAMIterations)
	switch sub {
	case "add", "passwd":
		if sub == "passwd" {
			// Fail before asking for a password nobody will use.
			if ok, err := svc.Exists(ctx, j); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("no such user %s", j)
			}
		}
		pw, err := e.readPassword()
		if err != nil {
			return err
		}
		if sub == "add" {
			err = svc.Create(ctx, j, pw)
		} else {
			err = svc.SetPassword(ctx, j, pw)
		}
		if err != nil {
			return userError(j.String(), err)
		}
		verb := map[string]string{"add": "created", "passwd": "changed the password of"}[sub]
		fmt.Fprintf(e.stdout, "%s %s\n", verb, j)
	case "del":
		return e.userDelete(ctx, db, cfg, svc, j)
	}
	return nil
}

// userDelete deletes the account j and everything kept for it, each
// concern through its own repository: its uploads (files, then rows), its
// room affiliations and its name as a room's creator, its subscriptions
// in other users' rosters (as Prosody and ejabberd unsubscribe the
// contacts of a deleted account), then the account,
// whose credentials, roster and offline messages go with it (ON DELETE
// CASCADE). The account goes last, so that a failure before leaves it
// there and the command can be run again.
func (e *env) userDelete(ctx context.Context, db *storage.DB, cfg config.Config, svc *auth.Service, j jid.JID) error {
	if ok, err := svc.Exists(ctx, j); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("no such user %s", j)
	}
	files, slots, err := httpupload.DeleteOwner(ctx, db.HTTPUploads(), cfg.UploadDir(), j.String())
	if err != nil {
		return fmt.Errorf("%s not deleted: %w", j, err)
	}
	ownerless, err := db.MUC().DeleteUser(ctx, j.String())
	if err != nil {
		return fmt.Errorf("%s not deleted (its %d uploaded files are): %w", j, files, err)
	}
	if _, err := db.Rosters().Unsubscribe(ctx, j.String()); err != nil {
		return fmt.Errorf("%s not deleted (its uploads and room affiliations are): %w", j, err)
	}
	if err := svc.Delete(ctx, j); err != nil {
		return userError(j.String(), err)
	}
	fmt.Fprintf(e.stdout, "deleted %s (%d uploaded files, %d unused upload slots)\n", j, files, slots)
	for _, r := range ownerless {
		fmt.Fprintf(e.stdout, "room %s has no owner now; give it one with: xmppd room owner %s JID\n", r, r)
	}
	return nil
}

func userError(j string, err error) error {
	switch {
	case errors.Is(err, auth.ErrUserExists):
		return fmt.Errorf("user %s already exists", j)
	case errors.Is(err, auth.ErrUnknownUser):
		return fmt.Errorf("no such user %s", j)
	}
	return err
}

func (e *env) userList(ctx context.Context) error {
	db, cfg, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	accts, err := auth.New(db.Accounts(), cfg.Auth.SCRAMIterations).List(ctx)
	if err != nil {
		return err
	}
	for _, a := range accts {
		fmt.Fprintln(e.stdout, a.JID)
	}
	return nil
}

// readPassword reads the new password: twice without echo from a
// terminal, else one line from standard input.
func (e *env) readPassword() (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords do not match")
		}
		if len(p1) == 0 {
			return "", errors.New("empty password")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}
