package main

import (
	"context"
	"fmt"
)

const offlineUsage = `usage: xmppd [-config FILE] offline COMMAND

commands:
  list          show how many offline messages each account has waiting

Offline messages are messages sent to an account with no client online
(XEP-0160); they are delivered at its next login. [offline] in the
configuration sets how many are kept per account and for how long.
`

func (e *env) offline(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, offlineUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := e.subFlags("offline list", `usage: xmppd [-config FILE] offline list

Lists every account with offline messages waiting, one a line, sorted by
JID, as "alice@example.org  offline=3". Accounts with none are not listed.
`)
		if _, err := e.parse(fs, args, 0); err != nil {
			return err
		}
		return e.offlineList(ctx)
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, offlineUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "xmppd: unknown offline command %q\n", sub)
	fmt.Fprint(e.stderr, offlineUsage)
	return errUsage
}

func (e *env) offlineList(ctx context.Context) error {
	db, _, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	queues, err := db.Offline().Queues(ctx)
	if err != nil {
		return err
	}
	for _, q := range queues {
		fmt.Fprintf(e.stdout, "%s  offline=%d\n", q.JID, q.Messages)
	}
	return nil
}
