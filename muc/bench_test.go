package muc_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/router"
)

// countSession is a bound session that counts what it is given.
type countSession struct {
	j jid.JID
	n atomic.Int64
}

func (c *countSession) JID() jid.JID         { return c.j }
func (c *countSession) Deliver([]byte) error { c.n.Add(1); return nil }
func (c *countSession) Close(stream.Error)   {}
func (c *countSession) DeliverThen(b []byte, done func(bool)) error {
	c.n.Add(1)
	if done != nil {
		done(true)
	}
	return nil
}

// stanzaOf parses a stanza as c2s would hand it to the router.
func stanzaOf(b *testing.B, raw string) *router.Stanza {
	st, err := router.Parse([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkFanout sends one group chat message into a room of n
// occupants, each a session bound in a real router: the message is
// parsed, checked, serialised once, copied per recipient with its to,
// kept in the history, and routed to every occupant. ns/delivery and
// allocs/delivery are per occupant reached.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			r := router.New(jid.MustParse("localhost"), nil, nil)
			svc, err := muc.New(r, nil, muc.Options{Domain: service, MaxRoomsPerUser: 1, MaxOccupants: n,
				HistoryLength: 20, MaxHistoryLength: 100}, nil)
			if err != nil {
				b.Fatal(err)
			}
			svc.Register(r.Registry())
			sessions := make([]*countSession, n)
			for i := range sessions {
				s := &countSession{j: jid.MustParse(fmt.Sprintf("u%d@localhost/r", i))}
				sessions[i] = s
				r.Bind(ctx, s)
				r.FromClient(ctx, stanzaOf(b, fmt.Sprintf("<presence from='u%d@localhost/r' to='%s/u%d'><x xmlns='http://jabber.org/protocol/muc'/></presence>", i, lounge, i)))
				if i == 0 {
					r.FromClient(ctx, stanzaOf(b, fmt.Sprintf("<iq type='set' id='c' from='u0@localhost/r' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", lounge)))
				}
			}
			before := sessions[n-1].n.Load()
			msg := stanzaOf(b, "<message type='groupchat' id='b1' from='u0@localhost/r' to='"+lounge+"'><body>Double, double toil and trouble; fire burn and cauldron bubble.</body></message>")
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			b.SetBytes(int64(len(msg.Raw)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				r.FromClient(ctx, msg)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			got := sessions[n-1].n.Load() - before
			if got != int64(b.N) {
				b.Fatalf("the last occupant got %d messages, want %d", got, b.N)
			}
			deliveries := float64(b.N) * float64(n)
			b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
			b.ReportMetric(float64(ms.Mallocs-mallocs)/deliveries, "allocs/delivery")
		})
	}
}
