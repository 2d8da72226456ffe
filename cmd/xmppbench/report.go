package main

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Common is in every result line: what the phase cost the machine. CPU
// figures are seconds of user+system time during the phase; cores is that
// divided by the wall time. The generator's own CPU shows whether it, and
// not the server, was the limit.
type Common struct {
	Phase       string   `json:"phase"`
	Label       string   `json:"label,omitempty"`
	Transport   string   `json:"transport,omitempty"` // "websocket" with -transport websocket; absent over TCP
	N           int      `json:"n"`
	WallS       float64  `json:"wall_s"`
	GenCPUS     float64  `json:"gen_cpu_s"`
	GenCores    float64  `json:"gen_cores"`
	ServerCPUS  *float64 `json:"server_cpu_s,omitempty"`
	ServerCores *float64 `json:"server_cores,omitempty"`
	ExtraCPUS   *float64 `json:"extra_cpu_s,omitempty"` // processes named by -extra-comm (PostgreSQL)
	// MachineCores is the whole machine's busy CPU during the phase, and
	// OtherCores what neither the generator, the server nor the extra
	// processes used: other work on the machine, which makes a figure
	// suspect when it is more than a few hundredths. Both come from
	// /proc/stat, which a kernel without IRQ_TIME_ACCOUNTING counts by
	// sampling at the tick: with both CPUs waking thousands of times a
	// second OtherCores then shows tenths of a core that no process used.
	// OtherProcsCores is the other processes' own CPU, counted exactly.
	MachineCores    float64        `json:"machine_cores"`
	OtherCores      float64        `json:"other_cores"`
	OtherProcsCores *float64       `json:"other_procs_cores,omitempty"`
	Errors          map[string]int `json:"errors,omitempty"`
	*SMFigures                     // with -sm only
}

// SMFigures are in every line of a run with stream management (-sm): the
// acknowledgement interval and what went each way during the phase.
type SMFigures struct {
	SM       bool  `json:"sm"`
	AckEvery int   `json:"sm_ack_every"`
	AcksRecv int64 `json:"sm_acks_recv"` // <a/> from the server
	AcksSent int64 `json:"sm_acks_sent"` // <a/> to it, asked for or every sm_ack_every stanzas
	ReqsRecv int64 `json:"sm_r_recv"`    // <r/> from the server
	ReqsSent int64 `json:"sm_r_sent"`    // <r/> to it, every sm_ack_every stanzas
	// BadH counts the server's <a/> whose h acknowledged more than the
	// client had sent, or less than an earlier one.
	BadH int64 `json:"sm_bad_h"`
}

// LoginResult is the login phase (and the untimed prime pass).
type LoginResult struct {
	Common
	Mech        string  `json:"mech"`
	StartTLS    bool    `json:"starttls"`
	Concurrency int     `json:"concurrency"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	PerS        float64 `json:"logins_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	Primed      bool    `json:"primed"`         // SCRAM keys were derived before the timed run
	Derived     int64   `json:"pbkdf2_derived"` // PBKDF2 derivations the generator did in this phase
	// TLSGroups counts the logged-in connections by the key exchange their
	// TLS handshake used (its cost is a good part of a login's).
	TLSGroups  map[string]int `json:"tls_groups,omitempty"`
	RSSAfterKB int64          `json:"server_rss_kb,omitempty"`
	// CPU per login: the server's (with -extra-comm's, e.g. PostgreSQL)
	// and the generator's. On a machine the two share, logins/s is bounded
	// by their sum; the server's part is what tells servers apart.
	ServerCPUMsPerLogin *float64 `json:"server_cpu_ms_per_login,omitempty"`
	GenCPUMsPerLogin    float64  `json:"gen_cpu_ms_per_login,omitempty"`
	// SMResumable counts the logins whose <enabled/> allowed resumption
	// (resume='true' and an id); with -sm only.
	SMResumable *int `json:"sm_resumable,omitempty"`
}

// RegisterResult is in-band registration (XEP-0077).
type RegisterResult struct {
	Common
	Concurrency int     `json:"concurrency"`
	Created     int     `json:"created"`
	Existed     int     `json:"existed"`
	Failed      int     `json:"failed"`
	PerS        float64 `json:"accounts_per_s"`
}

// HoldResult is N idle connections.
type HoldResult struct {
	Common
	HoldS        float64 `json:"hold_s"`
	Alive        int     `json:"alive"`
	RSSBeforeKB  int64   `json:"server_rss_before_kb,omitempty"`
	RSSAfterKB   int64   `json:"server_rss_after_kb,omitempty"`
	BytesPerConn int64   `json:"server_bytes_per_conn,omitempty"`
	// The same 10 s into a longer hold: memory of connections that have
	// just gone quiet, before a server's idle-time measures (parking,
	// hibernation, periodic collection) act.
	RSSEarlyKB        int64 `json:"server_rss_10s_kb,omitempty"`
	BytesPerConnEarly int64 `json:"server_bytes_per_conn_10s,omitempty"`
	GenRSSKB          int64 `json:"gen_rss_kb"`
}

// ChatResult is a run of 1:1 messages (and one step of the max search,
// phase "chatmax-step"), or of groupchat (phase "muc").
type ChatResult struct {
	Common
	Mode        string  `json:"mode,omitempty"`
	Rooms       int     `json:"rooms,omitempty"`
	Occupants   int     `json:"occupants,omitempty"`
	Contacts    int     `json:"contacts,omitempty"` // pep: subscribers notified per publish
	SetupS      float64 `json:"setup_s,omitempty"`  // pep: subscriptions and caps before the first publish
	JoinOK      int     `json:"joined,omitempty"`
	JoinFailed  int     `json:"join_failed,omitempty"`
	JoinS       float64 `json:"join_s,omitempty"`
	TargetRate  float64 `json:"target_rate"`
	DurationS   float64 `json:"duration_s"`
	Sent        int64   `json:"sent"`
	Expected    int64   `json:"expected"` // deliveries due: sent, or sent × occupants
	Delivered   int64   `json:"delivered"`
	Bounced     int64   `json:"bounced"` // type='error' answers
	Lost        int64   `json:"lost"`
	PerS        float64 `json:"delivered_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	SendLagP99  float64 `json:"send_lag_p99_ms"` // how late the generator wrote, p99
	DrainS      float64 `json:"drain_s"`
	CPUPer10k   float64 `json:"server_cpu_s_per_10k,omitempty"`
	GenPer10k   float64 `json:"gen_cpu_s_per_10k,omitempty"` // the generator's CPU, per 10k deliveries
	Pass        *bool   `json:"pass,omitempty"`
	Repeated    bool    `json:"repeated,omitempty"` // chatmax: failed with the generator late; run again
	Disconnects int64   `json:"disconnects"`
}

// MaxResult sums up the max search.
type MaxResult struct {
	Common
	P99LimitMs float64 `json:"p99_limit_ms"`
	Steps      int     `json:"steps"`
	MaxRate    float64 `json:"max_rate"` // highest passing rate, 0 if none passed
	P99Ms      float64 `json:"p99_ms"`   // at MaxRate
	FirstFail  float64 `json:"first_fail_rate,omitempty"`
}

// output writes one JSON object per line.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *output) emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err = o.w.Write(append(b, '\n'))
	return err
}

// meter measures a phase's wall time and the CPU time of the generator,
// the server and the extra processes.
type meter struct {
	b                     *bench
	start                 time.Time
	gen, srv, extra, mach float64
	srvErr, extraErr      error
	others                map[string]float64 // CPU of every other process, by PID
	sm                    SMFigures          // the counters at the start, with -sm
}

func (b *bench) meter() *meter {
	m := &meter{b: b, start: time.Now()}
	m.gen, _ = procCPU("self")
	m.mach, _ = machineBusy()
	m.others, _ = procsCPU(b.notOther)
	if b.o.sm {
		m.sm = b.sm.figures()
	}
	if b.o.pid != "" {
		m.srv, m.srvErr = procCPU(b.o.pid)
	}
	if b.o.extraComm != "" {
		m.extra, m.extraErr = commCPU(b.o.extraComm)
	}
	return m
}

// finish fills c with the phase's figures.
func (m *meter) finish(c *Common, phase string, n int) {
	c.Phase, c.Label, c.N = phase, m.b.o.label, n
	if m.b.o.transport == "websocket" {
		c.Transport = "websocket"
	}
	wall := time.Since(m.start).Seconds()
	c.WallS = round3(wall)
	if g, err := procCPU("self"); err == nil {
		c.GenCPUS = round3(g - m.gen)
		c.GenCores = round3((g - m.gen) / wall)
	}
	if m.b.o.pid != "" && m.srvErr == nil {
		if s, err := procCPU(m.b.o.pid); err == nil {
			cpu, cores := round3(s-m.srv), round3((s-m.srv)/wall)
			c.ServerCPUS, c.ServerCores = &cpu, &cores
		}
	}
	if m.b.o.extraComm != "" && m.extraErr == nil {
		if s, err := commCPU(m.b.o.extraComm); err == nil {
			cpu := round3(max(s-m.extra, 0))
			c.ExtraCPUS = &cpu
		}
	}
	if mach, err := machineBusy(); err == nil {
		busy := mach - m.mach
		other := busy - c.GenCPUS
		if c.ServerCPUS != nil {
			other -= *c.ServerCPUS
		}
		if c.ExtraCPUS != nil {
			other -= *c.ExtraCPUS
		}
		c.MachineCores = round3(busy / wall)
		c.OtherCores = round3(max(other, 0) / wall)
	}
	if m.b.o.sm {
		f := m.b.sm.figures()
		f.AckEvery = m.b.o.smAckEvery
		f.AcksRecv -= m.sm.AcksRecv
		f.AcksSent -= m.sm.AcksSent
		f.ReqsRecv -= m.sm.ReqsRecv
		f.ReqsSent -= m.sm.ReqsSent
		f.BadH -= m.sm.BadH
		c.SMFigures = &f
	}
	if m.others != nil {
		if after, err := procsCPU(m.b.notOther); err == nil {
			cores := round3(cpuSince(m.others, after) / wall)
			c.OtherProcsCores = &cores
		}
	}
}

// notOther tells the processes whose CPU a phase reports on its own (the
// generator, the server, the -extra-comm ones) from the other processes.
func (b *bench) notOther(pid, comm string) bool {
	return pid == strconv.Itoa(os.Getpid()) || slices.Contains(strings.Split(b.o.pid, ","), pid) || (b.o.extraComm != "" && comm == b.o.extraComm)
}
