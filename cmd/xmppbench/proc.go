package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procCPU returns the user+system CPU seconds a process has used, from
// /proc/PID/stat (fields 14 and 15, counted after the parenthesised command
// name, which may itself hold spaces and parentheses).
func procCPU(pid string) (float64, error) {
	var sum float64
	// -pid may name several servers (two federating ones), comma-separated:
	// their CPU time adds up.
	for p := range strings.SplitSeq(pid, ",") {
		b, err := os.ReadFile(filepath.Join("/proc", p, "stat"))
		if err != nil {
			return 0, err
		}
		s, err := parseStatCPU(b, false)
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// parseStatCPU reads utime+stime from a /proc/PID/stat line, plus, with
// children, cutime+cstime (fields 16 and 17: children that exited and were
// waited for).
func parseStatCPU(b []byte, children bool) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc: stat: no command name")
	}
	// After ") " come field 3 (state) onwards; utime is field 14.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("proc: stat: %d fields after the name", len(f))
	}
	last := 12
	if children {
		last = 14
	}
	var ticks uint64
	for _, s := range f[11 : last+1] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: stat: %w", err)
		}
		ticks += v
	}
	return float64(ticks) / clockTicks, nil
}

// procRSS returns a process's resident set size in bytes, from the VmRSS
// line of /proc/PID/status.
func procRSS(pid string) (int64, error) {
	var sum int64
	for p := range strings.SplitSeq(pid, ",") {
		b, err := os.ReadFile(filepath.Join("/proc", p, "status"))
		if err != nil {
			return 0, err
		}
		n, err := parseStatusKB(b, "VmRSS")
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// parseStatusKB reads a "Key:   1234 kB" line of /proc/PID/status, in bytes.
func parseStatusKB(b []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc: status: malformed %s line %q", key, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: status: %s: %w", key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("proc: status: no %s line", key)
}

// commCPU returns the CPU seconds used by every live process whose command
// name (/proc/PID/comm) is comm, e.g. the PostgreSQL backends serving the
// server under test, with the time of their children that exited (a
// backend that ends is counted in its postmaster's cutime once reaped).
// A process of that name that exits itself between two readings takes its
// time along, so this is a lower bound.
func commCPU(comm string) (float64, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total float64
	for _, d := range dirs {
		pid := d.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		c, err := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", pid, "stat")); err == nil {
			if s, err := parseStatCPU(b, true); err == nil {
				total += s
			}
		}
	}
	return total, nil
}

// procsCPU returns the CPU seconds of every live process but those skip
// rejects, by PID, each with its waited-for children's (a short-lived
// process is thus counted in its parent once reaped). Kernel threads are
// processes here too.
func procsCPU(skip func(pid, comm string) bool) (map[string]float64, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	cpu := make(map[string]float64, len(dirs))
	for _, d := range dirs {
		pid := d.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i || skip(pid, string(b[i+1:j])) {
			continue
		}
		if s, err := parseStatCPU(b, true); err == nil {
			cpu[pid] = s
		}
	}
	return cpu, nil
}

// cpuSince is the CPU the processes in after used since before: the growth
// of each process present in both, and all of a process that started in
// between. A process that exited takes its time along unless its parent
// waited for it.
func cpuSince(before, after map[string]float64) float64 {
	var total float64
	for pid, a := range after {
		b, ok := before[pid]
		if !ok {
			total += a
			continue
		}
		total += max(a-b, 0)
	}
	return total
}

// machineBusy returns the CPU seconds all CPUs have spent busy since boot,
// from the first line of /proc/stat: user, nice, system, irq, softirq and
// steal (guest time is already in user).
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (float64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("proc: stat: no cpu line")
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc: stat: %w", err)
		}
		ticks += v
	}
	return float64(ticks) / clockTicks, nil
}

// raiseNoFile lifts RLIMIT_NOFILE to at least n, raising the hard limit
// too when allowed (root), and returns the soft limit now in force.
func raiseNoFile(n uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= n {
		return lim.Cur, nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Not allowed past the hard limit: take what we may.
		want.Cur, want.Max = lim.Max, lim.Max
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil {
			return lim.Cur, err
		}
		return want.Cur, fmt.Errorf("proc: RLIMIT_NOFILE capped at %d: %w", want.Cur, err)
	}
	return want.Cur, nil
}
