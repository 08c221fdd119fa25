// Package bench measures taskiq-go end to end. It loads taskiq.hcl (every
// plugin as a child process, as in production), runs a worker in this
// process, kicks a benchmark task and reports kick and task throughput,
// latency percentiles, and the CPU time and peak memory of the host and of
// every plugin process. Its idle mode kicks nothing and reports how long
// each plugin took to start and the resident memory of an idle worker host
// and its plugins. `taskiq bench` is its command line; the comparison with
// other queues in bench/ runs that command.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TaskName is the name the benchmark task is registered under.
const TaskName = "taskiq_bench:task"

// Work is what the benchmark task does once started.
type Work struct {
	// Kind is "noop", "sleep" or "cpu".
	Kind string
	// D is how long a sleep or cpu task takes.
	D time.Duration
}

// ParseWork reads "noop", "sleep:D" or "cpu:D" (D a Go duration, "2ms").
func ParseWork(s string) (Work, error) {
	kind, d, hasD := strings.Cut(s, ":")
	switch kind {
	case "noop":
		if hasD {
			return Work{}, fmt.Errorf("work %q: noop takes no duration (use noop, sleep:D or cpu:D)", s)
		}
		return Work{Kind: "noop"}, nil
	case "sleep", "cpu":
		if !hasD {
			return Work{}, fmt.Errorf("work %q: %s needs a duration, for example %s:1ms", s, kind, kind)
		}
		dur, err := time.ParseDuration(d)
		if err != nil || dur < 0 {
			return Work{}, fmt.Errorf("work %q: bad duration %q (a Go duration such as 500us or 2ms)", s, d)
		}
		return Work{Kind: kind, D: dur}, nil
	}
	return Work{}, fmt.Errorf("work %q: unknown kind (use noop, sleep:D or cpu:D)", s)
}

func (w Work) String() string {
	if w.Kind == "" || w.Kind == "noop" {
		return "noop"
	}
	return w.Kind + ":" + w.D.String()
}

// do performs the work; cpu spins on this goroutine, sleep yields it.
func (w Work) do(ctx context.Context) {
	switch w.Kind {
	case "sleep":
		t := time.NewTimer(w.D)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	case "cpu":
		end := time.Now().Add(w.D)
		x := uint64(1)
		for time.Now().Before(end) {
			for range 64 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		sink.Store(x)
	}
}

// sink keeps the cpu loop from being optimised away.
var sink atomic.Uint64

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	// Config is the path of taskiq.hcl (default "taskiq.hcl").
	Config string
	// Tasks caps the number of tasks kicked (default 100000).
	Tasks int
	// Concurrency is the number of kicking goroutines (default 8).
	Concurrency int
	// Payload is the size in bytes of a string argument every task carries.
	Payload int
	// Work is what each task does (default noop).
	Work Work
	// Results makes waiters read results: every WaitEvery-th task gets a
	// goroutine blocked in WaitResult, and the report has the latency from
	// kick to result visible.
	Results bool
	// WaitEvery picks which tasks get a waiter with Results (default 1: all).
	WaitEvery int
	// Rate > 0 kicks open-loop at Rate tasks per second for Duration. With
	// Rate 0, Duration (if set) caps a closed-loop run. With Idle it is the
	// idle wait (default 5s).
	Rate     float64
	Duration time.Duration
	// Idle kicks nothing: the worker starts, waits Duration, and the report
	// has each plugin's start time and the resident memory of every process.
	// The worker still takes what arrives on its queue: use a queue nobody
	// else kicks to.
	Idle bool
	// MaxAsyncTasks overrides the worker block's max_async_tasks.
	MaxAsyncTasks int
	// KickOnly measures kicking alone: no worker runs, messages stay queued.
	KickOnly bool
	// Module, when set, is the path of a task-module binary serving the
	// benchmark task (RegisterModuleTask; ./internal/harness/bench/module):
	// the host loads it as `taskiq worker` loads modules and the task runs
	// in the module process. Empty: the task runs in this process.
	Module string
	// Observe turns on, recorded in memory (see observer): "metrics"
	// (Prometheus), "tracing" (spans and OpenTelemetry messaging metrics) or
	// "all"; "" is off.
	Observe string
	// Timeout bounds the whole run, plugin start and stop included (default 10m).
	Timeout time.Duration
	// HeapProfile, when set, receives a heap profile of this process (the
	// host) taken when the last kick returns, after a GC: the moment the
	// most result waiters are pending (idle mode: after the idle wait).
	HeapProfile io.Writer
	// Logger receives the host's and plugins' logs (default: warnings to stderr).
	Logger hclog.Logger
	// Progress, when set, is called about five times a second.
	Progress func(Progress)
}

// Progress is a running count, for a progress bar.
type Progress struct {
	Planned, Kicked, Executed, Results int64
	Elapsed                            time.Duration
}

// Latency is a distribution summary in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Report is the outcome of one run.
type Report struct {
	Config        string `json:"config"`
	Brokers       string `json:"broker"`
	Mode          string `json:"mode"` // closed, open, kick-only or idle
	Planned       int64  `json:"planned"`
	Kicked        int64  `json:"kicked"`
	Executed      int64  `json:"executed"`
	Duplicates    int64  `json:"duplicates"`
	ResultsRead   int64  `json:"results_read"`
	Concurrency   int    `json:"concurrency"`
	MaxAsyncTasks int    `json:"max_async_tasks"`
	PayloadBytes  int    `json:"payload_bytes"`
	Work          string `json:"work"`
	// Module is the task-module binary the task ran in; empty: in the host.
	Module string  `json:"module,omitempty"`
	Rate   float64 `json:"rate,omitempty"`
	// KickSeconds runs from the first kick to the return of the last one.
	KickSeconds float64 `json:"kick_seconds"`
	KicksPerSec float64 `json:"kicks_per_sec"`
	// Seconds runs from the first kick to the last task finishing.
	Seconds     float64 `json:"seconds"`
	TasksPerSec float64 `json:"tasks_per_sec"`
	// ResultSeconds runs from the first kick to the last awaited result.
	ResultSeconds float64 `json:"result_seconds,omitempty"`
	// LoadMS is the time core.Load took: reading taskiq.hcl and starting
	// and configuring every plugin process, one after another.
	LoadMS float64 `json:"load_ms"`
	// WorkerReadyMS (idle mode) runs from starting the worker to its
	// delivery stream being open.
	WorkerReadyMS float64 `json:"worker_ready_ms,omitempty"`
	// IdleSeconds (idle mode) is how long the ready worker waited before
	// memory was read.
	IdleSeconds float64 `json:"idle_seconds,omitempty"`
	// LatencyStart is kick call → task function entered.
	LatencyStart *Latency `json:"latency_start,omitempty"`
	// LatencyResult is kick call → WaitResult returned the result.
	LatencyResult *Latency `json:"latency_result,omitempty"`
	// LatencyVisible is task function returned → WaitResult returned: the
	// result save (batched) plus the notification to the waiter.
	LatencyVisible *Latency `json:"latency_visible,omitempty"`
	// LatencySavedVisible is result saved (the worker's post_save hook ran)
	// → WaitResult returned: the notification path alone, DESIGN.md §9's
	// "visible to a waiter within 1 ms of being saved". 0 when the waiter
	// woke before the worker heard the save succeeded.
	LatencySavedVisible *Latency `json:"latency_saved_visible,omitempty"`
	// Processes is the host (this process) and every plugin process, with
	// CPU used from just before the first kick to the end of the run (idle
	// mode: during the idle wait).
	Processes       []ProcStat `json:"processes"`
	TotalCPUSeconds float64    `json:"total_cpu_seconds"`
	// CPUPerTaskMS is TotalCPUSeconds over the tasks executed (over the
	// tasks kicked with KickOnly), in milliseconds: the cost of one task
	// across the host and every plugin process.
	CPUPerTaskMS float64 `json:"cpu_per_task_ms,omitempty"`
	NumCPU       int     `json:"num_cpu"`
	// CPUPressure is /proc/pressure/cpu "some avg10" just before the first
	// kick: above a few percent, other work was competing for the CPUs and
	// the numbers are not representative of the machine.
	CPUPressure float64 `json:"cpu_pressure_before"`
	GoVersion   string  `json:"go_version"`
	// Spans (with Observe) is the number of spans exported.
	Spans int64 `json:"spans,omitempty"`
}

func (o *Options) defaults() error {
	if o.Config == "" {
		o.Config = "taskiq.hcl"
	}
	if o.Tasks <= 0 {
		o.Tasks = 100000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Work.Kind == "" {
		o.Work.Kind = "noop"
	}
	if o.WaitEvery <= 0 {
		o.WaitEvery = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Payload < 0 {
		return errors.New("--payload must be ≥ 0 bytes")
	}
	if o.Rate < 0 || math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate) {
		return errors.New("--rate must be a positive number of tasks per second")
	}
	if o.Rate > 0 && o.Duration <= 0 {
		return errors.New("--rate needs --duration (for example --rate 1000 --duration 10s)")
	}
	if o.Idle {
		switch {
		case o.Rate > 0, o.KickOnly, o.Results:
			return errors.New("--idle kicks nothing: drop --rate, --kick-only and --results")
		case o.Duration < 0:
			return errors.New("--duration must be ≥ 0")
		case o.Duration == 0:
			o.Duration = DefaultIdle
		}
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "taskiq", Level: hclog.Warn})
	}
	return nil
}

// planned is how many tasks the run kicks at most.
func (o *Options) planned() int64 {
	n := int64(o.Tasks)
	if o.Rate > 0 {
		n = min(n, int64(math.Ceil(o.Rate*o.Duration.Seconds())))
	}
	return max(n, 1)
}

// run is the state of one benchmark run shared by kickers, tasks and waiters.
type run struct {
	opts    Options
	planned int64
	base    time.Time

	seen       []atomic.Uint32 // per task index: executed at least once
	startLat   []int64         // per task index, ns; written by the first execution
	resultLat  []int64         // per task index, ns; -1 = not awaited
	visibleLat []int64
	visibleAt  []int64        // per task index: ns since base when WaitResult returned
	savedAt    []atomic.Int64 // per task index: ns since base when post_save ran; 0 = not yet

	kicked     atomic.Int64
	executed   atomic.Int64
	duplicates atomic.Int64
	results    atomic.Int64
	lastEnd    atomic.Int64 // ns since base of the latest task end
	lastResult atomic.Int64
	// target is the number of executions that ends the run, MaxInt64 until
	// kicking is over.
	target   atomic.Int64
	doneOnce sync.Once
	done     chan struct{}

	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

func (r *run) since() int64 { return int64(time.Since(r.base)) }

func (r *run) fail(err error) {
	r.errOnce.Do(func() { r.err = err; r.cancel() })
}

func (r *run) checkDone() {
	if r.executed.Load() >= r.target.Load() {
		r.doneOnce.Do(func() { close(r.done) })
	}
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// saveClock is a post_save middleware that records when each benchmark
// task's result was saved, for the saved → visible latency.
type saveClock struct{ r *run }

func (c saveClock) PostSave(_ context.Context, msg *wire.Message, _ *wire.Result) error {
	if msg.TaskName != TaskName || len(msg.Args) == 0 {
		return nil
	}
	idx, err := strconv.ParseInt(string(msg.Args[0]), 10, 64)
	if err == nil && idx >= 0 && idx < c.r.planned {
		c.r.savedAt[idx].CompareAndSwap(0, c.r.since())
	}
	return nil
}

// task is the benchmark task: idx identifies the kick, at is its time.
func (r *run) task(ctx context.Context, idx, at int64, _ string) (int64, error) {
	start := r.since()
	r.opts.Work.do(ctx)
	end := r.since()
	r.record(idx, at, start, end)
	return end, nil
}

// record accounts for one execution of task idx kicked at at, which started
// and ended at start and end (all as time since base).
func (r *run) record(idx, at, start, end int64) {
	first := idx >= 0 && idx < r.planned && r.seen[idx].CompareAndSwap(0, 1)
	if !first {
		r.duplicates.Add(1)
		return
	}
	r.startLat[idx] = start - at
	storeMax(&r.lastEnd, end)
	r.executed.Add(1)
	r.checkDone()
}

// waitFunc calls fn with the time the kicked task ended (as time since
// base) once its result is saved. It waits through OnResult, not a
// goroutine in WaitResult each: 100k pending waiters are 100k small
// structs, not 100k goroutine stacks.
type waitFunc func(ctx context.Context, fn func(end int64, err error))

// kickFunc kicks task idx at time at.
type kickFunc func(ctx context.Context, idx, at int64) (waitFunc, error)

// kickLibrary kicks the benchmark task registered in this process.
func kickLibrary(task *core.Task[int64], payload string) kickFunc {
	return func(ctx context.Context, idx, at int64) (waitFunc, error) {
		h, err := task.Kiq(ctx, idx, at, payload)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, fn func(int64, error)) {
			h.OnResult(ctx, func(res *core.Result[int64], err error) {
				if err != nil {
					fn(0, err)
					return
				}
				fn(res.ReturnValue, nil)
			})
		}, nil
	}
}

// Run performs one benchmark run. On a timeout or failure it returns what was
// measured so far together with the error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ctx, cancelAll := context.WithTimeout(ctx, opts.Timeout)
	defer cancelAll()

	r := &run{opts: opts, planned: opts.planned(), done: make(chan struct{})}
	loadOpts := []core.Option{core.WithLogger(opts.Logger)}
	if opts.Results && !opts.Idle {
		loadOpts = append(loadOpts, core.WithMiddleware(saveClock{r}))
	}
	if opts.Module != "" && !opts.Idle {
		loadOpts = append(loadOpts, core.WithMiddleware(moduleClock{r}))
	}
	var obs *observer
	if opts.Observe != "" {
		var err error
		if obs, err = newObserver(opts.Observe); err != nil {
			return nil, err
		}
		loadOpts = append(loadOpts, obs.options()...)
	}
	loadBegin := time.Now()
	app, err := core.Load(ctx, opts.Config, loadOpts...)
	if err != nil {
		return nil, err
	}
	loadTime := time.Since(loadBegin)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = app.Close(cctx)
	}()
	if opts.Idle {
		return runIdle(ctx, opts, app, loadTime)
	}

	r.seen = make([]atomic.Uint32, r.planned)
	r.startLat = make([]int64, r.planned)
	r.target.Store(math.MaxInt64)
	if opts.Results {
		r.resultLat = make([]int64, r.planned)
		r.visibleLat = make([]int64, r.planned)
		r.visibleAt = make([]int64, r.planned)
		r.savedAt = make([]atomic.Int64, r.planned)
		for i := range r.resultLat {
			r.resultLat[i], r.visibleLat[i] = -1, -1
		}
	}
	payload := strings.Repeat("x", opts.Payload)
	wo := workerOptions(app, opts)
	var kickTask kickFunc
	if opts.Module != "" {
		if err := core.LoadModules(ctx, app, []string{opts.Module},
			core.WithModuleWindow(wo.MaxAsyncTasks), core.WithModuleEnv(moduleEnv(opts.Work)...)); err != nil {
			return nil, err
		}
		kickTask = r.kickModule(app, payload)
	} else {
		task, err := core.NewTask[int64](app, TaskName, r.task)
		if err != nil {
			return nil, err
		}
		kickTask = kickLibrary(task, payload)
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	r.cancel = cancelRun

	workerDone := make(chan error, 1)
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	if !opts.KickOnly {
		if err := startWorker(ctx, workerCtx, app, wo, opts, workerDone); err != nil {
			return nil, err
		}
	}

	pressure := cpuPressure()
	before := snapshot()
	r.base = time.Now()
	var waiters sync.WaitGroup
	kick := func(idx int64) bool {
		at := r.since()
		wait, err := kickTask(runCtx, idx, at)
		if err != nil {
			if runCtx.Err() == nil {
				r.fail(fmt.Errorf("kick %d: %w", idx, err))
			}
			return false
		}
		r.kicked.Add(1)
		if opts.Results && !opts.KickOnly && idx%int64(opts.WaitEvery) == 0 {
			waiters.Add(1)
			wait(runCtx, func(end int64, err error) {
				defer waiters.Done()
				if err != nil {
					if runCtx.Err() == nil {
						r.fail(fmt.Errorf("wait for result of task %d: %w", idx, err))
					}
					return
				}
				now := r.since()
				r.resultLat[idx] = now - at
				r.visibleLat[idx] = now - end
				r.visibleAt[idx] = now
				storeMax(&r.lastResult, now)
				r.results.Add(1)
			})
		}
		return true
	}

	stopProgress := r.progress(runCtx)
	kickEnd := r.kickAll(runCtx, kick)
	if opts.HeapProfile != nil {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(opts.HeapProfile, 0); err != nil {
			r.fail(fmt.Errorf("heap profile: %w", err))
		}
	}
	// Kicking is over: the run ends when every kicked task has run once.
	r.target.Store(r.kicked.Load())
	r.checkDone()

	var runErr error
	if opts.KickOnly {
		r.doneOnce.Do(func() { close(r.done) })
	}
	select {
	case <-r.done:
	case err := <-workerDone:
		runErr = fmt.Errorf("worker stopped during the run: %w", err)
		workerDone <- err
	case <-runCtx.Done():
	}
	if runErr == nil {
		// Waiters for tasks that already ran are bounded by the run context.
		waitCh := make(chan struct{})
		go func() { waiters.Wait(); close(waitCh) }()
		select {
		case <-waitCh:
		case <-runCtx.Done():
		}
	}
	after := snapshot()
	stopProgress()
	cancelRun()
	waiters.Wait()
	stopWorker()
	if !opts.KickOnly {
		if err := <-workerDone; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("worker: %w", err)
		}
	}

	rep := r.report(kickEnd, before, after)
	labelPlugins(rep.Processes, app.PluginProcesses())
	rep.LoadMS = msDur(loadTime)
	rep.Config = opts.Config
	rep.Brokers = strings.Join(app.BrokerNames(), ",")
	rep.MaxAsyncTasks = wo.MaxAsyncTasks
	rep.CPUPressure = pressure
	if obs != nil {
		n, err := obs.finish(ctx)
		if err != nil && runErr == nil {
			runErr = fmt.Errorf("observe: %w", err)
		}
		rep.Spans = n
	}
	switch {
	case runErr != nil:
		return rep, runErr
	case r.err != nil:
		return rep, r.err
	case ctx.Err() != nil:
		return rep, fmt.Errorf("run timed out after --timeout %v with %d of %d kicked tasks executed; raise --timeout or lower --tasks", opts.Timeout, rep.Executed, rep.Kicked)
	}
	return rep, nil
}

// kickAll kicks closed-loop (Concurrency goroutines as fast as they can) or
// open-loop (Rate per second, spread over the goroutines), and returns when
// the last kick returned, as time since base.
func (r *run) kickAll(ctx context.Context, kick func(int64) bool) int64 {
	opts := r.opts
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = r.base.Add(opts.Duration)
	}
	var wg sync.WaitGroup
	var lastKick atomic.Int64
	if opts.Rate <= 0 {
		var next atomic.Int64
		for range opts.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= r.planned || (!deadline.IsZero() && time.Now().After(deadline)) {
						return
					}
					if !kick(i) {
						return
					}
					storeMax(&lastKick, r.since())
				}
			}()
		}
		wg.Wait()
		return lastKick.Load()
	}
	// Open loop: a pacer hands out indices on schedule, so a slow kick does
	// not delay the ones after it (as long as a kicking goroutine is free).
	due := make(chan int64, opts.Concurrency*64)
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range due {
				if ctx.Err() != nil || !kick(i) {
					continue
				}
				storeMax(&lastKick, r.since())
			}
		}()
	}
	interval := float64(time.Second) / opts.Rate
	for i := int64(0); i < r.planned && ctx.Err() == nil; i++ {
		at := r.base.Add(time.Duration(float64(i) * interval))
		if !deadline.IsZero() && at.After(deadline) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		due <- i
	}
	close(due)
	wg.Wait()
	return lastKick.Load()
}

// progress calls opts.Progress periodically until the returned stop is called.
func (r *run) progress(ctx context.Context) (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
			r.opts.Progress(Progress{Planned: r.planned, Kicked: r.kicked.Load(), Executed: r.executed.Load(),
				Results: r.results.Load(), Elapsed: time.Since(r.base)})
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func (r *run) report(kickEnd int64, before, after map[int]ProcStat) *Report {
	o := r.opts
	rep := &Report{
		Planned:      r.planned,
		Kicked:       r.kicked.Load(),
		Executed:     r.executed.Load(),
		Duplicates:   r.duplicates.Load(),
		ResultsRead:  r.results.Load(),
		Concurrency:  o.Concurrency,
		PayloadBytes: o.Payload,
		Work:         o.Work.String(),
		Module:       o.Module,
		Rate:         o.Rate,
		NumCPU:       runtime.NumCPU(),
		GoVersion:    runtime.Version(),
		Mode:         "closed",
	}
	switch {
	case o.KickOnly:
		rep.Mode = "kick-only"
	case o.Rate > 0:
		rep.Mode = "open"
	}
	rep.KickSeconds = float64(kickEnd) / 1e9
	if rep.KickSeconds > 0 {
		rep.KicksPerSec = float64(rep.Kicked) / rep.KickSeconds
	}
	if end := r.lastEnd.Load(); end > 0 {
		rep.Seconds = float64(end) / 1e9
		rep.TasksPerSec = float64(rep.Executed) / rep.Seconds
	}
	if end := r.lastResult.Load(); end > 0 {
		rep.ResultSeconds = float64(end) / 1e9
	}
	var start, res, vis, saved []int64
	for i := range r.planned {
		if r.seen[i].Load() == 0 {
			continue
		}
		start = append(start, r.startLat[i])
		if o.Results && r.resultLat[i] >= 0 {
			res = append(res, r.resultLat[i])
			vis = append(vis, r.visibleLat[i])
			if at := r.savedAt[i].Load(); at > 0 {
				// The waiter can wake before the host hears that the save
				// succeeded: visible at once.
				saved = append(saved, max(0, r.visibleAt[i]-at))
			}
		}
	}
	rep.LatencyStart = summarize(start)
	rep.LatencyResult = summarize(res)
	rep.LatencyVisible = summarize(vis)
	rep.LatencySavedVisible = summarize(saved)
	rep.Processes = diffSnapshots(before, after)
	for _, p := range rep.Processes {
		rep.TotalCPUSeconds += p.CPUSeconds
	}
	rep.CPUPerTaskMS = cpuPerTaskMS(rep.TotalCPUSeconds, rep.Executed, rep.Kicked)
	return rep
}

// cpuPerTaskMS is cpuSeconds over the tasks executed, or over the tasks
// kicked when none ran (--kick-only), in milliseconds; 0 for no tasks.
func cpuPerTaskMS(cpuSeconds float64, executed, kicked int64) float64 {
	n := executed
	if n == 0 {
		n = kicked
	}
	if n == 0 {
		return 0
	}
	return cpuSeconds * 1000 / float64(n)
}

// summarize returns nil for no samples.
func summarize(ns []int64) *Latency {
	if len(ns) == 0 {
		return nil
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	pct := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ns)))) - 1
		return ms(ns[max(0, min(i, len(ns)-1))])
	}
	return &Latency{
		Count: len(ns),
		Mean:  sum / float64(len(ns)) / 1e6,
		P50:   pct(0.50),
		P95:   pct(0.95),
		P99:   pct(0.99),
		Max:   ms(ns[len(ns)-1]),
	}
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

func msDur(d time.Duration) float64 { return ms(int64(d)) }

// WriteText prints the report for people.
func (rep *Report) WriteText(w io.Writer) {
	if rep.Mode == "idle" {
		rep.writeIdleText(w)
		return
	}
	fmt.Fprintf(w, "config        %s (broker %s), %s mode, work %s, payload %d B\n", rep.Config, rep.Brokers, rep.Mode, rep.Work, rep.PayloadBytes)
	if rep.Module != "" {
		fmt.Fprintf(w, "module        task runs in task module %s\n", rep.Module)
	}
	fmt.Fprintf(w, "tasks         %d kicked of %d planned, %d executed, %d duplicate executions\n", rep.Kicked, rep.Planned, rep.Executed, rep.Duplicates)
	fmt.Fprintf(w, "kicks         %.0f kicks/s (%d kicking goroutines, %.3fs)\n", rep.KicksPerSec, rep.Concurrency, rep.KickSeconds)
	if rep.Spans > 0 {
		fmt.Fprintf(w, "observe       tracing on (in memory): %d spans exported\n", rep.Spans)
	}
	if rep.Mode != "kick-only" {
		fmt.Fprintf(w, "end to end    %.0f tasks/s (max_async_tasks %d, %.3fs first kick → last task done)\n", rep.TasksPerSec, rep.MaxAsyncTasks, rep.Seconds)
	}
	lat := func(name string, l *Latency) {
		if l != nil {
			fmt.Fprintf(w, "%-13s p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  max %.3f ms  (n=%d)\n", name, l.P50, l.P95, l.P99, l.Max, l.Count)
		}
	}
	lat("kick→start", rep.LatencyStart)
	lat("kick→result", rep.LatencyResult)
	lat("done→visible", rep.LatencyVisible)
	lat("saved→visible", rep.LatencySavedVisible)
	fmt.Fprintf(w, "processes     %d CPUs, %s; CPU seconds from first kick to end, peak RSS:\n", rep.NumCPU, rep.GoVersion)
	for _, p := range rep.Processes {
		fmt.Fprintf(w, "  %-6s %-24s pid %-7d cpu %7.2fs  peak rss %7.1f MB\n", p.Role, p.Name, p.PID, p.CPUSeconds, p.PeakRSSMB)
	}
	fmt.Fprintf(w, "  total cpu %.2fs", rep.TotalCPUSeconds)
	if rep.CPUPerTaskMS > 0 {
		fmt.Fprintf(w, ", %.3f ms per task", rep.CPUPerTaskMS)
	}
	fmt.Fprintln(w)
	if rep.CPUPressure > 5 {
		fmt.Fprintf(w, "warning: CPU pressure was %.0f%% before the run (/proc/pressure/cpu): other work competed for the CPUs\n", rep.CPUPressure)
	}
}

// workerOptions are the worker settings of a benchmark run: taskiq.hcl's,
// with --max-async-tasks applied (100 when neither sets it).
func workerOptions(app *core.App, opts Options) core.WorkerOptions {
	wo := app.WorkerDefaults()
	if opts.MaxAsyncTasks > 0 {
		wo.MaxAsyncTasks = opts.MaxAsyncTasks
	}
	if wo.MaxAsyncTasks <= 0 {
		wo.MaxAsyncTasks = 100
	}
	wo.ShutdownTimeout = 10 * time.Second
	return wo
}

// startWorker runs the worker in the background, its result going to done,
// and waits until it is ready.
func startWorker(ctx, workerCtx context.Context, app *core.App, wo core.WorkerOptions, opts Options, done chan<- error) error {
	ready := make(chan struct{})
	wo.Ready = func() { close(ready) }
	exited := make(chan error, 1)
	go func() {
		err := app.RunWorker(workerCtx, wo)
		exited <- err
		done <- err
	}()
	select {
	case <-ready:
		return nil
	case err := <-exited:
		return fmt.Errorf("worker stopped before it was ready: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("worker not ready within --timeout %v: %w", opts.Timeout, ctx.Err())
	}
}
