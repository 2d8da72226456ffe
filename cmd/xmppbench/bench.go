package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// marker starts the body of every benchmark message: "xbm:EPOCH:SENTNS:"
// and padding. The epoch tells which run (chat, a max step, muc) a message
// belongs to, so late arrivals never count for the next run; SENTNS is the
// message's scheduled send time on the generator's monotonic clock.
const marker = "xbm:"

// maxEpochs bounds the runs of one invocation.
const maxEpochs = 64

// epoch holds the counters of one run. Readers update them concurrently.
type epoch struct {
	sent, recv, bounced atomic.Int64
	skipped             atomic.Int64 // not sent: the chosen sender was disconnected
	lat                 histogram    // send → receive
	lag                 histogram    // schedule → write
}

// bench is one invocation: its connections and counters.
type bench struct {
	o      options
	o2     *options // the second server's (-addr2), nil without
	out    *output
	log    io.Writer
	base   time.Time // the monotonic clock's zero
	cache  *scramCache
	epochs []epoch
	nextEp int // owned by the phase goroutine

	clients []*client // by account index; nil where login failed
	online  []*client // logged-in clients, in account order

	sm smCounters // with -sm

	closing     atomic.Bool // connections are being closed on purpose
	disconnects atomic.Int64
	readErrs    errorCounts

	rssBeforeLogin int64

	pepOn atomic.Bool // the PEP phase has begun: readers answer its stanzas
	pep   pepCounters
}

func newBench(o options, stdout, stderr io.Writer) *bench {
	var o2 *options
	if o.addr2 != "" {
		c := o
		c.addr, c.domain = o.addr2, o.domain2
		o2 = &c
	}
	return &bench{
		o2:     o2,
		o:      o,
		out:    &output{w: stdout},
		log:    stderr,
		base:   time.Now(),
		cache:  newSCRAMCache(),
		epochs: make([]epoch, maxEpochs),
		nextEp: 1,
	}
}

// smCounters are the stream management counters, nil without -sm.
func (b *bench) smCounters() *smCounters {
	if !b.o.sm {
		return nil
	}
	return &b.sm
}

func (b *bench) now() time.Duration { return time.Since(b.base) }

// opts returns the options client i connects with: the second server's
// (-addr2, -domain2) for odd-numbered clients when one is given.
func (b *bench) opts(i int) *options {
	if b.o.addr2 == "" || i%2 == 0 {
		return &b.o
	}
	if b.o2 == nil {
		panic("xmppbench: second server options not set")
	}
	return b.o2
}

func (b *bench) userName(i int) string {
	return fmt.Sprintf(b.o.userPattern, b.o.first+i)
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "xmppbench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context, phases []string) error {
	defer b.closeAll()
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch p {
		case "register":
			err = b.register(ctx)
		case "login":
			err = b.login(ctx)
		case "hold":
			err = b.holdPhase(ctx)
		case "chat":
			err = b.chat(ctx)
		case "chatmax":
			err = b.chatMax(ctx)
		case "muc":
			err = b.muc(ctx)
		case "pep":
			err = b.pepPhase(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// parallel runs f(0..n-1) on at most conc goroutines.
func parallel(ctx context.Context, n, conc int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (b *bench) register(ctx context.Context) error {
	b.progress("registering %d accounts", b.o.n)
	m := b.meter()
	var created, existed, failed atomic.Int64
	var errs errorCounts
	parallel(ctx, b.o.n, b.o.concurrency, func(i int) {
		c, feats, err := dial(b.opts(i), b.userName(i))
		if err == nil {
			var ex bool
			ex, err = c.register(b.opts(i), feats)
			c.close()
			if ex {
				existed.Add(1)
				return
			}
		}
		if err != nil {
			failed.Add(1)
			errs.add(err)
			return
		}
		created.Add(1)
	})
	r := RegisterResult{Concurrency: b.o.concurrency, Created: int(created.Load()), Existed: int(existed.Load()), Failed: int(failed.Load())}
	m.finish(&r.Common, "register", b.o.n)
	r.Errors = errs.snapshot()
	r.PerS = round3(float64(r.Created+r.Existed) / r.WallS)
	return b.out.emit(r)
}

// prime learns each account's salt without logging in and derives its keys
// into the cache, so the timed logins measure the server rather than the
// generator's PBKDF2 (which costs a client about as much as the rest of a
// login together).
func (b *bench) prime(ctx context.Context) error {
	b.progress("prime: learning %d salts", b.o.n)
	m := b.meter()
	d0 := b.cache.derived.Load()
	var ok, failed atomic.Int64
	var errs errorCounts
	parallel(ctx, b.o.n, b.o.concurrency, func(i int) {
		c, feats, err := dial(b.opts(i), b.userName(i))
		if err == nil {
			err = c.auth(b.opts(i), feats, b.cache, true)
			c.close()
		}
		if err != nil {
			failed.Add(1)
			errs.add(err)
			return
		}
		ok.Add(1)
	})
	r := LoginResult{Mech: b.o.mech, StartTLS: b.o.starttls, Concurrency: b.o.concurrency, OK: int(ok.Load()), Failed: int(failed.Load())}
	m.finish(&r.Common, "prime", b.o.n)
	r.Errors = errs.snapshot()
	r.Derived = b.cache.derived.Load() - d0
	r.PerS = round3(float64(r.OK) / r.WallS)
	return b.out.emit(r)
}

func (b *bench) login(ctx context.Context) error {
	// The baseline is the server before any connection, prime pass
	// included: what N idle clients cost against an empty server.
	if b.o.pid != "" {
		b.rssBeforeLogin, _ = procRSS(b.o.pid)
	}
	if b.o.prime {
		if err := b.prime(ctx); err != nil {
			return err
		}
	}
	b.progress("login: %d clients, %d at once", b.o.n, b.o.concurrency)
	m := b.meter()
	d0 := b.cache.derived.Load()
	b.clients = make([]*client, b.o.n)
	lats := make([]time.Duration, b.o.n)
	var failed atomic.Int64
	var errs errorCounts
	parallel(ctx, b.o.n, b.o.concurrency, func(i int) {
		t0 := time.Now()
		c, err := b.loginOne(i)
		if err != nil {
			failed.Add(1)
			errs.add(err)
			return
		}
		lats[i] = time.Since(t0)
		b.clients[i] = c
		go b.readLoop(c)
	})
	var ok []time.Duration
	for i, c := range b.clients {
		if c != nil {
			b.online = append(b.online, c)
			ok = append(ok, lats[i])
		}
	}
	r := LoginResult{Mech: b.o.mech, StartTLS: b.o.starttls, Concurrency: b.o.concurrency, OK: len(ok), Failed: int(failed.Load()), Primed: b.o.prime}
	m.finish(&r.Common, "login", b.o.n)
	r.Errors = errs.snapshot()
	r.Derived = b.cache.derived.Load() - d0
	r.PerS = round3(float64(r.OK) / r.WallS)
	if b.o.sm {
		res := 0
		for _, c := range b.online {
			if c.sm.resumeOK {
				res++
			}
		}
		r.SMResumable = &res
	}
	if b.o.starttls || b.o.wss() {
		r.TLSGroups = map[string]int{}
		for _, c := range b.online {
			r.TLSGroups[c.kex.String()]++
		}
	}
	r.P50Ms = durMs(exactQuantile(ok, 0.50))
	r.P99Ms = durMs(exactQuantile(ok, 0.99))
	r.MaxMs = durMs(exactQuantile(ok, 1))
	if r.OK > 0 {
		r.GenCPUMsPerLogin = round3(r.GenCPUS * 1000 / float64(r.OK))
		if r.ServerCPUS != nil {
			cpu := *r.ServerCPUS
			if r.ExtraCPUS != nil {
				cpu += *r.ExtraCPUS
			}
			ms := round3(cpu * 1000 / float64(r.OK))
			r.ServerCPUMsPerLogin = &ms
		}
	}
	if b.o.pid != "" {
		rss, _ := procRSS(b.o.pid)
		r.RSSAfterKB = rss / 1024
	}
	if err := b.out.emit(r); err != nil {
		return err
	}
	if len(b.online) < 2 {
		return fmt.Errorf("only %d clients logged in", len(b.online))
	}
	return nil
}

func durMs(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func (b *bench) loginOne(i int) (*client, error) {
	c, feats, err := dial(b.opts(i), b.userName(i))
	if err != nil {
		return nil, err
	}
	c.idx = i
	if err = c.auth(b.opts(i), feats, b.cache, false); err == nil {
		if err = c.bind(b.opts(i), b.smCounters()); err == nil {
			err = c.ready(b.opts(i))
		}
	}
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	c.conn.SetDeadline(time.Time{})
	return c, nil
}

// readLoop is a logged-in client's reader: it counts benchmark messages,
// answers server pings and hands anything else to a waiting phase.
func (b *bench) readLoop(c *client) {
	defer close(c.done)
	for {
		el, err := c.sp.next()
		if err != nil {
			c.dead.Store(true)
			if !b.closing.Load() {
				b.disconnects.Add(1)
				b.readErrs.add(err)
			}
			return
		}
		b.handle(c, el)
	}
}

var markerBytes = []byte(marker)

func (b *bench) handle(c *client, el []byte) {
	if c.sm != nil && c.smRead(el) {
		return
	}
	if bytes.HasPrefix(el, []byte("<message")) {
		if i := bytes.Index(el, markerBytes); i >= 0 {
			if b.pepOn.Load() && ownEvent(c, el) {
				return
			}
			b.received(el, i+len(marker))
			return
		}
	}
	if b.pepOn.Load() && b.handlePEP(c, el) {
		return
	}
	switch {
	case isPing(el):
		c.sendStanzas(pingReply(el), 1)
	case string(name(el)) == "stream:error" && !b.closing.Load():
		b.readErrs.add(fmt.Errorf("stream error: %s", describe(el)))
	default:
		c.offer(el)
	}
}

// received counts one benchmark message whose stamp starts at el[i:].
func (b *bench) received(el []byte, i int) {
	now := b.now()
	ep, i, ok1 := parseUint(el, i)
	ts, _, ok2 := parseUint(el, i+1)
	if !ok1 || !ok2 || ep >= maxEpochs {
		return
	}
	e := &b.epochs[ep]
	if t, _ := attr(el, "type"); string(t) == "error" {
		e.bounced.Add(1)
		return
	}
	e.recv.Add(1)
	e.lat.Record(now - time.Duration(ts))
}

// parseUint reads decimal digits at el[i:] and returns the value and the
// index after them.
func parseUint(el []byte, i int) (uint64, int, bool) {
	start := i
	var v uint64
	for i < len(el) && el[i] >= '0' && el[i] <= '9' {
		v = v*10 + uint64(el[i]-'0')
		i++
	}
	return v, i, i > start
}

// appendBody appends the benchmark body text: marker, epoch, stamp and
// padding up to size bytes.
func appendBody(buf []byte, ep int, stamp time.Duration, size int) []byte {
	start := len(buf)
	buf = append(buf, marker...)
	buf = strconv.AppendInt(buf, int64(ep), 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, int64(stamp), 10)
	buf = append(buf, ':')
	for len(buf)-start < size {
		buf = append(buf, 'x')
	}
	return buf
}

func (b *bench) holdPhase(ctx context.Context) error {
	b.progress("hold: %d connections for %v", len(b.online), b.o.hold)
	m := b.meter()
	r := HoldResult{HoldS: b.o.hold.Seconds()}
	wait := b.o.hold
	if early := 10 * time.Second; b.o.pid != "" && wait > early {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(early):
		}
		wait -= early
		if rss, err := procRSS(b.o.pid); err == nil {
			r.RSSEarlyKB = rss / 1024
			r.BytesPerConnEarly = (rss - b.rssBeforeLogin) / int64(max(1, len(b.online)))
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	for _, c := range b.online {
		if !c.dead.Load() {
			r.Alive++
		}
	}
	m.finish(&r.Common, "hold", b.o.n)
	r.Errors = b.readErrs.snapshot()
	if rss, err := procRSS("self"); err == nil {
		r.GenRSSKB = rss / 1024
	}
	if b.o.pid != "" {
		if rss, err := procRSS(b.o.pid); err == nil {
			r.RSSBeforeKB = b.rssBeforeLogin / 1024
			r.RSSAfterKB = rss / 1024
			if r.Alive > 0 {
				r.BytesPerConn = (rss - b.rssBeforeLogin) / int64(r.Alive)
			}
		}
	}
	return b.out.emit(r)
}

// composer writes the next message of sending goroutine k into buf and
// returns it with the client that sends it (nil to skip).
type composer func(rng *rand.Rand, k int, buf, body []byte) (*client, []byte)

// load is one run of messages at a fixed rate.
type load struct {
	phase, mode string
	rate        float64
	dur         time.Duration
	fanout      int64 // deliveries per message sent
	compose     composer
}

// send runs l on b.o.senders goroutines and waits for the deliveries.
func (b *bench) send(ctx context.Context, l load) ChatResult {
	ep := b.nextEp
	b.nextEp = min(b.nextEp+1, maxEpochs-1)
	e := &b.epochs[ep]
	disc0 := b.disconnects.Load()
	m := b.meter()
	start := b.now() + 10*time.Millisecond
	end := start + l.dur
	var wg sync.WaitGroup
	seed := uint64(time.Now().UnixNano())
	for k := range b.o.senders {
		p := &pacer{start: start, rate: l.rate / float64(b.o.senders)}
		limit := int64(math.Round(p.rate * l.dur.Seconds()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.sendLoop(ctx, rand.New(rand.NewPCG(seed, uint64(k))), k, ep, e, p, end, limit, l.compose)
		}()
	}
	wg.Wait()
	sentAt := time.Now()
	// Drain: wait for what is still on its way.
	expected := e.sent.Load() * l.fanout
	deadline := sentAt.Add(b.o.drain)
	for e.recv.Load()+e.bounced.Load()*l.fanout < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	r := ChatResult{Mode: l.mode, TargetRate: l.rate, DurationS: l.dur.Seconds()}
	m.finish(&r.Common, l.phase, b.o.n)
	r.DrainS = round3(time.Since(sentAt).Seconds())
	r.Sent, r.Expected = e.sent.Load(), expected
	r.Delivered, r.Bounced = e.recv.Load(), e.bounced.Load()
	r.Lost = max(expected-r.Delivered-r.Bounced*l.fanout, 0)
	r.PerS = round3(float64(r.Delivered) / l.dur.Seconds())
	r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = e.lat.Quantile(0.50), e.lat.Quantile(0.99), e.lat.Quantile(0.999), e.lat.Max()
	r.SendLagP99 = e.lag.Quantile(0.99)
	r.Disconnects = b.disconnects.Load() - disc0
	if r.ServerCPUS != nil && r.Delivered > 0 {
		r.CPUPer10k = round3(*r.ServerCPUS / float64(r.Delivered) * 10000)
	}
	if r.Delivered > 0 {
		r.GenPer10k = round3(r.GenCPUS / float64(r.Delivered) * 10000)
	}
	r.Errors = b.readErrs.snapshot()
	if r.Lost > 0 {
		b.settle(ctx, e)
	}
	if s := e.skipped.Load(); s > 0 {
		if r.Errors == nil {
			r.Errors = map[string]int{}
		}
		r.Errors["not sent: sender disconnected or writes blocked"] = int(s)
	}
	return r
}

// settle waits, after a run that left messages undelivered, until the late
// ones stop arriving (no change for 2 s, at most 30 s), so that a server's
// backlog does not spill into the next run's figures.
func (b *bench) settle(ctx context.Context, e *epoch) {
	last, still := e.recv.Load(), 0
	for i := 0; i < 60 && still < 4 && ctx.Err() == nil; i++ {
		time.Sleep(500 * time.Millisecond)
		if n := e.recv.Load(); n != last {
			last, still = n, 0
		} else {
			still++
		}
	}
}

// sendLoop is one sending goroutine: it writes what its pacer says is due,
// in batches, and sleeps until the next message is due. Every message
// scheduled before end is sent, late if need be (its latency then shows
// it), unless the goroutine is still writing a drain period after end.
func (b *bench) sendLoop(ctx context.Context, rng *rand.Rand, k, ep int, e *epoch, p *pacer, end time.Duration, limit int64, compose composer) {
	var buf, body []byte
	sl := newSleeper()
	defer sl.close()
	slept := false
	for p.sent < limit && ctx.Err() == nil && p.next() < end {
		now := b.now()
		if now >= end+b.o.drain {
			// Hopelessly behind (writes blocked): the rest is not sent.
			e.skipped.Add(limit - p.sent)
			return
		}
		due := p.due(now)
		if due <= 0 {
			sl.sleep(p.next() - now)
			slept = true
			continue
		}
		// A message's latency counts from its scheduled time, so that
		// writes the server holds up count (no coordinated omission),
		// except when the generator itself overslept: messages that fell
		// due while it slept count from when it woke (now). Its lateness
		// is reported apart, as the send lag.
		wake := time.Duration(0)
		if slept {
			wake, slept = now, false
		}
		for range min(due, 512) {
			if p.sent >= limit {
				return
			}
			sched := p.take()
			body = appendBody(body[:0], ep, max(sched, wake), b.o.bodySize)
			c, msg := compose(rng, k, buf[:0], body)
			if c == nil || c.dead.Load() {
				buf = msg
				e.skipped.Add(1)
				continue
			}
			if c.sm != nil && c.smSent(1) {
				msg = append(msg, smRequest...)
			}
			buf = msg
			if _, err := c.conn.Write(msg); err != nil {
				e.skipped.Add(1)
				continue
			}
			e.sent.Add(1)
			e.lag.Record(b.now() - sched)
		}
	}
}

// chatComposer sends 1:1 messages from sending goroutine k's share of the
// clients to any other online client, addressed to its full JID.
func (b *bench) chatComposer() composer {
	S := b.o.senders
	mine := make([][]*client, S)
	for i, c := range b.online {
		mine[i%S] = append(mine[i%S], c)
	}
	all := b.online
	return func(rng *rand.Rand, k int, buf, body []byte) (*client, []byte) {
		if len(mine[k]) == 0 {
			return nil, buf
		}
		from := mine[k][rng.IntN(len(mine[k]))]
		to := all[rng.IntN(len(all))]
		// With two servers, to a client of the other one.
		for to == from || b.o.addr2 != "" && to.idx%2 == from.idx%2 {
			to = all[rng.IntN(len(all))]
		}
		buf = append(buf, "<message type='chat' to='"...)
		buf = append(buf, to.jid...)
		buf = append(buf, "'><body>"...)
		buf = append(buf, body...)
		buf = append(buf, "</body></message>"...)
		return from, buf
	}
}

func (b *bench) chat(ctx context.Context) error {
	b.progress("chat: %.0f msgs/s for %v among %d clients", b.o.rate, b.o.duration, len(b.online))
	r := b.send(ctx, load{phase: "chat", rate: b.o.rate, dur: b.o.duration, fanout: 1, compose: b.chatComposer()})
	return b.out.emit(r)
}

// maxSteps bounds the max search.
const maxSteps = 12

// chatMax finds the highest rate with p99 within the limit and nothing lost:
// it doubles (or halves) the rate from -max-start until it has a passing
// and a failing rate, then bisects between them (geometric mean) until they
// are within 10% of each other or the steps run out.
func (b *bench) chatMax(ctx context.Context) error {
	m := b.meter()
	compose := b.chatComposer()
	limit := b.o.maxP99
	rate := b.o.maxStart
	var pass, fail, passP99 float64
	steps := 0
search:
	for steps < maxSteps && ctx.Err() == nil {
		steps++
		b.progress("chatmax: step %d at %.0f msgs/s", steps, rate)
		var r ChatResult
		var ok bool
		for try := 0; ; try++ {
			r = b.send(ctx, load{phase: "chatmax-step", rate: rate, dur: b.o.step, fanout: 1, compose: compose})
			ok = r.Lost == 0 && r.Bounced == 0 && r.P99Ms <= limit && r.Disconnects == 0 &&
				float64(r.Sent) >= 0.98*rate*b.o.step.Seconds()
			r.Pass = &ok
			// A step that failed with the generator itself writing late
			// (on a shared or virtual machine, a pause of the generator's
			// own) is run again once: the failure may not be the server's.
			retry := !ok && try == 0 && r.Lost == 0 && r.SendLagP99 > limit/2
			r.Repeated = retry
			if err := b.out.emit(r); err != nil {
				return err
			}
			if !retry {
				break
			}
			b.progress("chatmax: generator late (send lag p99 %.0f ms); step again", r.SendLagP99)
			time.Sleep(2 * time.Second)
		}
		if ok {
			if rate > pass {
				pass, passP99 = rate, r.P99Ms
			}
		} else if fail == 0 || rate < fail {
			fail = rate
		}
		switch {
		case fail == 0:
			if rate >= b.o.maxRate {
				break search
			}
			rate = math.Min(rate*2, b.o.maxRate)
		case pass == 0:
			if rate <= 10 {
				break search
			}
			rate = math.Round(rate / 2)
		default:
			if fail <= pass*1.1 {
				break search
			}
			rate = math.Round(math.Sqrt(pass * fail))
		}
		// Let the server settle: a failed step may leave a backlog.
		if !ok {
			time.Sleep(2 * time.Second)
		}
	}
	r := MaxResult{P99LimitMs: limit, Steps: steps, MaxRate: pass, P99Ms: passP99, FirstFail: fail}
	m.finish(&r.Common, "chatmax", b.o.n)
	return b.out.emit(r)
}

// closeAll ends every stream.
func (b *bench) closeAll() {
	b.closing.Store(true)
	for _, c := range b.online {
		c.close()
	}
}
