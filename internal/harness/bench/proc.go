package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports, and reading it properly
// needs cgo (sysconf), so it is a constant.
const clockTicks = 100

// ProcStat is one process's CPU time and memory as read from /proc.
type ProcStat struct {
	PID int `json:"pid"`
	// Name is the executable's base name (the plugin binary for a plugin).
	Name string `json:"name"`
	// Role is "host" for this process, "plugin" for a child process.
	Role string `json:"role"`
	// Plugin is the taskiq.hcl block a plugin process serves, as
	// "<kind>.<name>" (broker.default); empty for the host.
	Plugin string `json:"plugin,omitempty"`
	// StartMS is how long a plugin process took from launch to configured
	// and ready (binary checks, handshake, Info and Configure).
	StartMS float64 `json:"start_ms,omitempty"`
	// CPUSeconds is user+system CPU time used during the measured phase.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSMB is VmHWM: the largest resident set the process ever had.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// RSSMB is VmRSS: the resident set when read, at the end of the run
	// (idle mode: after the idle wait, the host after a GC that returned
	// free memory to the OS).
	RSSMB float64 `json:"rss_mb"`
	// RSSAnonMB and RSSFileMB split RSSMB (RssAnon, RssFile): memory the
	// process wrote (heap, stacks, data) and the pages of its binary and
	// shared libraries it touched, which processes running the same binary
	// share in the page cache.
	RSSAnonMB float64 `json:"rss_anon_mb"`
	RSSFileMB float64 `json:"rss_file_mb"`
	// cpuTicks is the cumulative utime+stime at the time of reading.
	cpuTicks int64
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (ProcStat, int, error) {
	st := ProcStat{PID: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, 0, err
	}
	// The command name is in parentheses and may itself contain spaces or
	// parentheses, so the fields are split after the last ')'.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return st, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is state (field 3 of stat); ppid is field 4, utime 14, stime 15.
	if len(fields) < 13 {
		return st, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	st.cpuTicks = utime + stime
	st.CPUSeconds = float64(st.cpuTicks) / clockTicks
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		st.Name = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	} else if start := strings.IndexByte(s, '('); start >= 0 {
		st.Name = s[start+1 : end]
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		st.PeakRSSMB, st.RSSMB = statusMB(status, "VmHWM:"), statusMB(status, "VmRSS:")
		st.RSSAnonMB, st.RSSFileMB = statusMB(status, "RssAnon:"), statusMB(status, "RssFile:")
	}
	return st, ppid, nil
}

// statusMB reads a "kB" field of /proc/<pid>/status (VmRSS:, VmHWM:) in MB;
// 0 when it is absent.
func statusMB(status []byte, field string) float64 {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// descendants returns the pids of every live process below root, found by
// walking the ppid links of all processes in /proc.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		_, ppid, err := readProc(pid)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// snapshot reads this process and its descendants.
func snapshot() map[int]ProcStat {
	self := os.Getpid()
	out := map[int]ProcStat{}
	if st, _, err := readProc(self); err == nil {
		st.Role = "host"
		out[self] = st
	}
	for _, pid := range descendants(self) {
		if st, _, err := readProc(pid); err == nil {
			st.Role = "plugin"
			out[pid] = st
		}
	}
	return out
}

// diffSnapshots turns two snapshots into per-process usage during the
// interval: CPU is the difference, peak RSS the later reading. A process
// started after the first snapshot is counted from zero.
func diffSnapshots(before, after map[int]ProcStat) []ProcStat {
	var out []ProcStat
	for pid, a := range after {
		if b, ok := before[pid]; ok {
			a.cpuTicks -= b.cpuTicks
		}
		a.CPUSeconds = float64(a.cpuTicks) / clockTicks
		out = append(out, a)
	}
	sortProcs(out)
	return out
}

func sortProcs(ps []ProcStat) {
	// host first, then plugins by name and pid, for a stable report.
	slices.SortFunc(ps, func(a, b ProcStat) int {
		if (a.Role == "host") != (b.Role == "host") {
			if a.Role == "host" {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.PID - b.PID
	})
}

// cpuPressure returns the "some avg10" CPU pressure stall figure of
// /proc/pressure/cpu: the share of the last 10 s in which at least one
// runnable task waited for a CPU. Read before a run, it says whether other
// work was competing for the machine; -1 when the kernel does not expose it.
func cpuPressure() float64 {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "some ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(f, "avg10="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err == nil {
					return x
				}
			}
		}
	}
	return -1
}
