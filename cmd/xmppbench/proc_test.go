package main

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50,
	// cutime 30, cstime 20 ticks.
	line := []byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 30 20 20 0 4 0 100 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	got, err := parseStatCPU(line, false)
	if err != nil || got != 3.0 {
		t.Errorf("parseStatCPU = %v, %v; want 3 s", got, err)
	}
	got, err = parseStatCPU(line, true)
	if err != nil || got != 3.5 {
		t.Errorf("parseStatCPU with children = %v, %v; want 3.5 s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 zz 5 0 0 0"} {
		if _, err := parseStatCPU([]byte(bad), false); err == nil {
			t.Errorf("parseStatCPU(%q) did not fail", bad)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\txmppd\nVmPeak:\t  900000 kB\nVmHWM:\t   52000 kB\nVmRSS:\t   48128 kB\nThreads:\t7\n")
	if got, err := parseStatusKB(status, "VmRSS"); err != nil || got != 48128*1024 {
		t.Errorf("VmRSS = %v, %v", got, err)
	}
	if got, err := parseStatusKB(status, "VmHWM"); err != nil || got != 52000*1024 {
		t.Errorf("VmHWM = %v, %v", got, err)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Error("missing key did not fail")
	}
	if _, err := parseStatusKB([]byte("VmRSS: 12 MB\n"), "VmRSS"); err == nil {
		t.Error("wrong unit did not fail")
	}
}

func TestProcSelf(t *testing.T) {
	x := 0
	for i := range 20_000_000 { // burn a little CPU
		x += i
	}
	_ = x
	cpu, err := procCPU(strconv.Itoa(os.Getpid()))
	if err != nil || cpu < 0 {
		t.Errorf("procCPU(self) = %v, %v", cpu, err)
	}
	rss, err := procRSS("self")
	if err != nil || rss < 1<<20 {
		t.Errorf("procRSS(self) = %v, %v", rss, err)
	}
}

func TestRaiseNoFile(t *testing.T) {
	n, err := raiseNoFile(256)
	if err != nil || n < 256 {
		t.Errorf("raiseNoFile(256) = %d, %v", n, err)
	}
}

func TestParseProcStat(t *testing.T) {
	stat := []byte("cpu  1000 20 300 5000 40 5 6 7 0 0\ncpu0 500 10 150 2500 20 2 3 3 0 0\nintr 1\n")
	got, err := parseProcStat(stat)
	if want := float64(1000+20+300+5+6+7) / 100; err != nil || got != want {
		t.Errorf("parseProcStat = %v, %v; want %v", got, err, want)
	}
	if _, err := parseProcStat([]byte("intr 1\n")); err == nil {
		t.Error("no cpu line did not fail")
	}
	if v, err := machineBusy(); err != nil || v <= 0 {
		t.Errorf("machineBusy = %v, %v", v, err)
	}
}

func TestCPUSince(t *testing.T) {
	before := map[string]float64{"1": 10, "2": 5, "3": 7, "4": 2}
	after := map[string]float64{"1": 10.5, "2": 5, "4": 1.5, "9": 0.25}
	// 1 grew by 0.5, 2 not at all, 3 exited (its time is its parent's),
	// 4 went down (a reused PID: counted as nothing), 9 started: all of it.
	if got, want := cpuSince(before, after), 0.75; got != want {
		t.Errorf("cpuSince = %v, want %v", got, want)
	}
}

// TestProcsCPU runs a busy child and finds its CPU among the others, and
// not once skip names it.
func TestProcsCPU(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Skip("no /bin/sh:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	child := strconv.Itoa(cmd.Process.Pid)
	none := func(pid, comm string) bool { return false }
	before, err := procsCPU(none)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := procsCPU(none)
		if err != nil {
			t.Fatal(err)
		}
		if after[child]-before[child] >= 0.05 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy child %s: %v s of CPU after 10 s", child, after[child]-before[child])
		}
		time.Sleep(20 * time.Millisecond)
	}
	skipped, err := procsCPU(func(pid, comm string) bool { return pid == child })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := skipped[child]; ok {
		t.Errorf("skipped process %s still counted", child)
	}
	if len(skipped) == 0 {
		t.Error("no other process found")
	}
}
