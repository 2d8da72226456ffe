package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// Namespaces of the PEP phase: XEP-0060/0163 publishing, XEP-0115 entity
// capabilities, XEP-0030 discovery, and the node published to (XEP-0118
// user tune, a small PEP payload every server accepts).
const (
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsRoster    = "jabber:iq:roster"
	pepNode     = "http://jabber.org/protocol/tune"
	capsNode    = "https://xmppd.dev/xmppbench"
)

// benchIdentity and benchFeatures are what every benchmark client says it
// is and supports: the tune node's "+notify" makes a server send it the
// events of the accounts it is subscribed to (XEP-0163 §4). Features are
// sorted as XEP-0115 §5.1 orders them.
const benchIdentity = "client/pc//xmppbench"

var benchFeatures = []string{nsCaps, nsDiscoInfo, pepNode, pepNode + "+notify"}

// capsVer is the XEP-0115 verification string's SHA-1 for benchIdentity
// and benchFeatures.
var capsVer = func() string {
	var s strings.Builder
	s.WriteString(benchIdentity + "<")
	for _, f := range benchFeatures {
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}()

// capsPresence is a client's available presence with its capabilities.
var capsPresence = "<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + capsNode + "' ver='" + capsVer + "'/></presence>"

// pepCounters count what the reader goroutines see during the PEP phase.
type pepCounters struct {
	subscribed atomic.Int64 // <presence type='subscribed'/> received
	discoAsked atomic.Int64 // disco#info queries answered
	errs       errorCounts  // publish IQs answered with an error
}

// handlePEP answers what a PEP benchmark client must: subscription
// requests (accepted), disco#info queries (its capabilities), and counts
// subscription answers and failed publishes. It reports whether el was
// taken.
func (b *bench) handlePEP(c *client, el []byte) bool {
	switch string(name(el)) {
	case "presence":
		switch t, _ := attr(el, "type"); string(t) {
		case "subscribe":
			from, _ := attr(el, "from")
			c.sendStanzas("<presence type='subscribed' to='"+string(from)+"'/>", 1)
			return true
		case "subscribed":
			b.pep.subscribed.Add(1)
			return true
		}
	case "iq":
		t, _ := attr(el, "type")
		switch {
		case string(t) == "get" && bytes.Contains(el, []byte(nsDiscoInfo)):
			b.answerDisco(c, el)
			return true
		case string(t) == "error":
			if id, _ := attr(el, "id"); string(id) == "pep" {
				b.pep.errs.add(fmt.Errorf("publish refused: %s", errorCondition(el)))
				return true
			}
		}
	}
	return false
}

// errorCondition names the condition of an error stanza (the first
// element inside <error/>), with the element's application-specific
// condition if it has one, for counting errors by kind.
func errorCondition(el []byte) string {
	i := bytes.Index(el, []byte("<error"))
	if i < 0 {
		return describe(el)
	}
	var conds []string
	for rest := el[i+1:]; len(conds) < 2; {
		j := bytes.IndexByte(rest, '<')
		if j < 0 || j+1 >= len(rest) || rest[j+1] == '/' {
			break
		}
		rest = rest[j:]
		if n := string(localName(rest)); n != "text" {
			conds = append(conds, n)
		}
		rest = rest[1:]
	}
	if len(conds) == 0 {
		return describe(el)
	}
	if t, ok := childText(el[i:], "text"); ok && len(t) > 0 {
		conds = append(conds, fmt.Sprintf("%q", unescape(t)))
	}
	return strings.Join(conds, " + ")
}

// answerDisco answers a disco#info query with the client's identity and
// features, echoing its node (XEP-0115 §6.2).
func (b *bench) answerDisco(c *client, el []byte) {
	id, _ := attr(el, "id")
	from, _ := attr(el, "from")
	node := ""
	if i := bytes.Index(el, []byte("<query")); i >= 0 {
		if n, ok := attr(el[i:], "node"); ok {
			node = " node='" + string(n) + "'"
		}
	}
	var s strings.Builder
	s.WriteString("<iq type='result' id='" + string(id) + "'")
	if len(from) > 0 {
		s.WriteString(" to='" + string(from) + "'")
	}
	s.WriteString("><query xmlns='" + nsDiscoInfo + "'" + node + "><identity category='client' type='pc' name='xmppbench'/>")
	for _, f := range benchFeatures {
		s.WriteString("<feature var='" + f + "'/>")
	}
	s.WriteString("</query></iq>")
	c.sendStanzas(s.String(), 1)
	b.pep.discoAsked.Add(1)
}

// ownEvent reports whether el is a PEP event from c's own account (the
// server sends the publisher's resources its own events too): not one of
// the contacts' deliveries the phase counts.
func ownEvent(c *client, el []byte) bool {
	from, ok := attr(el, "from")
	if !ok {
		return false
	}
	bare, _, _ := strings.Cut(c.jid, "/")
	return string(from) == bare
}

// pepPhase: every online client fetches its roster first, as real clients
// do, and subscribes to the presence of the -pep-contacts/2 clients before
// and after it (which accept), so that each has -pep-contacts contacts in
// both directions — Prosody and ejabberd learn a contact's interest from
// the presence it sends the publisher, which needs a mutual subscription;
// then every client announces caps with the tune node's +notify, and
// clients publish tune items at -pep-rate publishes per second for
// -duration, each publish notifying the publisher's contacts. A
// notification counts once its event reaches a subscriber; latency is
// from the publish's scheduled time.
func (b *bench) pepPhase(ctx context.Context) error {
	N, M := len(b.online), b.o.pepContacts
	r := ChatResult{Contacts: M, TargetRate: b.o.pepRate}
	if M < 2 || M%2 != 0 || M >= N {
		m := b.meter()
		m.finish(&r.Common, "pep", b.o.n)
		r.Errors = map[string]int{fmt.Sprintf("need an even -pep-contacts (%d), at least 2 and below the online clients (%d)", M, N): 1}
		return b.out.emit(r)
	}
	b.progress("pep: %d clients, each subscribed to %d, publishing %.0f/s", N, M, b.o.pepRate)
	b.pepOn.Store(true)
	t0 := time.Now()
	var setup errorCounts
	// Prosody sends roster pushes and 'subscribed' only to resources
	// that fetched the roster (RFC 6121 §2.1.6 allows it), so fetch it.
	parallel(ctx, N, b.o.concurrency, func(i int) {
		if err := b.ask(b.online[i], "roster", "<iq type='get' id='roster'><query xmlns='"+nsRoster+"'/></iq>"); err != nil {
			setup.add(err)
		}
	})
	b.pep.subscribed.Store(0)
	parallel(ctx, N, b.o.concurrency, func(i int) {
		c := b.online[i]
		var s strings.Builder
		for k := 1; k <= M/2; k++ {
			for _, j := range []int{(i + k) % N, (i - k + N) % N} {
				to, _, _ := strings.Cut(b.online[j].jid, "/")
				s.WriteString("<presence type='subscribe' to='" + to + "'/>")
			}
		}
		if err := c.sendStanzas(s.String(), uint32(M)); err != nil {
			setup.add(err)
		}
	})
	want := int64(N * M)
	deadline := time.Now().Add(4 * b.o.timeout)
	for b.pep.subscribed.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if got := b.pep.subscribed.Load(); got < want {
		setup.add(fmt.Errorf("subscriptions: %d of %d answered", got, want))
	}
	// One client first, so that the server learns the caps once (it asks
	// that client); then everyone. A presence after the subscriptions is
	// also what ejabberd needs to notify a contact.
	if err := b.online[0].sendStanzas(capsPresence, 1); err != nil {
		setup.add(err)
	}
	for wait := time.Now().Add(5 * time.Second); b.pep.discoAsked.Load() == 0 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	parallel(ctx, N-1, b.o.concurrency, func(i int) {
		if err := b.online[i+1].sendStanzas(capsPresence, 1); err != nil {
			setup.add(err)
		}
	})
	// Let the presence settle: until no disco#info query came for 500 ms.
	for last, still := b.pep.discoAsked.Load(), 0; still < 10 && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
		if n := b.pep.discoAsked.Load(); n != last {
			last, still = n, 0
		} else {
			still++
		}
	}
	// Each client publishes once, so that the load measures publishing to
	// nodes that exist, as clients do after their first login. ejabberd
	// 23.01 answered about half of these first publishes item-not-found
	// (a try a moment later succeeds), so each is tried up to 6 times, waiting
	// 0.1 s, then twice as long each time.
	var retried atomic.Int64
	parallel(ctx, N, b.o.concurrency, func(i int) {
		var err error
		for try := 0; try < 6; try++ {
			if try > 0 {
				retried.Add(1)
				time.Sleep(time.Duration(50<<try) * time.Millisecond)
			}
			if err = b.ask(b.online[i], "pepinit", "<iq type='set' id='pepinit'><pubsub xmlns='"+nsPubsub+"'><publish node='"+pepNode+"'><item id='current'><tune xmlns='"+pepNode+"'><title>init</title></tune></item></publish></pubsub></iq>"); err == nil {
				break
			}
		}
		if err != nil {
			setup.add(err)
		}
	})
	if n := retried.Load(); n > 0 {
		b.progress("pep: %d first publishes were tried again", n)
	}
	setupS := round3(time.Since(t0).Seconds())

	S := b.o.senders
	mine := make([][]*client, S)
	for i, c := range b.online {
		mine[i%S] = append(mine[i%S], c)
	}
	compose := func(rng *rand.Rand, k int, buf, body []byte) (*client, []byte) {
		if len(mine[k]) == 0 {
			return nil, buf
		}
		from := mine[k][rng.IntN(len(mine[k]))]
		buf = append(buf, "<iq type='set' id='pep'><pubsub xmlns='"+nsPubsub+"'><publish node='"+pepNode+"'><item id='current'><tune xmlns='"+pepNode+"'><title>"...)
		buf = append(buf, body...)
		buf = append(buf, "</title></tune></item></publish></pubsub></iq>"...)
		return from, buf
	}
	r = b.send(ctx, load{phase: "pep", rate: b.o.pepRate, dur: b.o.duration, fanout: int64(M), compose: compose})
	r.Contacts, r.SetupS = M, setupS
	for msg, n := range merge(setup.snapshot(), b.pep.errs.snapshot()) {
		if r.Errors == nil {
			r.Errors = map[string]int{}
		}
		r.Errors[msg] += n
	}
	return b.out.emit(r)
}

// ask sends an IQ with the given id and waits for its answer.
func (b *bench) ask(c *client, id, iq string) error {
	ch := c.setWaiter(func(el []byte) bool {
		v, _ := attr(el, "id")
		return string(name(el)) == "iq" && string(v) == id
	})
	defer c.setWaiter(nil)
	if err := c.sendStanzas(iq, 1); err != nil {
		return err
	}
	select {
	case el := <-ch:
		if t, _ := attr(el, "type"); string(t) != "result" {
			return fmt.Errorf("%s: %s", id, errorCondition(el))
		}
		return nil
	case <-c.done:
		return errors.New(id + ": disconnected")
	case <-time.After(b.o.timeout):
		return errors.New(id + ": no answer in time")
	}
}

func merge(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}
