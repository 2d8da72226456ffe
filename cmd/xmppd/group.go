package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/storage"
)

const groupUsage = `usage: xmppd [-config FILE] group COMMAND

commands:
  list                         list the shared roster groups
  show NAME                    show a group's settings and members
  add NAME [flags]             create a group (flags: see 'group add -h')
  set NAME [flags]             change a group's settings
  del NAME                     delete a group
  add-member NAME JID...       add accounts to a group
  del-member NAME JID...       remove accounts from a group

A shared roster group puts its members in the rosters of the users it is
shown to, under its display name, with a mutual subscription nobody has to
ask for (Openfire's shared groups; an Openfire import brings them). Users
cannot remove such contacts. A running server picks changes up within
[roster] shared_groups_reload and pushes them to users online.
See docs/shared-groups.md.
`

// groupFlags are the settings of a group on the command line.
type groupFlags struct {
	display, description, showTo, groups *string
}

func (e *env) groupFlagSet(name, help string) (*flag.FlagSet, groupFlags) {
	fs := e.subFlags("group "+name, help)
	return fs, groupFlags{
		display:     fs.String("display", "", "the roster group its members appear under (default: NAME)"),
		description: fs.String("description", "", "what the group is, for admins"),
		showTo:      fs.String("show-to", "", `who sees it: "everybody", "members" (its own members), "groups" (its members and those of -groups) or "nobody" (kept for its members, who see the groups shown to it)`),
		groups:      fs.String("groups", "", "with -show-to groups: the groups whose members also see it, comma-separated"),
	}
}

const groupAddHelp = `usage: xmppd [-config FILE] group add NAME [-display NAME] [-description TEXT] [-show-to everybody|members|groups|nobody] [-groups A,B]

Creates the shared roster group NAME, with no members (add them with
'group add-member'). Its members appear in the rosters of those it is shown
to (-show-to, default "members": the group's own members).
`

const groupSetHelp = `usage: xmppd [-config FILE] group set NAME [-display NAME] [-description TEXT] [-show-to everybody|members|groups|nobody] [-groups A,B]

Changes the settings given; the others and the members stay.
`

func (e *env) group(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, groupUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := e.subFlags("group list", "usage: xmppd [-config FILE] group list\n\nLists the shared roster groups: name, display name, who sees it, members.\n")
		if _, err := e.parse(fs, args, 0); err != nil {
			return err
		}
		return e.withGroups(ctx, func(g *storage.SharedGroups, _ string) error { return e.groupList(ctx, g) })
	case "show", "del":
		fs := e.subFlags("group "+sub, "usage: xmppd [-config FILE] group "+sub+" NAME\n")
		rest, err := e.parse(fs, args, 1)
		if err != nil {
			return err
		}
		return e.withGroups(ctx, func(g *storage.SharedGroups, _ string) error {
			if sub == "del" {
				return g.Delete(ctx, rest[0])
			}
			return e.groupShow(ctx, g, rest[0])
		})
	case "add", "set":
		help := groupAddHelp
		if sub == "set" {
			help = groupSetHelp
		}
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(e.stderr, help)
			return errUsage
		}
		name := args[0]
		fs, f := e.groupFlagSet(sub, help)
		if _, err := e.parse(fs, args[1:], 0); err != nil {
			return err
		}
		return e.withGroups(ctx, func(g *storage.SharedGroups, _ string) error {
			sg, ok, err := g.Get(ctx, name)
			if err != nil {
				return err
			}
			switch {
			case sub == "add" && ok:
				return fmt.Errorf("group %q exists (change it with 'group set')", name)
			case sub == "set" && !ok:
				return fmt.Errorf("no group %q", name)
			case sub == "add":
				sg = storage.SharedGroup{Name: name, DisplayName: name, ShowTo: "members"}
			}
			set := map[string]bool{}
			fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
			if set["display"] {
				sg.DisplayName = *f.display
			}
			if set["description"] {
				sg.Description = *f.description
			}
			if set["show-to"] {
				sg.ShowTo = *f.showTo
			}
			if set["groups"] {
				sg.ShowToGroups = nil
				for g := range strings.SplitSeq(*f.groups, ",") {
					if g = strings.TrimSpace(g); g != "" {
						sg.ShowToGroups = append(sg.ShowToGroups, g)
					}
				}
			}
			if sub == "set" {
				// The settings only: members added meanwhile stay.
				return g.Update(ctx, sg)
			}
			return g.Put(ctx, sg)
		})
	case "add-member", "del-member":
		if len(args) < 2 {
			fmt.Fprintf(e.stderr, "usage: xmppd [-config FILE] group %s NAME JID...\n", sub)
			return errUsage
		}
		name := args[0]
		return e.withGroups(ctx, func(g *storage.SharedGroups, domain string) error {
			var jids []string
			for _, a := range args[1:] {
				j, err := auth.NormalizeJID(a)
				if err != nil {
					return err
				}
				if j.Domainpart() != domain {
					return fmt.Errorf("%s is not at this server's domain %s", j, domain)
				}
				jids = append(jids, j.String())
			}
			var err error
			if sub == "add-member" {
				err = g.AddMembers(ctx, name, jids)
			} else {
				err = g.RemoveMembers(ctx, name, jids)
			}
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("%w (is every JID an account, and the group created?)", err)
			}
			return err
		})
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, groupUsage)
		return nil
	}
	fmt.Fprintf(e.stderr, "xmppd: unknown group command %q\n", sub)
	fmt.Fprint(e.stderr, groupUsage)
	return errUsage
}

func (e *env) withGroups(ctx context.Context, fn func(g *storage.SharedGroups, domain string) error) error {
	db, cfg, err := e.openStorage(ctx, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db.SharedGroups(), cfg.Server.Domain)
}

func (e *env) groupList(ctx context.Context, g *storage.SharedGroups) error {
	all, _, err := g.All(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tDISPLAY NAME\tSHOWN TO\tMEMBERS")
	for _, sg := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", sg.Name, sg.DisplayName, shownTo(sg), len(sg.Members))
	}
	return w.Flush()
}

func (e *env) groupShow(ctx context.Context, g *storage.SharedGroups, name string) error {
	sg, ok, err := g.Get(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no group %q", name)
	}
	fmt.Fprintf(e.stdout, "name:         %s\ndisplay name: %s\ndescription:  %s\nshown to:     %s\nmembers:      %d\n",
		sg.Name, sg.DisplayName, sg.Description, shownTo(sg), len(sg.Members))
	for _, m := range sg.Members {
		fmt.Fprintf(e.stdout, "  %s\n", m)
	}
	return nil
}

func shownTo(sg storage.SharedGroup) string {
	if sg.ShowTo == "groups" {
		return "members and those of " + strings.Join(sg.ShowToGroups, ", ")
	}
	return sg.ShowTo
}
