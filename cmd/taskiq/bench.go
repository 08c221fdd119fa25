package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskiq-go/taskiq/internal/harness/bench"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

// benchFlags are the flags of `taskiq bench`, kept apart from cobra so the
// parsing can be tested.
type benchFlags struct {
	opts       bench.Options
	work       string
	asJSON     bool
	cpuProfile string
	memProfile string
	// changed reports whether a flag was set on the command line.
	changed func(name string) bool
}

func newBenchCmd(g *globals) *cobra.Command { return benchCommand(g, &benchFlags{}) }

// benchCommand binds the command's flags to f.
func benchCommand(g *globals, f *benchFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency, CPU and memory through the configured plugins",
		Long: `Load taskiq.hcl (plugins run as child processes, as in production), run a
worker in this process, kick a benchmark task and report:

  kicks/s, tasks/s end to end (first kick → last task done),
  latency kick → task start and, with --results, kick → result read by a waiter,
  task done → result read and result saved (post_save) → result read
  (p50/p95/p99), CPU seconds and peak RSS of this process and of each plugin.

Closed loop by default: --concurrency goroutines kick --tasks tasks as fast as
they can. With --rate R --duration D it kicks open loop at R tasks per second
for D, which is how latency at a given load is measured. --kick-only runs no
worker, to measure kicking alone. --module PATH runs the task in a task-module
process under the worker, as ` + "`taskiq worker PATH`" + ` does, instead of in this
process (build the benchmark module with
go build -o bin/taskiq-bench-module ./internal/harness/bench/module).

--idle kicks nothing: it starts the plugins and the worker, waits --duration
(default 5s) and reports each plugin process's start time (launch →
configured: handshake, Info, Configure), the time core.Load took, and the
resident memory (VmRSS) of this process, after a GC, and of each plugin.
The idle worker still takes whatever arrives on its queue: point it at a
queue nobody else kicks to.`,
		Example: `  taskiq bench --config taskiq.hcl --tasks 100000 --concurrency 64
  taskiq bench --rate 1000 --duration 10s --results
  taskiq bench --work sleep:5ms --max-async-tasks 1000 --json
  taskiq bench --idle --duration 10s
  taskiq bench --module ./bin/taskiq-bench-module --tasks 50000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.opts.Config, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.IntVar(&f.opts.Tasks, "tasks", 100000, "tasks to kick at most")
	fl.IntVar(&f.opts.Concurrency, "concurrency", 8, "kicking goroutines")
	fl.IntVar(&f.opts.Payload, "payload", 0, "bytes of payload each task carries (a string argument)")
	fl.StringVar(&f.work, "work", "noop", "what a task does: noop, sleep:D (e.g. sleep:1ms) or cpu:D (busy loop)")
	fl.BoolVar(&f.opts.Results, "results", false, "wait for results and report kick → result latency (needs a result_backend)")
	fl.IntVar(&f.opts.WaitEvery, "wait-every", 1, "with --results, wait for the result of every Nth task only")
	fl.Float64Var(&f.opts.Rate, "rate", 0, "open loop: kick this many tasks per second (needs --duration)")
	fl.DurationVar(&f.opts.Duration, "duration", 0, "how long to kick (open loop), or a cap on a closed-loop run; with --idle, how long to wait idle (default 5s)")
	fl.IntVar(&f.opts.MaxAsyncTasks, "max-async-tasks", 0, "tasks the worker runs at once (default: worker.max_async_tasks of taskiq.hcl)")
	fl.BoolVar(&f.opts.KickOnly, "kick-only", false, "run no worker: measure kicking alone (messages stay in the broker)")
	fl.StringVar(&f.opts.Module, "module", "", "run the benchmark task in this task-module binary (go build -o bin/taskiq-bench-module ./internal/harness/bench/module), as `taskiq worker` runs modules")
	fl.StringVar(&f.opts.Observe, "observe", "", "record in memory, to measure the cost: metrics (Prometheus), tracing (spans, every one sampled, through the batching processor, and OpenTelemetry metrics) or all (--observe alone)")
	fl.Lookup("observe").NoOptDefVal = "all"
	fl.BoolVar(&f.opts.Idle, "idle", false, "kick nothing: report plugin start times and the idle RSS of this process and each plugin after --duration")
	fl.DurationVar(&f.opts.Timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the host) to this file")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a heap profile of this process (the host) to this file, taken after a GC when the last kick returns (with --results: the most waiters pending; with --idle: after the idle wait)")
	f.changed = fl.Changed
	return cmd
}

// kickFlags shape the kicking and make no sense with --idle.
var kickFlags = []string{"tasks", "concurrency", "payload", "work", "results", "wait-every", "rate", "kick-only", "module"}

// finish checks and completes the options after flag parsing.
func (f *benchFlags) finish() error {
	if f.opts.Idle {
		for _, name := range kickFlags {
			if f.changed != nil && f.changed(name) {
				return fmt.Errorf("--idle kicks nothing: drop --%s", name)
			}
		}
		if f.opts.Duration < 0 {
			return fmt.Errorf("--duration must be ≥ 0, got %v", f.opts.Duration)
		}
	}
	w, err := bench.ParseWork(f.work)
	if err != nil {
		return fmt.Errorf("--work: %w", err)
	}
	f.opts.Work = w
	switch {
	case f.opts.Tasks <= 0:
		return fmt.Errorf("--tasks must be > 0, got %d", f.opts.Tasks)
	case f.opts.Concurrency <= 0:
		return fmt.Errorf("--concurrency must be > 0, got %d", f.opts.Concurrency)
	case f.opts.Payload < 0:
		return fmt.Errorf("--payload must be ≥ 0 bytes, got %d", f.opts.Payload)
	case f.opts.Rate < 0:
		return fmt.Errorf("--rate must be > 0 tasks per second, got %v", f.opts.Rate)
	case f.opts.Rate > 0 && f.opts.Duration <= 0:
		return fmt.Errorf("--rate needs --duration, for example --rate %v --duration 10s", f.opts.Rate)
	case f.opts.WaitEvery <= 0:
		return fmt.Errorf("--wait-every must be ≥ 1, got %d", f.opts.WaitEvery)
	case f.opts.Results && f.opts.KickOnly:
		return fmt.Errorf("--results needs a worker; drop --kick-only")
	case f.opts.Module != "" && f.opts.KickOnly:
		return fmt.Errorf("--module runs the task in a module under the worker; drop --kick-only")
	}
	return nil
}

func runBench(ctx context.Context, g *globals, f *benchFlags) error {
	if err := f.finish(); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	f.opts.Logger = g.logger()
	if isTerminal(g.stderr) && !f.asJSON && !f.opts.Idle {
		f.opts.Progress = progressBar(g.stderr)
	}
	if f.cpuProfile != "" {
		out, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if f.memProfile != "" {
		out, err := os.Create(f.memProfile)
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		defer out.Close()
		f.opts.HeapProfile = out
	}
	rep, err := bench.Run(ctx, f.opts)
	if f.opts.Progress != nil {
		fmt.Fprint(g.stderr, "\r\033[K")
	}
	if rep != nil {
		if f.asJSON {
			enc := json.NewEncoder(g.stdout)
			if jerr := enc.Encode(rep); jerr != nil {
				return jerr
			}
		} else {
			rep.WriteText(g.stdout)
		}
	}
	return err
}

// isTerminal reports whether w is a character device (a terminal), where a
// progress bar that redraws itself makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func progressBar(w io.Writer) func(bench.Progress) {
	return func(p bench.Progress) {
		const width = 30
		frac := 0.0
		if p.Planned > 0 {
			frac = float64(p.Executed) / float64(p.Planned)
		}
		n := min(width, int(frac*width))
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < n {
				bar[i] = '='
			}
		}
		rate := 0.0
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Executed) / s
		}
		fmt.Fprintf(w, "\r[%s] kicked %d  done %d/%d  %.0f tasks/s  %s\033[K", bar, p.Kicked, p.Executed, p.Planned, rate, p.Elapsed.Truncate(100*time.Millisecond))
	}
}
