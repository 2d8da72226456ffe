package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// Namespaces of XEP-0045 and XEP-0004.
const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCOwner = "http://jabber.org/protocol/muc#owner"
	nsData     = "jabber:x:data"
)

// room is one benchmark room and its occupants (clients of b.online).
type room struct {
	jid       string
	occupants []*client
}

func (b *bench) roomJID(r int) string {
	return "benchroom" + strconv.Itoa(r) + "@" + b.o.mucService
}

func nick(c *client) string { return "u" + strconv.Itoa(c.idx) }

// join enters the room (XEP-0045 §7.2) without history and waits for the
// client's own presence from it. It reports whether the room was created
// by this join (status 201).
func (b *bench) join(c *client, rm string) (created bool, err error) {
	occupant := rm + "/" + nick(c)
	ch := c.setWaiter(func(el []byte) bool {
		if string(name(el)) != "presence" {
			return false
		}
		from, _ := attr(el, "from")
		return string(from) == occupant
	})
	defer c.setWaiter(nil)
	if err := c.sendStanzas("<presence to='"+escapeAttr(occupant)+"'><x xmlns='"+nsMUC+"'><history maxstanzas='0'/></x></presence>", 1); err != nil {
		return false, err
	}
	select {
	case el := <-ch:
		if t, _ := attr(el, "type"); string(t) == "error" {
			return false, fmt.Errorf("join refused: %s", describe(el))
		}
		return bytes.Contains(el, []byte("code='201'")) || bytes.Contains(el, []byte(`code="201"`)), nil
	case <-c.done:
		return false, errors.New("join: disconnected")
	case <-time.After(b.o.timeout):
		return false, errors.New("join: no presence from the room in time")
	}
}

// configure accepts the default configuration of a new room, which unlocks
// it (XEP-0045 §10.1.2, instant room).
func (b *bench) configure(c *client, rm string) error {
	ch := c.setWaiter(func(el []byte) bool {
		id, _ := attr(el, "id")
		return string(name(el)) == "iq" && string(id) == "cfg"
	})
	defer c.setWaiter(nil)
	if err := c.sendStanzas("<iq type='set' id='cfg' to='"+escapeAttr(rm)+"'><query xmlns='"+nsMUCOwner+"'><x xmlns='"+nsData+"' type='submit'/></query></iq>", 1); err != nil {
		return err
	}
	select {
	case el := <-ch:
		if t, _ := attr(el, "type"); string(t) != "result" {
			return fmt.Errorf("room configuration refused: %s", describe(el))
		}
		return nil
	case <-time.After(b.o.timeout):
		return errors.New("room configuration: no answer in time")
	}
}

func (b *bench) muc(ctx context.Context) error {
	K, M := b.o.rooms, b.o.occupants
	b.progress("muc: %d rooms × %d occupants on %s", K, M, b.o.mucService)
	if K*M > len(b.online) || M < 2 || K < 1 {
		r := ChatResult{Rooms: K, Occupants: M}
		m := b.meter()
		m.finish(&r.Common, "muc", b.o.n)
		r.Errors = map[string]int{fmt.Sprintf("need %d×%d ≤ %d online clients and 2 or more occupants", K, M, len(b.online)): 1}
		return b.out.emit(r)
	}
	rooms := make([]room, K)
	for r := range rooms {
		rooms[r] = room{jid: b.roomJID(r), occupants: b.online[r*M : (r+1)*M]}
	}
	var joined, failed atomic.Int64
	var errs errorCounts
	t0 := time.Now()
	// Owners first: each creates and unlocks its room.
	parallel(ctx, K, b.o.concurrency, func(r int) {
		owner := rooms[r].occupants[0]
		created, err := b.join(owner, rooms[r].jid)
		if err == nil && created {
			err = b.configure(owner, rooms[r].jid)
		}
		if err != nil {
			failed.Add(1)
			errs.add(err)
			return
		}
		joined.Add(1)
	})
	if joined.Load() > 0 {
		parallel(ctx, K*(M-1), b.o.concurrency, func(i int) {
			rm := rooms[i/(M-1)]
			if err := func() error {
				_, err := b.join(rm.occupants[1+i%(M-1)], rm.jid)
				return err
			}(); err != nil {
				failed.Add(1)
				errs.add(err)
				return
			}
			joined.Add(1)
		})
	}
	joinS := round3(time.Since(t0).Seconds())
	if failed.Load() > 0 {
		// A partial room would count missing occupants as lost messages.
		r := ChatResult{Rooms: K, Occupants: M, JoinOK: int(joined.Load()), JoinFailed: int(failed.Load()), JoinS: joinS, TargetRate: b.o.mucRate}
		m := b.meter()
		m.finish(&r.Common, "muc", b.o.n)
		r.Errors = errs.snapshot()
		return b.out.emit(r)
	}
	// Sending goroutine k owns the rooms r with r%S == k.
	S := b.o.senders
	mine := make([][]*room, S)
	for r := range rooms {
		mine[r%S] = append(mine[r%S], &rooms[r])
	}
	compose := func(rng *rand.Rand, k int, buf, body []byte) (*client, []byte) {
		if len(mine[k]) == 0 {
			return nil, buf
		}
		rm := mine[k][rng.IntN(len(mine[k]))]
		from := rm.occupants[rng.IntN(len(rm.occupants))]
		buf = append(buf, "<message type='groupchat' to='"...)
		buf = append(buf, rm.jid...)
		buf = append(buf, "'><body>"...)
		buf = append(buf, body...)
		buf = append(buf, "</body></message>"...)
		return from, buf
	}
	r := b.send(ctx, load{phase: "muc", rate: b.o.mucRate, dur: b.o.duration, fanout: int64(M), compose: compose})
	r.Rooms, r.Occupants, r.JoinOK, r.JoinS = K, M, int(joined.Load()), joinS
	return b.out.emit(r)
}
