// Command xmppd is an XMPP server.
//
//	xmppd [-config FILE] [serve]       run the server (the default)
//	xmppd [-config FILE] user add JID  create an account (password from stdin or a prompt)
//	xmppd [-config FILE] user passwd JID
//	xmppd [-config FILE] user del JID
//	xmppd [-config FILE] user list
//	xmppd [-config FILE] offline list  show each account's offline message queue
//	xmppd [-config FILE] room owner ROOM JID  give a persistent room an owner
//	xmppd [-config FILE] archive purge JID [--before DATE]
//	xmppd [-config FILE] import xep0227|openfire-xml FILE [--dry-run] [--rewrite-domain]
//	xmppd [-config FILE] import openfire --dsn URL [--hsqldb FILE] [--security-xml FILE]
//	xmppd [-config FILE] export xep0227 FILE
//	xmppd [-config FILE] check-config
//	xmppd [-config FILE] migrate
//	xmppd version
//
// Every command exits 0 on success and non-zero with a one-line reason on
// failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…"; the
// module version from the build info is used otherwise.
var version = ""

func softwareVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// env is what a command may touch: its streams and, for signals, a
// context that ends on SIGINT/SIGTERM.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	configPath     string
}

// errUsage marks an error for which usage was already printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: xmppd [-config FILE] [command]

commands:
  serve                run the server (default)
  user add JID         create an account; the password is read from standard input
  user passwd JID      change an account's password
  user del JID         delete an account and everything kept for it
  user list            list accounts
  offline list         show how many offline messages each account has waiting
  room owner ROOM JID  make an account an owner of a persistent group chat room
  group …              manage shared roster groups ('xmppd group -h')
  archive purge JID    delete an account's or a room's archived messages
                       (all, or --before DATE)
  import SOURCE ...    import users, rosters, messages, vCards and rooms from
                       a XEP-0227 file, an Openfire export file or an
                       Openfire database (with the server stopped)
  export xep0227 FILE  export the accounts to a XEP-0227 file
  check-config         load and validate the configuration, then exit
  migrate              bring the database schema up to date, then exit
  version              print the version

Without -config, xmppd reads ./config.toml if it exists and uses the
built-in defaults otherwise (domain localhost, SQLite under ./data).
Run 'xmppd COMMAND -h' for a command's help.
`

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xmppd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, configPath: *cfgPath}
	rest := fs.Args()
	cmd := "serve"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = e.serve(ctx, rest)
	case "user":
		err = e.user(ctx, rest)
	case "offline":
		err = e.offline(ctx, rest)
	case "room":
		err = e.room(ctx, rest)
	case "group":
		err = e.group(ctx, rest)
	case "archive":
		err = e.archive(ctx, rest)
	case "import":
		err = e.importCmd(ctx, rest)
	case "export":
		err = e.exportCmd(ctx, rest)
	case "check-config":
		err = e.checkConfig(rest)
	case "migrate":
		err = e.migrate(ctx, rest)
	case "version":
		err = e.printVersion(rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "xmppd: unknown command %q\n", cmd)
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "xmppd: %v\n", err)
	return 1
}

// subFlags returns a flag set for a subcommand whose -h prints its help.
func (e *env) subFlags(name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, help) }
	return fs
}

// parse parses a subcommand's flags and wants exactly n arguments.
func (e *env) parse(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() != n {
		fs.Usage()
		return nil, errUsage
	}
	return fs.Args(), nil
}

func (e *env) printVersion(args []string) error {
	fs := e.subFlags("version", "usage: xmppd version\n\nPrints the version of xmppd.\n")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "xmppd %s\n", softwareVersion())
	return nil
}
