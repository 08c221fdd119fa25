package chaos

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	// start is the start time in clock ticks since boot: it orders the
	// children of one worker by age.
	start   uint64
	cmdline string
}

// listProcs reads every process this user can see. Processes that exit
// while the scan runs are skipped.
func listProcs() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc (the chaos harness needs Linux procfs): %w", err)
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func readProc(pid int) (proc, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	// The command name is parenthesised and may hold spaces: fields are
	// counted after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is the state (field 3), f[1] the ppid (4), f[19] the start time (22).
	if len(f) < 20 || f[0] == "Z" {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return proc{pid: pid, ppid: ppid, start: start, cmdline: string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))}, true
}

// childrenOf returns the children of ppid whose command line contains
// match ("" matches all), oldest first.
func childrenOf(ps []proc, ppid int, match string) []proc {
	var out []proc
	for _, p := range ps {
		if p.ppid == ppid && strings.Contains(p.cmdline, match) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].start != out[j].start {
			return out[i].start < out[j].start
		}
		return out[i].pid < out[j].pid
	})
	return out
}

// hasEnv reports whether process pid has kv ("KEY=value") in its
// environment: every process of one run inherits the run's TMPDIR, which
// tells them apart from other taskiq processes on the machine.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// runProcs returns the live processes started for a run: those whose
// environment holds the run's TMPDIR.
func runProcs(tmpdirEnv string) []proc {
	ps, _ := listProcs()
	var out []proc
	for _, p := range ps {
		if hasEnv(p.pid, tmpdirEnv) {
			out = append(out, p)
		}
	}
	return out
}

func sigkill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
