// Command chaos runs the chaos scenarios of package chaos and prints a table
// of lost, duplicated and dead-lettered tasks. It exits 1 when a guarantee
// was broken, 2 on bad flags. See docs/chaos.md.
//
//	make build bin/chaos-module && go run ./internal/harness/chaos/cmd/chaos -bin bin -tasks 3000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/taskiq-go/taskiq/internal/harness/chaos"
)

func main() {
	var (
		opts      chaos.Options
		scenarios string
		total     time.Duration
		schedFor  time.Duration
	)
	flag.StringVar(&opts.Bin, "bin", "bin", "directory holding taskiq, taskiq-redis and chaos-module")
	flag.StringVar(&opts.Dir, "dir", "", "run directory (default: a new directory under $TMPDIR, removed when every scenario passed)")
	flag.IntVar(&opts.Tasks, "tasks", 3000, "well-behaved tasks kicked per scenario")
	flag.IntVar(&opts.TaskMS, "task-ms", 100, "mean duration of a well-behaved task in milliseconds")
	flag.IntVar(&opts.Bad, "bad", 10, "tasks of each bad kind (panic, hang, memhog) in the bad-tasks scenario")
	flag.IntVar(&opts.Workers, "workers", 2, "worker child processes")
	flag.IntVar(&opts.MaxAsync, "max-async-tasks", 16, "tasks one worker child runs at once")
	flag.DurationVar(&opts.Lease, "lease", 3*time.Second, "broker visibility lease")
	flag.DurationVar(&opts.KillEvery, "kill-every", 3*time.Second, "pace of the kill scenarios")
	flag.DurationVar(&opts.Deadline, "deadline", 2*time.Minute, "hard bound on one scenario")
	flag.DurationVar(&total, "total-deadline", 0, "hard bound on the whole run (0: none beyond the per-scenario deadlines)")
	flag.Uint64Var(&opts.Seed, "seed", 1, "seed of payloads, durations and kill targets")
	flag.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default all): "+names())
	flag.DurationVar(&schedFor, "scheduler-duration", 20*time.Second, "scheduler-replicas: how long replicas are killed and restarted")
	flag.Parse()

	var run []chaos.Scenario
	// The scheduler runs: false = scheduler-replicas, true = scheduler-lease.
	var schedRuns []bool
	if scenarios == "" {
		run = chaos.Scenarios
		schedRuns = []bool{false, true}
	} else {
		for _, n := range strings.Split(scenarios, ",") {
			switch strings.TrimSpace(n) {
			case chaos.SchedulerScenario:
				schedRuns = append(schedRuns, false)
				continue
			case chaos.SchedulerLeaseScenario:
				schedRuns = append(schedRuns, true)
				continue
			}
			sc, ok := find(strings.TrimSpace(n))
			if !ok {
				fmt.Fprintf(os.Stderr, "chaos: unknown scenario %q; pick from %s\n", n, names())
				os.Exit(2)
			}
			run = append(run, sc)
		}
	}
	keep := opts.Dir != ""
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "taskiq-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		opts.Dir = d
	}
	opts.Log = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, total)
		defer cancel()
	}
	start := time.Now()
	var reps []chaos.Report
	if len(run) > 0 {
		reps = chaos.Run(ctx, opts, run)
	}
	schedOK := true
	var schedReps []chaos.SchedulerReport
	for _, lease := range schedRuns {
		name := chaos.SchedulerScenario
		if lease {
			name = chaos.SchedulerLeaseScenario
		}
		r := chaos.RunScheduler(ctx, chaos.SchedulerOptions{Bin: opts.Bin, Dir: opts.Dir, Duration: schedFor,
			KillEvery: 1500 * time.Millisecond, Seed: opts.Seed, Lease: lease, Log: func(format string, args ...any) {
				fmt.Printf("%s [%s] %s\n", time.Now().Format("15:04:05"), name, fmt.Sprintf(format, args...))
			}})
		schedReps = append(schedReps, r)
		schedOK = schedOK && len(r.Violations()) == 0
	}
	ran := len(reps) + len(schedReps)
	fmt.Printf("\nchaos: %d scenario(s) in %.1fs, run directory %s\n\n", ran, time.Since(start).Seconds(), opts.Dir)
	if len(reps) > 0 {
		fmt.Print(chaos.FormatTable(reps))
	}
	for _, r := range schedReps {
		fmt.Print("\n" + chaos.FormatScheduler(r))
	}
	if b, err := json.MarshalIndent(reps, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(opts.Dir, "report.json"), b, 0o644)
	}
	if len(reps) < len(run) {
		fmt.Printf("\nFAIL: only %d of %d scenarios ran (interrupted or past -total-deadline)\n", len(reps), len(run))
		os.Exit(1)
	}
	if !schedOK {
		fmt.Printf("\nFAIL: a scheduler run broke a guarantee; its logs are in %s\n", opts.Dir)
		os.Exit(1)
	}
	if len(run) > 0 && !chaos.Passed(reps) {
		fmt.Printf("\nFAIL: a guarantee was broken; logs and report.json are in %s\n", opts.Dir)
		os.Exit(1)
	}
	fmt.Println("\nPASS")
	if !keep {
		_ = os.RemoveAll(opts.Dir)
	}
}

func names() string {
	var n []string
	for _, s := range chaos.Scenarios {
		n = append(n, s.Name)
	}
	return strings.Join(append(n, chaos.SchedulerScenario, chaos.SchedulerLeaseScenario), ", ")
}

func find(name string) (chaos.Scenario, bool) {
	for _, s := range chaos.Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return chaos.Scenario{}, false
}
