package main

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/storage"
)

const roomUsage = `usage: xmppd [-config FILE] room COMMAND

commands:
  owner ROOM JID   make the account JID an owner of the persistent room ROOM

Persistent group chat rooms (XEP-0045) are kept in the database. A room
whose only owner was deleted (xmppd user del) goes on without one, and
nobody can configure it or change its affiliations until it has one again.
`

const roomOwnerHelp = `usage: xmppd [-config FILE] room owner ROOM JID

Makes the local account JID (e.g. admin@example.org) an owner of the
persistent room ROOM (e.g. lounge@conference.example.org), as the muc#admin
request of an owner would; its other owners stay. JID may then configure
the room, grant and revoke affiliations, or destroy it.

Run it with the server stopped: a running server keeps its rooms in memory,
does not see the change, and writes its own list back when the room's
configuration next changes. The server reads it at its next start.
`

func (e *env) room(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, roomUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "owner":
		fs := e.subFlags("room owner", roomOwnerHelp)
		rest, err := e.parse(fs, args, 2)
		if err != nil {
			return err
		}
		return e.roomOwner(ctx, rest[0], rest[1])
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, roomUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "xmppd: unknown room command %q\n", sub)
	fmt.Fprint(e.stderr, roomUsage)
	return errUsage
}

func (e *env) roomOwner(ctx context.Context, roomArg, userArg string) error {
	room, err := jid.Parse(roomArg)
	if err != nil || room.Localpart() == "" || room.Resourcepart() != "" {
		return fmt.Errorf("invalid room %q (want a room's bare JID such as lounge@conference.example.org)", roomArg)
	}
	user, err := auth.NormalizeJID(userArg)
	if err != nil {
		return err
	}
	db, cfg, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if room.Domainpart() != cfg.MUCDomain() {
		return fmt.Errorf("%s is not at this server's group chat domain %s", room, cfg.MUCDomain())
	}
	if user.Domainpart() != cfg.Server.Domain {
		return fmt.Errorf("%s is not at this server's domain %s", user, cfg.Server.Domain)
	}
	if ok, err := auth.New(db.Accounts(), cfg.Auth.SCRAMIterations).Exists(ctx, user); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("no such user %s", user)
	}
	err = db.MUC().SetAffiliation(ctx, room.String(), storage.MUCAffiliation{JID: user.String(), Affiliation: "owner"})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no persistent room %s", room)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is an owner of %s\n", user, room)
	return nil
}
