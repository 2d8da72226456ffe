package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// tableServers are the columns of the comparison table, by label, in order;
// labels starting with "xmppd" get ratio columns against the others.
var tableServers = []string{"prosody", "ejabberd", "ejabberd-postgres", "xmppd-postgres", "xmppd-sqlite"}

// row is one figure of the table: which phase line it comes from and how
// to read it.
type row struct {
	title string
	phase string
	key   string
	scale float64 // multiply by this (bytes → KB)
	plain bool    // no ratio: the figure describes the run, not the server
}

var tableRows = []row{
	{"accounts created /s (see method)", "accounts", "accounts_per_s", 1, false},
	{"logins/s", "login", "logins_per_s", 1, false},
	{"login p99 ms", "login", "p99_ms", 1, false},
	{"login server CPU cores", "login", "server_cores", 1, false},
	{"login: server CPU ms per login (PostgreSQL's included)", "login", "server_cpu_ms_per_login", 1, false},
	{"login: generator CPU ms per login", "login", "gen_cpu_ms_per_login", 1, true},
	{"login: other processes' cores (noise)", "login", "other_procs_cores", 1, true},
	{"RSS per idle TLS connection, KB (end of hold)", "hold", "server_bytes_per_conn", 1.0 / 1024, false},
	{"RSS per idle TLS connection, KB, 10 s into the hold", "hold", "server_bytes_per_conn_10s", 1.0 / 1024, false},
	{"server RSS with N idle, MB", "hold", "server_rss_after_kb", 1.0 / 1024, false},
	{"max 1:1 msgs/s, p99 ≤ 100 ms, no loss", "chatmax", "max_rate", 1, false},
	{"1:1 at chat rate: delivered/s", "chat", "delivered_per_s", 1, true},
	{"1:1 at chat rate: p99 ms", "chat", "p99_ms", 1, false},
	{"1:1 at chat rate: p99.9 ms", "chat", "p999_ms", 1, false},
	{"1:1 at chat rate: lost", "chat", "lost", 1, true},
	{"1:1 at chat rate: server CPU-s per 10k msgs", "chat", "server_cpu_s_per_10k", 1, false},
	{"1:1 at chat rate: generator cores", "chat", "gen_cores", 1, true},
	{"1:1 at chat rate: generator CPU-s per 10k msgs", "chat", "gen_cpu_s_per_10k", 1, true},
	{"1:1 at chat rate: other processes' cores (noise)", "chat", "other_procs_cores", 1, true},
	{"max search: other processes' cores (noise)", "chatmax", "other_procs_cores", 1, true},
	{"MUC: deliveries/s", "muc", "delivered_per_s", 1, true},
	{"MUC: p99 ms", "muc", "p99_ms", 1, false},
	{"MUC: lost", "muc", "lost", 1, true},
	{"MUC: server CPU-s per 10k deliveries", "muc", "server_cpu_s_per_10k", 1, false},
	{"PEP: notifications/s", "pep", "delivered_per_s", 1, true},
	{"PEP: p99 ms", "pep", "p99_ms", 1, false},
	{"PEP: lost", "pep", "lost", 1, true},
	{"PEP: server CPU-s per 10k notifications", "pep", "server_cpu_s_per_10k", 1, false},
}

// writeTable reads result lines (JSON objects with "label", "n" and
// "phase") from the files and prints one Markdown table per N: each figure
// per server, and each xmppd's ratio to each peer (xmppd ÷ peer). A server
// whose lines were measured with stream management (xmppbench -sm) is
// marked "(SM)" in the header, with a row giving the acknowledgement
// interval.
func writeTable(w io.Writer, files []string) error {
	// results[n][label][phase] = the line's fields
	results := map[int]map[string]map[string]map[string]any{}
	for _, f := range files {
		if err := readResults(f, results); err != nil {
			return err
		}
	}
	var ns []int
	for n := range results {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		byLabel := results[n]
		var cols, xs, peers []string
		for _, s := range tableServers {
			if byLabel[s] != nil {
				cols = append(cols, s)
				if strings.HasPrefix(s, "xmppd") {
					xs = append(xs, s)
				} else {
					peers = append(peers, s)
				}
			}
		}
		// Stream management is on for a server when its lines say so.
		head := map[string]string{}
		ackEvery := map[string]float64{}
		for _, c := range cols {
			head[c] = c
			for _, line := range byLabel[c] {
				if on, _ := line["sm"].(bool); on {
					head[c] = c + " (SM)"
					ackEvery[c], _ = number(line["sm_ack_every"])
				}
			}
		}
		fmt.Fprintf(w, "\nN = %d\n\n| figure |", n)
		for _, c := range cols {
			fmt.Fprintf(w, " %s |", head[c])
		}
		for _, x := range xs {
			for _, p := range peers {
				fmt.Fprintf(w, " %s ÷ %s |", head[x], head[p])
			}
		}
		fmt.Fprint(w, "\n|---|")
		fmt.Fprint(w, strings.Repeat("---:|", len(cols)+len(xs)*len(peers)))
		fmt.Fprintln(w)
		if len(ackEvery) > 0 {
			fmt.Fprint(w, "| stream management: <a/> and <r/> every … stanzas |")
			for _, c := range cols {
				if v, ok := ackEvery[c]; ok {
					fmt.Fprintf(w, " %g |", v)
				} else {
					fmt.Fprint(w, " off |")
				}
			}
			fmt.Fprint(w, strings.Repeat(" – |", len(xs)*len(peers)))
			fmt.Fprintln(w)
		}
		for _, r := range tableRows {
			vals := map[string]float64{}
			have := map[string]bool{}
			for _, c := range cols {
				line := byLabel[c][r.phase]
				v, ok := number(line[r.key])
				if !ok && r.key == "other_procs_cores" {
					v, ok = number(line["other_cores"]) // lines from before the exact count
				}
				if ok {
					vals[c], have[c] = v*r.scale, true
				}
			}
			if len(have) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s |", r.title)
			for _, c := range cols {
				if have[c] {
					fmt.Fprintf(w, " %s |", formatNum(vals[c]))
				} else {
					fmt.Fprint(w, " n/a |")
				}
			}
			for _, x := range xs {
				for _, p := range peers {
					if !r.plain && have[x] && have[p] && vals[p] != 0 {
						fmt.Fprintf(w, " %s |", formatRatio(vals[x]/vals[p]))
					} else {
						fmt.Fprint(w, " – |")
					}
				}
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}

func readResults(path string, into map[int]map[string]map[string]map[string]any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		label, _ := m["label"].(string)
		phase, _ := m["phase"].(string)
		nf, _ := number(m["n"])
		n := int(nf)
		if phase == "register" {
			phase = "accounts" // in-band registration is the peers' account creation
		}
		if jf, _ := number(m["join_failed"]); jf > 0 {
			continue // the MUC phase did not run (no MUC service)
		}
		if label == "" || phase == "" || n == 0 {
			continue
		}
		if into[n] == nil {
			into[n] = map[string]map[string]map[string]any{}
		}
		if into[n][label] == nil {
			into[n][label] = map[string]map[string]any{}
		}
		into[n][label][phase] = m
	}
	return sc.Err()
}

func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func formatNum(f float64) string {
	switch a := math.Abs(f); {
	case a >= 100:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func formatRatio(f float64) string {
	if f >= 10 {
		return fmt.Sprintf("%.0f×", f)
	}
	return fmt.Sprintf("%.2f×", f)
}
