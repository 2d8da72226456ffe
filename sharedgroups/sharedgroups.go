// Package sharedgroups serves shared roster groups: groups of accounts an
// administrator defines (with the xmppd group command, or by importing
// Openfire's), whose members appear in the rosters of the users each group
// is shown to, under the group's display name, with a mutual subscription,
// as Openfire's shared groups and ejabberd's mod_shared_roster do.
//
// The groups live in storage; a Service holds an immutable View of them and
// polls storage's version to pick up changes made by the command while the
// server runs, handing the old View to a callback (the roster pushes the
// difference to online users). The roster merges a View into what it
// serves; this package knows nothing of rosters.
package sharedgroups

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"xmppd.dev/xmppd/storage"
)

// Store is what the service reads; *storage.SharedGroups implements it.
type Store interface {
	All(ctx context.Context) ([]storage.SharedGroup, int64, error)
	Version(ctx context.Context) (int64, error)
}

// Service keeps the current View of the shared groups.
type Service struct {
	store  Store
	domain string
	log    *slog.Logger
	view   atomic.Pointer[View]

	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// New returns a service with an empty view; Load reads the groups.
// domain is the server's: "everybody" means its users only.
func New(store Store, domain string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, domain: domain, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	s.view.Store(newView(nil, -1, domain))
	return s
}

// Current returns the view in force.
func (s *Service) Current() *View { return s.view.Load() }

// Load reads the groups from storage and puts them in force, returning the
// view it replaced.
func (s *Service) Load(ctx context.Context) (old *View, err error) {
	groups, version, err := s.store.All(ctx)
	if err != nil {
		return nil, err
	}
	return s.view.Swap(newView(groups, version, s.domain)), nil
}

// Start polls storage every interval and, when the groups changed, loads
// them and calls changed with the view they replaced. Close stops it.
func (s *Service) Start(interval time.Duration, changed func(ctx context.Context, old *View)) {
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			if v, err := s.store.Version(ctx); err != nil {
				s.log.Warn("shared groups: reading the version failed", "err", err)
			} else if v != s.Current().version {
				old, err := s.Load(ctx)
				if err != nil {
					s.log.Warn("shared groups: reload failed", "err", err)
				} else {
					s.log.Info("shared groups reloaded", "groups", len(s.Current().groups), "version", v)
					// Pushing the change to every online user may
					// take longer than a poll: a context of its own.
					cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Minute)
					changed(cctx, old)
					ccancel()
				}
			}
			cancel()
		}
	}()
}

// Close stops the polling Start began, and waits for it.
func (s *Service) Close() {
	s.once.Do(func() {
		close(s.stop)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// View is the shared groups at one version. It is immutable.
type View struct {
	version  int64
	local    string // "@" + the server's domain
	groups   []*group
	byMember map[string][]*group // bare JID → the groups it is a member of
	byName   map[string]*group
	everyone []*group            // shown to everybody
	shownTo  map[string][]*group // group name → groups shown to its members besides their own
}

type group struct {
	name    string
	display string
	members []string
	member  map[string]bool
	showTo  string
	to      []string // names of the groups whose members see it (showTo "groups")
}

func newView(groups []storage.SharedGroup, version int64, domain string) *View {
	v := &View{version: version, local: "@" + domain, byMember: map[string][]*group{}, byName: map[string]*group{}, shownTo: map[string][]*group{}}
	for _, sg := range groups {
		g := &group{name: sg.Name, display: sg.DisplayName, members: sg.Members, member: make(map[string]bool, len(sg.Members)), showTo: sg.ShowTo, to: sg.ShowToGroups}
		for _, m := range sg.Members {
			g.member[m] = true
			v.byMember[m] = append(v.byMember[m], g)
		}
		v.groups = append(v.groups, g)
		v.byName[g.name] = g
		switch sg.ShowTo {
		case "everybody":
			v.everyone = append(v.everyone, g)
		case "groups":
			for _, name := range sg.ShowToGroups {
				v.shownTo[name] = append(v.shownTo[name], g)
			}
		}
	}
	return v
}

// Version is storage's version of the groups; -1 before any load.
func (v *View) Version() int64 { return v.version }

// visible returns the groups user sees: those shown to everybody, those
// user is a member of, and those shown to a group user is a member of.
func (v *View) visible(user string) []*group {
	var out []*group
	if v.isLocal(user) {
		out = slices.Clone(v.everyone)
	}
	add := func(g *group) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	for _, g := range v.byMember[user] {
		if g.showTo == "members" || g.showTo == "groups" {
			add(g)
		}
	}
	for _, own := range v.byMember[user] {
		for _, g := range v.shownTo[own.name] {
			add(g)
		}
	}
	return out
}

// Contacts returns the contacts user (a bare JID) sees through shared
// groups, by bare JID, each with the display names of the groups it
// appears under, sorted. user itself is left out.
func (v *View) Contacts(user string) map[string][]string {
	vis := v.visible(user)
	if len(vis) == 0 {
		return nil
	}
	out := map[string][]string{}
	for _, g := range vis {
		for _, m := range g.members {
			if m != user && !slices.Contains(out[m], g.display) {
				out[m] = append(out[m], g.display)
			}
		}
	}
	for _, gs := range out {
		slices.Sort(gs)
	}
	return out
}

// Groups returns the display names of the groups under which contact
// appears in user's roster, sorted; nil when it does not.
func (v *View) Groups(user, contact string) []string {
	if user == contact {
		return nil
	}
	var out []string
	for _, g := range v.byMember[contact] {
		if v.sees(user, g) && !slices.Contains(out, g.display) {
			out = append(out, g.display)
		}
	}
	slices.Sort(out)
	return out
}

// sees reports whether user sees g.
func (v *View) sees(user string, g *group) bool {
	switch {
	case g.showTo == "everybody":
		return v.isLocal(user)
	case g.member[user] && (g.showTo == "members" || g.showTo == "groups"):
		return true
	case g.showTo == "groups":
		for _, own := range v.byMember[user] {
			if slices.Contains(g.to, own.name) {
				return true
			}
		}
	}
	return false
}

// Viewers returns who sees user (a bare JID) in their roster through
// shared groups: the accounts listed, and, when everybody is true, every
// account of the domain besides (user is in a group shown to everybody).
// user itself is left out.
func (v *View) Viewers(user string) (viewers []string, everybody bool) {
	seen := map[string]bool{user: true}
	add := func(ms []string) {
		for _, m := range ms {
			if !seen[m] {
				seen[m] = true
				viewers = append(viewers, m)
			}
		}
	}
	for _, g := range v.byMember[user] {
		switch g.showTo {
		case "everybody":
			everybody = true
		case "members":
			add(g.members)
		case "groups":
			add(g.members)
			for _, name := range g.to {
				if o := v.byName[name]; o != nil {
					add(o.members)
				}
			}
		}
	}
	return viewers, everybody
}

// isLocal reports whether the bare JID user is an account of the domain:
// "everybody" is the domain's users, not every JID.
func (v *View) isLocal(user string) bool { return strings.HasSuffix(user, v.local) }
