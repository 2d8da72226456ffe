// Command xmppbench is a load generator for any XMPP server (RFC 6120,
// RFC 6121, XEP-0045), for measuring xmppd beside Prosody and ejabberd on
// one machine. It speaks to loopback addresses only.
//
// Usage:
//
//	xmppbench [flags] PHASE[,PHASE...]
//	xmppbench table RESULTS.jsonl...
//
// The second form prints the comparison table of bench/compare from result
// lines labelled prosody, ejabberd, ejabberd-postgres, xmppd-postgres and
// xmppd-sqlite.
//
// Phases run in the order given, on one set of connections, and each prints
// one JSON line on standard output:
//
//	register  create the N accounts by in-band registration (XEP-0077)
//	login     N clients connect, STARTTLS, SCRAM, bind, send initial presence
//	          and wait for the answer to a ping sent after it, at most
//	          -concurrency at once: logins/s, p50/p99 latency, failures.
//	          With -prime (the default) an untimed pass first learns every
//	          account's salt so the timed logins skip the client's PBKDF2.
//	hold      keep the N connections idle for -hold; with -pid, the server's
//	          RSS before the logins and after, bytes per connection and CPU.
//	chat      1:1 messages between random online clients at -rate for
//	          -duration: delivered/s, loss, p50/p99/p999 latency, server
//	          CPU-seconds per 10k messages.
//	chatmax   raise the chat rate in steps of -step until p99 passes
//	          -max-p99 or a message is lost, then bisect: the highest rate
//	          that passed.
//	muc       -rooms rooms of -occupants clients on -muc-service, groupchat
//	          at -muc-rate for -duration: fan-out deliveries/s, latency, loss.
//
// Phases after login need it and run it if it is not listed. Every
// message carries its scheduled send time; latencies are measured on the
// generator's monotonic clock. The generator's own CPU time is in every
// line (gen_cpu_s, gen_cores) so that a saturated generator is visible.
//
// With -transport websocket the clients speak XMPP over WebSocket (RFC
// 7395) to -ws-url (default wss://ADDR/xmpp-websocket: TLS from the URL, no
// STARTTLS) with the subprotocol xmpp and an Origin header (-ws-origin); a
// net.Conn under the client translates the stream to one message per
// element and back (ws.go), so every phase runs as over TCP, and every
// line says "transport": "websocket".
//
// With -sm every client enables stream management (XEP-0198, with resume)
// after bind and acknowledges as a mobile client does (see -sm-ack-every);
// every line then says so ("sm": true) and counts the <a/> and <r/> of
// its phase each way.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command's settings; immutable once a bench starts.
type options struct {
	addr, domain, userPattern, password, mech, resource string
	// addr2 and domain2, when set, are a second server federating with
	// the first: odd-numbered clients log in there, and chat messages go
	// from each server's clients to the other's, across the s2s link.
	addr2, domain2                       string
	first, n, concurrency                int
	starttls, prime                      bool
	timeout, hold, duration, drain, step time.Duration
	rate, maxStart, maxRate, maxP99      float64
	senders, bodySize, readBuf           int
	mucService                           string
	rooms, occupants                     int
	mucRate                              float64
	pepContacts                          int
	pepRate                              float64
	pid, extraComm, label                string
	tlsGroups                            []tls.CurveID
	sm                                   bool // stream management (XEP-0198) on every client
	smAckEvery                           int
	transport, wsURL, wsOrigin           string
	ws                                   *wsTransport // with -transport websocket; set by check
}

// tlsGroupNames are the key exchanges -tls-groups accepts.
var tlsGroupNames = map[string]tls.CurveID{
	"x25519":         tls.X25519,
	"p256":           tls.CurveP256,
	"p384":           tls.CurveP384,
	"x25519mlkem768": tls.X25519MLKEM768,
}

// parseTLSGroups reads a comma-separated list of tlsGroupNames.
func parseTLSGroups(s string) ([]tls.CurveID, error) {
	var ids []tls.CurveID
	for name := range strings.SplitSeq(s, ",") {
		id, ok := tlsGroupNames[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			return nil, fmt.Errorf("-tls-groups: unknown group %q (want x25519, p256, p384 or x25519mlkem768)", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "xmppbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "table" {
		if len(args) < 2 {
			return fmt.Errorf("usage: xmppbench table RESULTS.jsonl...")
		}
		return writeTable(stdout, args[1:])
	}
	fs := flag.NewFlagSet("xmppbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "server's c2s address (loopback only)")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP domain")
	fs.StringVar(&o.addr2, "addr2", "", "a second server's c2s address: odd-numbered clients log in there, and chat crosses between the two (federation)")
	fs.StringVar(&o.domain2, "domain2", "", "the second server's domain (with -addr2)")
	fs.StringVar(&o.userPattern, "user", "user%d", "account local part pattern; %d is the account number")
	fs.IntVar(&o.first, "first", 1, "number of the first account")
	fs.StringVar(&o.password, "password", "benchpass", "password of every account")
	fs.StringVar(&o.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: SCRAM-SHA-1 or SCRAM-SHA-256")
	fs.StringVar(&o.resource, "resource", "bench", "resource to bind")
	fs.IntVar(&o.n, "n", 1000, "number of clients (and accounts)")
	fs.IntVar(&o.concurrency, "concurrency", 100, "logins (and registrations, MUC joins) in flight at once")
	fs.BoolVar(&o.starttls, "starttls", true, "negotiate STARTTLS (tcp transport)")
	fs.StringVar(&o.transport, "transport", "tcp", "tcp (c2s, RFC 6120) or websocket (RFC 7395; no STARTTLS, TLS from a wss:// URL)")
	fs.StringVar(&o.wsURL, "ws-url", "", "websocket: the URL (default wss://ADDR/xmpp-websocket, ADDR being -addr)")
	fs.StringVar(&o.wsOrigin, "ws-origin", "", "websocket: Origin header (default https://HOST:PORT of the URL, which xmppd allows without allowed_origins; \"none\" to send none)")
	// Go's client offers the post-quantum X25519MLKEM768 first, which a
	// Go server takes and OpenSSL 3.0 (Prosody, ejabberd) cannot: offering
	// what every server can do makes all of them run the same handshake.
	tlsGroups := fs.String("tls-groups", "x25519,p256", "TLS key exchanges the client offers, in order: x25519, p256, p384, x25519mlkem768")
	fs.BoolVar(&o.prime, "prime", true, "learn salts in an untimed pass before login, so timed logins skip the client's PBKDF2")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "limit for one login, registration or MUC join")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "hold phase: how long to stay idle")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "chat and muc phases: how long to send")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait after sending for messages still on their way")
	fs.DurationVar(&o.step, "step", 8*time.Second, "chatmax: duration of one step")
	fs.Float64Var(&o.rate, "rate", 5000, "chat: aggregate messages per second")
	fs.Float64Var(&o.maxStart, "max-start", 1000, "chatmax: first rate tried")
	fs.Float64Var(&o.maxRate, "max-rate", 100000, "chatmax: highest rate tried")
	fs.Float64Var(&o.maxP99, "max-p99", 100, "chatmax: p99 limit in milliseconds")
	fs.IntVar(&o.senders, "senders", 2, "sending goroutines (each owns a share of the clients)")
	fs.IntVar(&o.bodySize, "body", 64, "message body size in bytes (at least the timestamp)")
	fs.IntVar(&o.readBuf, "readbuf", 2048, "initial read buffer per connection")
	fs.StringVar(&o.mucService, "muc-service", "", "MUC service (default conference.DOMAIN)")
	fs.IntVar(&o.rooms, "rooms", 50, "muc: number of rooms")
	fs.IntVar(&o.occupants, "occupants", 20, "muc: occupants per room")
	fs.Float64Var(&o.mucRate, "muc-rate", 100, "muc: aggregate groupchat messages per second")
	fs.IntVar(&o.pepContacts, "pep-contacts", 10, "pep: contacts of each user (even: half before it, half after, subscribed both ways), who get its events")
	fs.Float64Var(&o.pepRate, "pep-rate", 500, "pep: aggregate publishes per second (each notifies -pep-contacts subscribers)")
	fs.StringVar(&o.pid, "pid", "", "server's PID, for its RSS and CPU time from /proc (comma-separated: several servers, summed)")
	fs.StringVar(&o.extraComm, "extra-comm", "", "also count CPU time of processes with this command name (e.g. postgres)")
	fs.StringVar(&o.label, "label", "", "label copied into every result line")
	fs.BoolVar(&o.sm, "sm", false, "stream management (XEP-0198): enable with resume after bind (a refusal is a failed login), answer the server's <r/>, send <a/> every -sm-ack-every stanzas received and <r/> every -sm-ack-every sent")
	fs.IntVar(&o.smAckEvery, "sm-ack-every", 5, "with -sm: stanzas received between unprompted <a/>, and sent between <r/>")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xmppbench [flags] PHASE[,PHASE...]\nphases: register, login, hold, chat, chatmax, muc, pep\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one argument, the phases")
	}
	phases, err := parsePhases(fs.Arg(0))
	if err != nil {
		return err
	}
	if o.tlsGroups, err = parseTLSGroups(*tlsGroups); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	if _, err := raiseNoFile(uint64(o.n) + 1024); err != nil {
		fmt.Fprintln(stderr, "xmppbench: warning:", err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := newBench(o, stdout, stderr)
	return b.run(ctx, phases)
}

var knownPhases = map[string]bool{"register": true, "login": true, "hold": true, "chat": true, "chatmax": true, "muc": true, "pep": true}

// parsePhases splits the phase list, adding login before the first phase
// that needs connections.
func parsePhases(s string) ([]string, error) {
	var out []string
	logged := false
	for p := range strings.SplitSeq(s, ",") {
		if !knownPhases[p] {
			return nil, fmt.Errorf("unknown phase %q", p)
		}
		switch p {
		case "login":
			logged = true
		case "hold", "chat", "chatmax", "muc", "pep":
			if !logged {
				out = append(out, "login")
				logged = true
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func (o *options) check() error {
	if _, ok := scramMechs[o.mech]; !ok {
		return fmt.Errorf("-mech %q: want SCRAM-SHA-1 or SCRAM-SHA-256", o.mech)
	}
	if !strings.Contains(o.userPattern, "%d") {
		return fmt.Errorf("-user %q has no %%d", o.userPattern)
	}
	if o.n < 2 || o.n > 100000 {
		return fmt.Errorf("-n %d: want 2 to 100000", o.n)
	}
	if o.concurrency < 1 || o.senders < 1 || o.rate <= 0 || o.mucRate <= 0 || o.pepRate <= 0 || o.maxStart <= 0 {
		return fmt.Errorf("-concurrency, -senders and the rates must be positive")
	}
	if o.smAckEvery < 1 {
		return fmt.Errorf("-sm-ack-every %d: want 1 or more", o.smAckEvery)
	}
	if o.mucService == "" {
		o.mucService = "conference." + o.domain
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if err := checkLoopback("-addr "+o.addr, host); err != nil {
		return err
	}
	if (o.addr2 == "") != (o.domain2 == "") {
		return fmt.Errorf("-addr2 and -domain2 go together")
	}
	if o.addr2 != "" {
		if o.transport != "tcp" {
			return fmt.Errorf("-addr2: two servers over tcp only")
		}
		h2, _, err := net.SplitHostPort(o.addr2)
		if err != nil {
			return fmt.Errorf("-addr2: %w", err)
		}
		if err := checkLoopback("-addr2 "+o.addr2, h2); err != nil {
			return err
		}
	}
	switch o.transport {
	case "tcp":
	case "websocket":
		if o.wsURL == "" {
			o.wsURL = "wss://" + o.addr + "/xmpp-websocket"
		}
		u, err := checkWSURL(o.wsURL)
		if err != nil {
			return err
		}
		switch o.wsOrigin {
		case "":
			scheme := "https"
			if u.Scheme == "ws" {
				scheme = "http"
			}
			o.wsOrigin = scheme + "://" + u.Host
		case "none":
			o.wsOrigin = ""
		}
		o.starttls = false // not on a WebSocket: TLS is the wss:// URL's
		o.ws = newWSTransport(o)
	default:
		return fmt.Errorf("-transport %q: want tcp or websocket", o.transport)
	}
	return nil
}

// checkLoopback refuses a host that is not on this machine.
func checkLoopback(what, host string) error {
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s: %s is not a loopback address; xmppbench only loads servers on this machine", what, ip)
		}
	}
	return nil
}
