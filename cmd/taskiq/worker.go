package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskiq-go/taskiq/internal/execfile"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func init() { subcommands = append(subcommands, newWorkerCmd) }

// Environment of a child worker process, set by the supervisor.
const (
	// envWorkerChild holds the child's worker number; set, the process is a
	// child and runs one worker instead of supervising.
	envWorkerChild = "TASKIQ_WORKER_CHILD"
	// envWorkerModules holds the task-module paths as a JSON array, resolved
	// once by the supervisor so every child loads the same modules.
	envWorkerModules = "TASKIQ_WORKER_MODULES"
	// envWorkerStatusFD is the file descriptor a child writes status lines
	// to (statusReady, statusUnready).
	envWorkerStatusFD = "TASKIQ_WORKER_STATUS_FD"
)

// Status lines of a child: "ready" once its delivery stream is open (again),
// "unready <reason>" once its broker has been failing for
// core.DefaultUnreadyAfter.
const (
	statusReady   = "ready"
	statusUnready = "unready"
)

// exitStartup is a child's exit status when it cannot start (bad config,
// missing module, duplicate task names): restarting it would fail the same
// way, so the supervisor stops instead (sysexits' EX_CONFIG).
const exitStartup = 78

// defaultTasksPattern is the --tasks-pattern default: task-module binaries
// are named "<something>-tasks".
const defaultTasksPattern = "**/*-tasks"

// pluginShutdownGrace is how long after the drain a child may take to stop
// its plugins before the supervisor kills it.
const pluginShutdownGrace = 10 * time.Second

type workerFlags struct {
	config           string
	fsDiscover       bool
	tasksPattern     string
	workers          int
	maxAsyncTasks    int
	maxPrefetch      int
	ackType          string
	shutdownTimeout  time.Duration
	waitTasksTimeout time.Duration
	maxFails         int
	maxTasksPerChild int
	logLevel         string
	logFormat        string
	healthAddr       string
	metricsAddr      string
	broker           string
	queues           []string

	fs *pflag.FlagSet
}

func newWorkerCmd(g *globals) *cobra.Command {
	f := &workerFlags{}
	cmd := &cobra.Command{
		Use:   "worker [flags] [MODULE...]",
		Short: "Run workers that execute the tasks of task-module binaries",
		Long: `Run workers: a supervisor starts --workers child processes, each of which
loads taskiq.hcl (brokers, result backend, middlewares), starts the task-module
binaries given as arguments (or found with --fs-discover) and runs their tasks.

A child that dies is restarted with backoff and its exit reason is logged.
SIGTERM or SIGINT stops fetching, drains running tasks and exits 0; a second
signal kills the children at once. SIGHUP restarts the children one at a time.

Flags override the worker block of taskiq.hcl. -fsd is accepted for
--fs-discover, as in taskiq.`,
		Example: `  taskiq worker --config taskiq.hcl ./bin/billing-tasks ./bin/email-tasks
  taskiq worker -fsd --tasks-pattern 'bin/*-tasks' --workers 4`,
		// Flags are parsed by RunE, so that taskiq's -fsd can be accepted.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := args
			rest, err := f.parse(cmd, args)
			if err != nil {
				return err
			}
			if f.help() {
				return cmd.Help()
			}
			if os.Getenv(envWorkerChild) != "" {
				os.Exit(runWorkerChild(f, g.stderr))
			}
			return runSupervisor(cmd.Context(), f, raw, rest, g)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "taskiq.hcl", "path to taskiq.hcl")
	fl.BoolVar(&f.fsDiscover, "fs-discover", false, "find task-module binaries under the current directory by --tasks-pattern (-fsd)")
	fl.StringVar(&f.tasksPattern, "tasks-pattern", defaultTasksPattern, "glob of task-module binaries for --fs-discover, relative to the current directory; ** matches any number of directories")
	fl.IntVarP(&f.workers, "workers", "w", config.DefaultWorkers, "worker child processes (worker.workers)")
	fl.IntVar(&f.maxAsyncTasks, "max-async-tasks", config.DefaultMaxAsyncTasks, "tasks one worker runs at once (worker.max_async_tasks)")
	fl.IntVar(&f.maxPrefetch, "max-prefetch", 0, "deliveries one worker holds: waiting, running and finishing; 0 = 2 x max-async-tasks (worker.max_prefetch)")
	fl.StringVar(&f.ackType, "ack-type", config.DefaultAckType, "when_received, when_executed, when_saved or manual (worker.ack_type)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", config.DefaultShutdownTimeout, "bound on a graceful shutdown; children still running "+pluginShutdownGrace.String()+" after it are killed (worker.shutdown_timeout)")
	fl.DurationVar(&f.waitTasksTimeout, "wait-tasks-timeout", 0, "bound on draining running tasks at shutdown; 0 = shutdown-timeout (worker.wait_tasks_timeout)")
	fl.IntVar(&f.maxFails, "max-fails", -1, "give up (exit 1) after this many child failures; -1 or 0 = never")
	fl.IntVar(&f.maxTasksPerChild, "max-tasks-per-child", 0, "replace a child after it ran about this many tasks (it drains and exits); 0 = never")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.healthAddr, "health-addr", "", "serve /livez and /readyz on this host:port (e.g. 127.0.0.1:8080)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics of every worker on this host:port; the same as --health-addr shares its server (telemetry.metrics_addr)")
	fl.StringVar(&f.broker, "broker", "", "broker to consume from; default: client.default_broker")
	fl.StringSliceVar(&f.queues, "queues", nil, "queues to consume, comma separated (worker.queues)")
	fl.BoolP("help", "h", false, "help for worker")
	f.fs = fl
	return cmd
}

// parse parses the worker's flags and returns the positional arguments.
func (f *workerFlags) parse(cmd *cobra.Command, args []string) ([]string, error) {
	expanded := make([]string, 0, len(args))
	for _, a := range args {
		if a == "-fsd" {
			a = "--fs-discover"
		}
		expanded = append(expanded, a)
	}
	if err := f.fs.Parse(expanded); err != nil {
		return nil, fmt.Errorf("%w (see taskiq worker --help)", err)
	}
	switch f.logFormat {
	case "text", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", f.logFormat)
	}
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: use trace, debug, info, warn or error", f.logLevel)
	}
	if f.changed("ack-type") && !config.ValidAckType(f.ackType) {
		return nil, fmt.Errorf("--ack-type %q: use when_received, when_executed, when_saved or manual", f.ackType)
	}
	for name, v := range map[string]int{"workers": f.workers, "max-async-tasks": f.maxAsyncTasks} {
		if f.changed(name) && v < 1 {
			return nil, fmt.Errorf("--%s must be at least 1, got %d", name, v)
		}
	}
	for name, v := range map[string]int{"max-prefetch": f.maxPrefetch, "max-tasks-per-child": f.maxTasksPerChild} {
		if v < 0 {
			return nil, fmt.Errorf("--%s must be 0 or more, got %d", name, v)
		}
	}
	return f.fs.Args(), nil
}

func (f *workerFlags) help() bool {
	h, _ := f.fs.GetBool("help")
	return h
}

func (f *workerFlags) changed(name string) bool { return f.fs.Changed(name) }

func (f *workerFlags) logger(name string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: name, Level: hclog.LevelFromString(f.logLevel), Output: w,
		JSONFormat: f.logFormat == "json",
	})
}

// settings merges the worker block of taskiq.hcl with the flags set on the
// command line.
func (f *workerFlags) settings(w config.Worker) config.Worker {
	if f.changed("workers") {
		w.Workers = f.workers
	}
	if f.changed("max-async-tasks") {
		w.MaxAsyncTasks = f.maxAsyncTasks
	}
	if f.changed("max-prefetch") {
		w.MaxPrefetch = f.maxPrefetch
	}
	if f.changed("ack-type") {
		w.AckType = f.ackType
	}
	if f.changed("shutdown-timeout") {
		w.ShutdownTimeout = f.shutdownTimeout
	}
	if f.changed("wait-tasks-timeout") {
		w.WaitTasksTimeout = f.waitTasksTimeout
	}
	if f.changed("queues") {
		w.Queues = f.queues
	}
	if w.Workers < 1 {
		w.Workers = config.DefaultWorkers
	}
	if w.ShutdownTimeout <= 0 {
		w.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	return w
}

// loadWorkerConfig reads taskiq.hcl without starting plugins, printing its
// diagnostics.
func loadWorkerConfig(path string, stderr io.Writer) (*config.File, error) {
	file, diags := config.Load(path)
	if diags.HasErrors() {
		fmt.Fprintln(stderr, config.FormatDiagnostics(diags))
		return nil, errQuiet
	}
	return file, nil
}

// resolveModules turns the module arguments and --fs-discover into a list
// of absolute paths, checking each one.
func resolveModules(f *workerFlags, args []string) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	add := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if seen[abs] {
			return nil
		}
		if err := execfile.Explain("task module", p, fmt.Sprintf("build it first (go build -o %s ./path/to/your/module) or fix the path", p)); err != nil {
			return err
		}
		seen[abs] = true
		paths = append(paths, abs)
		return nil
	}
	for _, a := range args {
		if err := add(a); err != nil {
			return nil, err
		}
	}
	if f.fsDiscover {
		found, err := discoverModules(".", f.tasksPattern)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			wd, _ := os.Getwd()
			return nil, fmt.Errorf("--fs-discover found no task module matching %q under %s; build one (go build -o bin/billing-tasks ./cmd/billing-tasks) or change --tasks-pattern", f.tasksPattern, wd)
		}
		for _, p := range found {
			if err := add(p); err != nil {
				return nil, err
			}
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("no task modules to run: name task-module binaries (taskiq worker ./bin/billing-tasks) or find them with --fs-discover (-fsd); build one with core.NewModule and core.ServeModule, see docs/worker.md")
	}
	return paths, nil
}

// discoverModules walks root for executable regular files whose path
// relative to root matches pattern. Hidden directories are skipped.
func discoverModules(root, pattern string) ([]string, error) {
	pattern = path.Clean(filepath.ToSlash(pattern))
	if _, err := path.Match(strings.ReplaceAll(pattern, "**", "x"), ""); err != nil {
		return nil, fmt.Errorf("--tasks-pattern %q: %w", pattern, err)
	}
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories are not modules
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || !globMatch(pattern, filepath.ToSlash(rel)) {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return nil
		}
		out = append(out, p)
		return nil
	})
	sort.Strings(out)
	return out, err
}

// globMatch matches a slash-separated path against a pattern in which a
// "**" element matches any number of path elements, including none.
func globMatch(pattern, name string) bool {
	return matchParts(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchParts(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(parts); i++ {
				if matchParts(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}

// runWorkerChild is one worker process: it loads taskiq.hcl and the task
// modules, runs a worker until told to stop, and returns its exit status.
func runWorkerChild(f *workerFlags, stderr io.Writer) int {
	n := os.Getenv(envWorkerChild)
	logger := f.logger("taskiq.worker-"+n, stderr)
	var modules []string
	if err := json.Unmarshal([]byte(os.Getenv(envWorkerModules)), &modules); err != nil {
		logger.Error("this process was started as a worker child without its module list; run taskiq worker instead", envWorkerModules, os.Getenv(envWorkerModules))
		return exitStartup
	}
	status := statusWriter(logger)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	watchStopSignals(ctx, stop, logger)
	go watchSupervisor(ctx, stop, logger)

	file, diags := config.Load(f.config)
	if diags.HasErrors() {
		logger.Error("invalid configuration", "error", (&core.ConfigError{Diagnostics: diags}).Error())
		return exitStartup
	}
	w := f.settings(file.Worker)

	opts := []core.Option{core.WithLogger(logger)}
	if os.Getenv(envWorkerMetrics) != "" {
		reg := childRegistry()
		addr, stopMetrics, err := serveChildMetrics(reg, logger)
		if err != nil {
			logger.Error("cannot serve this worker's metrics", "error", err)
			return exitStartup
		}
		defer stopMetrics()
		opts = append(opts, core.WithMetrics(reg))
		if n == "1" {
			// One child reads the queue gauges, so the broker counts once
			// per interval however many workers run (docs/observability.md).
			opts = append(opts, core.WithQueueStats(nil, 0))
		}
		status(statusMetrics + " " + addr)
	}
	var recycle *taskCounter
	if f.maxTasksPerChild > 0 {
		recycle = &taskCounter{limit: f.maxTasksPerChild, reached: func() {
			logger.Info("ran the tasks of --max-tasks-per-child; draining and exiting so a new worker takes over", "tasks", f.maxTasksPerChild)
			stop()
		}}
		opts = append(opts, core.WithMiddleware(recycle))
	}
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	app, err := core.Load(startCtx, f.config, opts...)
	if err != nil {
		cancelStart()
		logger.Error("cannot start the worker", "error", err.Error())
		return exitStartup
	}
	closeApp := func() {
		cctx, cancel := context.WithTimeout(context.Background(), pluginShutdownGrace)
		defer cancel()
		if err := app.Close(cctx); err != nil {
			logger.Warn("stopping plugins", "error", err)
		}
	}
	err = core.LoadModules(startCtx, app, modules, core.WithModuleWindow(max(w.MaxAsyncTasks, 1)))
	cancelStart()
	if err != nil {
		closeApp()
		logger.Error("cannot load the task modules", "error", err.Error())
		return exitStartup
	}
	names := app.TaskNames()
	sort.Strings(names)
	logger.Info("worker started", "modules", len(modules), "tasks", strings.Join(names, ","))

	wo := app.WorkerDefaults()
	wo.MaxAsyncTasks, wo.MaxPrefetch = w.MaxAsyncTasks, w.MaxPrefetch
	wo.AckType = core.AckType(w.AckType)
	wo.ShutdownTimeout = w.ShutdownTimeout
	if w.WaitTasksTimeout > 0 {
		wo.ShutdownTimeout = w.WaitTasksTimeout
	}
	wo.Queues = nil
	for _, q := range w.Queues {
		wo.Queues = append(wo.Queues, sdk.Queue{Name: q, Weight: 1})
	}
	wo.Broker = f.broker
	wo.Readiness = func(ready bool, reason string) {
		if ready {
			logger.Info("listening for tasks")
			status(statusReady)
			return
		}
		logger.Warn("not ready: the broker has been failing; /readyz reports this worker unavailable", "reason", reason)
		status(statusUnready + " " + reason)
	}
	err = app.RunWorker(ctx, wo)
	closeApp()
	if err != nil {
		logger.Error("worker stopped", "error", err.Error())
		if !errors.Is(err, context.Canceled) {
			return exitStartup
		}
	}
	logger.Info("worker stopped")
	return 0
}

// statusWriter returns a function writing one status line to the
// supervisor, or doing nothing when the child has no status pipe.
func statusWriter(logger hclog.Logger) func(string) {
	fd, err := strconv.Atoi(os.Getenv(envWorkerStatusFD))
	if err != nil {
		return func(string) {}
	}
	// The pipe is this process's alone: the plugin processes it starts must
	// not inherit it, or one that outlives this worker would keep the
	// supervisor's end from ever seeing the pipe close.
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "supervisor-status")
	var mu sync.Mutex
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintln(f, line); err != nil {
			logger.Debug("cannot report status to the supervisor", "error", err)
		}
	}
}

// watchStopSignals stops the worker on the first SIGTERM or SIGINT and exits
// at once on the second. SIGHUP is the supervisor's business and ignored.
func watchStopSignals(ctx context.Context, stop func(), logger hclog.Logger) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		stopping := false
		for {
			select {
			case <-ctx.Done():
				if stopping {
					return
				}
				stopping = true
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue
				}
				if stopping {
					logger.Warn("second signal: exiting without draining", "signal", sig.String())
					os.Exit(1)
				}
				logger.Info("stopping: no new tasks, draining running ones", "signal", sig.String())
				stopping = true
				stop()
			}
		}
	}()
}

// watchSupervisor stops the worker when its supervisor is gone (the child
// was re-parented), so that a killed supervisor leaves no workers behind.
func watchSupervisor(ctx context.Context, stop func(), logger hclog.Logger) {
	start := os.Getppid()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != start {
				logger.Warn("the supervisor is gone; draining and exiting")
				stop()
				return
			}
		}
	}
}

// taskCounter is an in-process middleware counting executed tasks, for
// --max-tasks-per-child.
type taskCounter struct {
	limit   int
	reached func()
	mu      sync.Mutex
	n       int
}

func (c *taskCounter) PostExecute(context.Context, *wire.Message, *wire.Result) error {
	c.mu.Lock()
	c.n++
	hit := c.n == c.limit
	c.mu.Unlock()
	if hit {
		c.reached()
	}
	return nil
}

// Interface guards
var _ sdk.PostExecuter = (*taskCounter)(nil)
