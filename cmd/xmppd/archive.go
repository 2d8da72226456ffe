package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
)

const archiveUsage = `usage: xmppd [-config FILE] archive COMMAND

commands:
  purge JID [--before DATE]   delete messages from the archive of JID (an
                              account or a room), all of them or those
                              archived before DATE

The message archive (XEP-0313) keeps each account's 1:1 messages and the
messages of rooms that archive; [mam] in the configuration sets what is
kept and for how long. DATE is YYYY-MM-DD (midnight UTC) or an RFC 3339
time such as 2026-01-31T12:00:00Z.
`

func (e *env) archive(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, archiveUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "purge":
		fs := e.subFlags("archive purge", `usage: xmppd [-config FILE] archive purge JID [--before DATE]

Deletes the archived messages of JID (an account or a room), all of them,
or with --before those archived before DATE (YYYY-MM-DD, midnight UTC, or
RFC 3339). Prints how many were deleted. Run it while the server runs or
not: a running server's archive sees the deletion at once.
`)
		before := fs.String("before", "", "delete only messages archived before this date")
		// The JID may come before --before, as the usage writes it;
		// flag stops at the first argument that is not a flag.
		var who []string
		for {
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return err
				}
				return errUsage
			}
			if fs.NArg() == 0 {
				break
			}
			who = append(who, fs.Arg(0))
			args = fs.Args()[1:]
		}
		if len(who) != 1 {
			fs.Usage()
			return errUsage
		}
		return e.archivePurge(ctx, who[0], *before)
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, archiveUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "xmppd: unknown archive command %q\n", sub)
	fmt.Fprint(e.stderr, archiveUsage)
	return errUsage
}

// parseDate reads YYYY-MM-DD or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--before %q: want YYYY-MM-DD or an RFC 3339 time such as 2026-01-31T12:00:00Z", s)
	}
	return t, nil
}

func (e *env) archivePurge(ctx context.Context, who, before string) error {
	j, err := jid.Parse(who)
	if err != nil || j.Resourcepart() != "" {
		return fmt.Errorf("%q is not a bare JID", who)
	}
	var cut int64 // 0: everything
	if before != "" {
		t, err := parseDate(before)
		if err != nil {
			return err
		}
		cut = t.UnixMicro()
	}
	db, _, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Archive().Delete(ctx, j.String(), cut)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d archived messages of %s\n", n, j.String())
	return nil
}
