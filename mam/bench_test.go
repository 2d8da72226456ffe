package mam_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppd.dev/xmppd/mam"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage/storagetest"
)

type discard struct {
	j jid.JID
	n int
}

func (d *discard) JID() jid.JID         { return d.j }
func (d *discard) Deliver([]byte) error { d.n++; return nil }
func (d *discard) Close(stream.Error)   {}
func (d *discard) DeliverThen(b []byte, done func(bool)) error {
	d.n++
	done(true)
	return nil
}

// BenchmarkArchiveMessage routes a chat message between two local users
// through the router with the archive registered, and counts, per
// message, the hooks and the writer's share of storing both archives'
// rows (the benchmark waits for them to be written): what the archive
// adds to a message's CPU. "off" is the router alone.
func BenchmarkArchiveMessage(b *testing.B) {
	for _, on := range []string{"off", "sqlite", "postgres"} {
		b.Run(on, func(b *testing.B) {
			ctx := context.Background()
			r := router.New(jid.MustParse("localhost"), nil, nil)
			var svc *mam.Service
			if on != "off" {
				e := storagetest.SQLite(b)
				if on == "postgres" {
					e = storagetest.Postgres(b)
				}
				db := storagetest.Open(b, e)
				svc = mam.New(r, db.Archive(), mam.Options{Default: "always"}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
				if err := svc.Start(ctx); err != nil {
					b.Fatal(err)
				}
				svc.Register(r.Registry())
				defer svc.Stop(ctx)
			}
			const users = 1000
			sessions := make([]*discard, users)
			for i := range sessions {
				sessions[i] = &discard{j: jid.MustParse(fmt.Sprintf("u%d@localhost/r", i))}
				r.Bind(ctx, sessions[i])
			}
			msgs := make([]*router.Stanza, users)
			for i := range msgs {
				raw := fmt.Sprintf("<message from='u%d@localhost/r' to='u%d@localhost/r' type='chat' id='m%d'><body>%064d</body></message>", i, (i+7)%users, i, i)
				st, err := router.Parse([]byte(raw))
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = st
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				r.FromClient(ctx, msgs[i%users])
				i++
			}
			if svc != nil {
				svc.Flush()
			}
		})
	}
}
