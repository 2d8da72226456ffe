package muc_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/router"
)

// recordSession keeps what it is given.
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
func (s *recordSession) Close(stream.Error) {}
func (s *recordSession) DeliverThen(b []byte, done func(bool)) error {
	s.Deliver(b)
	if done != nil {
		done(true)
	}
	return nil
}

// TestConcurrentSenders: occupants writing at once, each from its own
// goroutine as c2s read loops do. Every occupant gets every message, and
// one sender's messages in the order sent.
func TestConcurrentSenders(t *testing.T) {
	const senders, each = 8, 50
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	svc, err := muc.New(r, nil, muc.Options{Domain: service, MaxRoomsPerUser: 1, MaxOccupants: 100, HistoryLength: 10, MaxHistoryLength: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(r.Registry())
	parse := func(raw string) *router.Stanza {
		st, err := router.Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	sessions := make([]*recordSession, senders)
	for i := range sessions {
		sessions[i] = &recordSession{j: jid.MustParse(fmt.Sprintf("u%d@localhost/r", i))}
		r.Bind(ctx, sessions[i])
		r.FromClient(ctx, parse(fmt.Sprintf("<presence from='u%d@localhost/r' to='%s/u%d'><x xmlns='http://jabber.org/protocol/muc'/></presence>", i, lounge, i)))
		if i == 0 {
			r.FromClient(ctx, parse(fmt.Sprintf("<iq type='set' id='c' from='u0@localhost/r' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", lounge)))
		}
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for m := range each {
				r.FromClient(ctx, parse(fmt.Sprintf("<message type='groupchat' id='%d-%d' from='u%d@localhost/r' to='%s'><body>x</body></message>", i, m, i, lounge)))
			}
		})
	}
	wg.Wait()
	id := regexp.MustCompile(`<message to='[^']*' type='groupchat' id='(\d+)-(\d+)'`)
	for _, s := range sessions {
		next := make([]int, senders)
		n := 0
		for _, raw := range s.got {
			m := id.FindStringSubmatch(raw)
			if m == nil {
				continue
			}
			from, seq := atoi(m[1]), atoi(m[2])
			if seq != next[from] {
				t.Fatalf("%s got message %d of u%d, want %d", s.j, seq, from, next[from])
			}
			next[from]++
			n++
		}
		if n != senders*each {
			t.Errorf("%s got %d messages, want %d", s.j, n, senders*each)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestBounceDuringFanout: what the router cannot deliver to an occupant
// comes back to the room as an error while the room's queue is being
// routed; the room takes the ghost out (333) without deadlocking. Here
// the ghost has no session at all, so the subject sent at the end of its
// own join bounces.
func TestBounceDuringFanout(t *testing.T) {
	ctx := context.Background()
	r := router.New(jid.MustParse("localhost"), nil, nil)
	svc, err := muc.New(r, nil, muc.Options{Domain: service, MaxRoomsPerUser: 1, MaxOccupants: 10, HistoryLength: 10, MaxHistoryLength: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(r.Registry())
	send := func(raw string) {
		st, err := router.Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		r.FromClient(ctx, st)
	}
	alice := &recordSession{j: jid.MustParse("alice@localhost/r")}
	r.Bind(ctx, alice)
	send("<presence from='alice@localhost/r' to='" + lounge + "/Alice'/>") // groupchat 1.0: an instant room
	alice.mu.Lock()
	alice.got = nil
	alice.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		send("<presence from='ghost@localhost/r' to='" + lounge + "/Ghost'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the join did not return: deadlock")
	}
	alice.mu.Lock()
	got := alice.got
	alice.mu.Unlock()
	if len(got) != 2 || strings.Contains(got[0], "unavailable") || !strings.Contains(got[1], "type='unavailable'") ||
		!strings.Contains(got[1], "<status code='333'/>") || !strings.Contains(got[1], "from='"+lounge+"/Ghost'") {
		t.Fatalf("alice got %q, want the ghost's arrival, then its removal with 333", got)
	}
	send("<message type='groupchat' id='g1' from='alice@localhost/r' to='" + lounge + "'><body>boo</body></message>")
	alice.mu.Lock()
	defer alice.mu.Unlock()
	if n := len(alice.got); n != 3 {
		t.Fatalf("alice got %d stanzas, want 3: the message too", n)
	}
}
