package pep

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// recordSession is a bound session that keeps what it is sent.
type recordSession struct {
	j   jid.JID
	mu  sync.Mutex
	got []string
}

func (s *recordSession) JID() jid.JID { return s.j }
func (s *recordSession) Deliver(b []byte) error {
	s.mu.Lock()
	s.got = append(s.got, string(b))
	s.mu.Unlock()
	return nil
}
func (s *recordSession) DeliverThen(b []byte, done func(bool)) error {
	s.Deliver(b)
	done(true)
	return nil
}
func (s *recordSession) Close(stream.Error) {}

func (s *recordSession) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

// nodesInterest is an Interest from a fixed table: full JID → nodes, as
// entity capabilities would say.
type nodesInterest map[string][]string

func (n nodesInterest) Wants(full jid.JID, node string) bool {
	return slices.Contains(n[full.String()], node)
}

// fakeRoster: bob and carol receive alice's presence; carol is in her
// group Friends.
type fakeRoster struct{}

func (fakeRoster) Relation(ctx context.Context, owner, contact jid.JID) (string, []string, error) {
	switch owner.String() + " " + contact.String() {
	case "alice@localhost bob@localhost":
		return "from", nil, nil
	case "alice@localhost carol@localhost":
		return "both", []string{"Friends"}, nil
	}
	return "", nil, nil
}

func (fakeRoster) SubscribedTo(ctx context.Context, user jid.JID) ([]jid.JID, error) {
	if user.String() == "bob@localhost" || user.String() == "carol@localhost" {
		return []jid.JID{jid.MustParse("alice@localhost")}, nil
	}
	return nil, nil
}

func (fakeRoster) Subscribers(ctx context.Context, owner jid.JID) ([]jid.JID, error) {
	if owner.String() == "alice@localhost" {
		return []jid.JID{jid.MustParse("bob@localhost"), jid.MustParse("carol@localhost")}, nil
	}
	return nil, nil
}

// TestInterest: with an Interest (entity capabilities), events go only to
// the available resources that announced node+notify — of the owner and
// of contacts the access model allows — and CapsKnown sends a resource
// the last items of the nodes it wants only, from its own account and
// those it is subscribed to, as the access model allows.
func TestInterest(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, db *storage.DB) {
		ctx := t.Context()
		for _, u := range []string{"alice@localhost", "bob@localhost", "carol@localhost"} {
			if err := db.Accounts().Create(ctx, storage.Account{JID: u, Credentials: []storage.Credential{{Mechanism: "SCRAM-SHA-256", Iterations: 4096, Salt: []byte("s"), StoredKey: []byte("k"), ServerKey: []byte("k")}}}); err != nil {
				t.Fatal(err)
			}
		}
		const tune, mood = "http://jabber.org/protocol/tune", "http://jabber.org/protocol/mood"
		interest := nodesInterest{
			"alice@localhost/a": {tune},
			"bob@localhost/b1":  {tune, mood},
			"carol@localhost/c": {mood},
		}
		r := router.New(jid.MustParse("localhost"), nil, nil)
		s := New(db.PEP(), fakeRoster{}, r, Options{MaxItems: 10, MaxNodes: 10, MaxPayloadBytes: 1000, Interest: interest}, nil)
		s.Register(r.Registry())
		sessions := map[string]*recordSession{}
		for _, full := range []string{"alice@localhost/a", "alice@localhost/a2", "bob@localhost/b1", "bob@localhost/b2", "carol@localhost/c"} {
			sess := &recordSession{j: jid.MustParse(full)}
			sessions[full] = sess
			r.Bind(ctx, sess)
			r.FromClient(ctx, &router.Stanza{Kind: router.KindPresence, From: sess.j, Raw: []byte("<presence from='" + full + "'/>")})
		}
		for _, sess := range sessions {
			sess.take()
		}
		events := func() map[string]string {
			out := map[string]string{}
			for full, sess := range sessions {
				for _, m := range sess.take() {
					if strings.Contains(m, NSEvent) {
						out[full] += m
					}
				}
			}
			return out
		}
		alice := jid.MustParse("alice@localhost")
		if _, err := s.Publish(ctx, alice, tune, "t1", []byte("<tune xmlns='"+tune+"'/>"), nil); err != nil {
			t.Fatal(err)
		}
		got := events()
		want := "<message to='alice@localhost/a' type='headline' from='alice@localhost'><event xmlns='" + NSEvent + "'><items node='" + tune + "'><item id='t1'><tune xmlns='" + tune + "'></tune></item></items></event></message>"
		if len(got) != 2 || got["alice@localhost/a"] != want || !strings.Contains(got["bob@localhost/b1"], "to='bob@localhost/b1'") {
			t.Fatalf("tune events: %q", got)
		}
		// A roster-model node: carol (in Friends) wants it, bob may not
		// have it however much he wants it.
		if _, err := s.Publish(ctx, alice, mood, "m1", []byte("<mood xmlns='"+mood+"'/>"),
			map[string]string{"pubsub#access_model": "roster"}); err != nil {
			t.Fatal(err)
		}
		n, _, _ := db.PEP().Node(ctx, "alice@localhost", mood)
		n.RosterGroups = []string{"Friends"}
		if err := db.PEP().ConfigureNode(ctx, "alice@localhost", n, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish(ctx, alice, mood, "m2", []byte("<mood xmlns='"+mood+"'/>"), nil); err != nil {
			t.Fatal(err)
		}
		if got := events(); len(got) != 1 || !strings.Contains(got["carol@localhost/c"], "id='m2'") {
			t.Fatalf("mood events: %q", got)
		}
		// Last items: bob/b1 wants both, may read the tune only; b2 wants
		// nothing; carol wants the mood; alice/a her own tune.
		for _, full := range []string{"bob@localhost/b1", "bob@localhost/b2", "carol@localhost/c", "alice@localhost/a"} {
			s.CapsKnown(ctx, jid.MustParse(full))
		}
		got = events()
		if len(got) != 3 || !strings.Contains(got["bob@localhost/b1"], "id='t1'") || strings.Contains(got["bob@localhost/b1"], "m2") ||
			!strings.Contains(got["carol@localhost/c"], "id='m2'") || strings.Contains(got["carol@localhost/c"], "t1") ||
			!strings.Contains(got["alice@localhost/a"], "id='t1'") {
			t.Fatalf("last items: %q", got)
		}
	})
}

// TestInterestRequired: PEP without an Interest is a wiring mistake,
// caught when the server is assembled.
func TestInterestRequired(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "Interest") {
			t.Fatalf("New without an Interest: recovered %v", r)
		}
	}()
	New(nil, fakeRoster{}, router.New(jid.MustParse("localhost"), nil, nil), Options{}, nil)
}
