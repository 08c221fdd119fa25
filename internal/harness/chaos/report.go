package chaos

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

// Passed reports whether every scenario kept every guarantee.
func Passed(reps []Report) bool {
	for _, r := range reps {
		if len(r.Violations()) > 0 {
			return false
		}
	}
	return len(reps) > 0
}

// faultSummary counts the injected faults by kind: "5 kill-worker".
func faultSummary(evs []Event) string {
	n := map[EventKind]int{}
	for _, e := range evs {
		n[e.Kind]++
	}
	var parts []string
	for _, k := range faultKinds {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// FormatTable renders one row per scenario.
func FormatTable(reps []Report) string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tkicked\tok\terr\tdead\tlost\texecs\tdups\tdup:killed-running\tdup:other-fault\tdup:kick-retry\tdup:unexplained\twrong\tworker restarts\tsupervisor\ttime\tverdict\t")
	for _, r := range reps {
		s := r.Stats
		sup := "alive"
		if r.SupervisorDied {
			sup = "DIED"
		}
		verdict := "PASS"
		if len(r.Violations()) > 0 {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.1fs\t%s\t\n",
			r.Scenario, s.Kicked, s.OK, s.Err, s.DeadLettered, s.Lost, s.Executions, s.Duplicates,
			s.DupKilledRunning, s.DupDisrupted, s.DupKickRetry, s.DupUnexplained, s.Wrong,
			r.WorkerRestarts, sup, r.Duration.Seconds(), verdict)
	}
	_ = tw.Flush()
	return b.String()
}

// FormatDetail renders one scenario: faults, outcomes per task kind, how
// the worker stopped, and every violation.
func FormatDetail(r Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n== %s: %s (%.1fs)\n", r.Scenario, r.Title, r.Duration.Seconds())
	fmt.Fprintf(&b, "   faults injected: %s\n", faultSummary(r.Events))
	for _, e := range r.Events {
		if e.Kind == RedisDown || e.Kind == RedisOOM {
			fmt.Fprintf(&b, "     %s: %s\n", e.Kind, e.Detail)
		}
	}
	s := r.Stats
	fmt.Fprintf(&b, "   kicked %d (kick retries %d), results ok %d, err %d, dead-lettered %d, lost %d (never ran %d)\n",
		s.Kicked, r.KickRetries, s.OK, s.Err, s.DeadLettered, s.Lost, s.LostNeverRan)
	if r.TimedOut {
		fmt.Fprintf(&b, "   (the deadline passed: \"lost\" includes tasks still queued)\n")
	}
	fmt.Fprintf(&b, "   executions %d, duplicates %d = killed while running %d + other injected fault %d + kick retry %d + unexplained %d\n",
		s.Executions, s.Duplicates, s.DupKilledRunning, s.DupDisrupted, s.DupKickRetry, s.DupUnexplained)
	fmt.Fprintf(&b, "   duplicates of tasks finished before their broker plugin was killed: %d (expected 0)\n", s.DupFinishedBeforeBrokerKill)
	if len(s.DupByFault) > 0 {
		var parts []string
		for _, k := range faultKinds {
			if s.DupByFault[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, s.DupByFault[k]))
			}
		}
		fmt.Fprintf(&b, "     explained duplicates by fault: %s\n", strings.Join(parts, ", "))
	}
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	if len(kinds) > 1 {
		for _, k := range kinds {
			ks := s.ByKind[TaskKind(k)]
			var types []string
			for t, n := range ks.ErrTypes {
				types = append(types, fmt.Sprintf("%s×%d", t, n))
			}
			sort.Strings(types)
			fmt.Fprintf(&b, "     %-7s kicked %5d ok %5d err %5d dead %3d lost %3d execs %5d  error types: %s\n",
				k, ks.Kicked, ks.OK, ks.Err, ks.DeadLettered, ks.Lost, ks.Executions, strings.Join(types, " "))
		}
	}
	fmt.Fprintf(&b, "   worker children seen %d (restarts %d); supervisor on SIGTERM: %s; orphans %d\n",
		len(r.WorkerPIDs), r.WorkerRestarts, r.StopResult, len(r.Orphans))
	if v := r.Violations(); len(v) > 0 {
		fmt.Fprintf(&b, "   FAIL:\n")
		for _, x := range v {
			fmt.Fprintf(&b, "     - %s\n", x)
		}
	} else {
		fmt.Fprintf(&b, "   PASS\n")
	}
	return b.String()
}
