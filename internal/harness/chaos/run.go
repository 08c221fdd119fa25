package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskiq-go/taskiq/internal/execfile"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/harness/chaos/execlog"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Options configure a chaos run. Zero values take the defaults of
// (*Options).defaults.
type Options struct {
	// Bin holds taskiq, taskiq-redis and chaos-module (make build plus
	// chaos/chaos.mk).
	Bin string
	// Dir is the run directory: one subdirectory per scenario holds its
	// Redis data, taskiq.hcl, logs and execution log.
	Dir string
	// Tasks is the number of well-behaved tasks kicked per scenario.
	Tasks int
	// TaskMS is the mean duration of a well-behaved task; each one sleeps
	// between TaskMS/2 and 3*TaskMS/2 milliseconds.
	TaskMS int
	// Bad is the number of tasks of each bad kind in the bad-tasks scenario.
	Bad int
	// Workers and MaxAsync shape the worker: child processes, and tasks
	// each runs at once.
	Workers, MaxAsync int
	// Lease is the broker's visibility lease: how long a killed worker's
	// deliveries wait before another worker reclaims them.
	Lease time.Duration
	// KillEvery is the pace of the kill scenarios.
	KillEvery time.Duration
	// Deadline bounds one scenario, from the start of its Redis to the end
	// of its accounting; a scenario past it fails.
	Deadline time.Duration
	// Seed makes the payloads, durations and kill targets repeatable.
	Seed uint64
	// Log receives progress lines.
	Log io.Writer
}

func (o *Options) defaults() {
	if o.Tasks <= 0 {
		o.Tasks = 3000
	}
	if o.TaskMS <= 0 {
		o.TaskMS = 100
	}
	if o.Bad <= 0 {
		o.Bad = 10
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.MaxAsync <= 0 {
		o.MaxAsync = 16
	}
	if o.Lease <= 0 {
		o.Lease = 3 * time.Second
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 3 * time.Second
	}
	if o.Deadline <= 0 {
		o.Deadline = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Scenario is one chaos run: which tasks it kicks and which faults it
// injects while they run.
type Scenario struct {
	Name  string
	Title string
	// bad adds the panicking, hanging and memory-hungry tasks.
	bad bool
	// checkWorkers: no worker child may die during the run.
	checkWorkers bool
	// broker is the broker plugin: brokerRedis (default), brokerNATS,
	// which runs on a private nats-server, or brokerRabbitMQ (results stay
	// on Redis for both).
	broker string
	// inject runs the faults until ctx ends.
	inject func(r *run, ctx context.Context)
}

// Scenarios are every chaos run, in the order `make chaos` runs them.
var Scenarios = []Scenario{
	{Name: "kill-worker", Title: "SIGKILL a worker child every few seconds", inject: (*run).killWorkers},
	{Name: "kill-plugins", Title: "SIGKILL the broker and result-backend plugin processes", inject: (*run).killPlugins},
	{Name: "redis-restart", Title: "restart Redis twice (kill -9, SHUTDOWN NOSAVE), AOF always", inject: (*run).restartRedis},
	{Name: "redis-oom", Title: "Redis reaches maxmemory (noeviction) for longer than the result-save retry, then gets room again", inject: (*run).fillRedis},
	{Name: "bad-tasks", Title: "tasks that panic, hang past their timeout, allocate too much", bad: true, checkWorkers: true},
	{Name: "nats", Title: "NATS JetStream broker: SIGKILL worker children and the taskiq-nats plugin, restart nats-server (file storage) twice", broker: brokerNATS, inject: (*run).natsFaults},
	{Name: "rabbitmq-kill", Title: "RabbitMQ broker: SIGKILL worker children and the taskiq-rabbitmq plugin in turn", inject: (*run).killRabbit, broker: brokerRabbitMQ},
}

// Report is the outcome of one scenario.
type Report struct {
	Scenario string
	Title    string
	Stats    Stats
	Events   []Event
	Duration time.Duration
	// KickRetries counts kicks sent again after an error.
	KickRetries int
	// WorkerPIDs are every worker child seen; WorkerRestarts how many
	// replaced one that died.
	WorkerPIDs     []int
	WorkerRestarts int
	// SupervisorDied is set when `taskiq worker` exited before the harness
	// stopped it; StopResult is how it ended on SIGTERM.
	SupervisorDied bool
	StopResult     string
	// Orphans are processes of the run still alive after the supervisor
	// exited.
	Orphans []string
	// TimedOut is set when the deadline passed before every task settled.
	TimedOut bool
	// Problems are violations found by the harness itself (supervisor,
	// workers, orphans, deadline), besides those of Stats.
	Problems []string
	// Err is a failure of the harness (it could not set the run up).
	Err string
}

// Violations lists every broken guarantee of the scenario.
func (r Report) Violations() []string {
	var v []string
	if r.Err != "" {
		v = append(v, "harness error: "+r.Err)
	}
	v = append(v, r.Problems...)
	return append(v, r.Stats.Violations()...)
}

// run is the state of one scenario.
type run struct {
	opts  Options
	sc    Scenario
	dir   string
	env   string // TMPDIR=<dir>, the mark of the run's processes
	redis *redisServer
	rdb   *redis.Client
	nats  *natsServer // NATS scenarios only
	log   func(format string, args ...any)
	rng   *rand.Rand
	rmq   *rabbitState // RabbitMQ scenarios only

	sup     *exec.Cmd
	supDone chan struct{}
	supErr  error

	tasks  []Task
	kicked chan struct{}
	done   atomic.Int64 // tasks with a result or a dead letter

	mu      sync.Mutex
	events  []Event
	workers map[int]bool
}

func (r *run) event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.log("%s %s", e.Kind, e.Detail)
}

// quietRedis drops go-redis's own log lines: the harness polls through the
// Redis restarts on purpose, and its dial errors would bury the report.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x63a05)) }

// Run runs the scenarios one after the other and returns their reports.
func Run(ctx context.Context, opts Options, scenarios []Scenario) []Report {
	opts.defaults()
	redis.SetLogger(quietRedis{})
	var out []Report
	for i, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		o := opts
		o.Seed = opts.Seed + uint64(i)
		rep := RunScenario(ctx, o, sc)
		out = append(out, rep)
		fmt.Fprint(opts.Log, FormatDetail(rep))
	}
	return out
}

// RunScenario runs one scenario in its own directory with its own Redis
// and worker, and accounts for every task.
func RunScenario(ctx context.Context, opts Options, sc Scenario) (rep Report) {
	opts.defaults()
	start := time.Now()
	rep = Report{Scenario: sc.Name, Title: sc.Title}
	ctx, cancel := context.WithTimeout(ctx, opts.Deadline)
	defer cancel()
	r := &run{opts: opts, sc: sc, dir: filepath.Join(opts.Dir, sc.Name),
		rng: newRand(opts.Seed), kicked: make(chan struct{}), workers: map[int]bool{}}
	r.env = "TMPDIR=" + r.dir
	r.log = func(format string, args ...any) {
		fmt.Fprintf(opts.Log, "%s [%s %5.1fs] %s\n", time.Now().Format("15:04:05"), sc.Name, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	defer func() { rep.Duration = time.Since(start) }()
	if err := r.setup(ctx); err != nil {
		rep.Err = err.Error()
		r.teardown(&rep)
		return rep
	}
	r.execute(ctx, &rep)
	r.teardown(&rep)
	r.account(&rep)
	return rep
}

func (r *run) setup(ctx context.Context) error {
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	for _, name := range append([]string{"taskiq", "chaos-module"}, r.pluginBinaries()...) {
		if err := execfile.Explain("binary", filepath.Join(r.opts.Bin, name), "run make build bin/chaos-module"); err != nil {
			return err
		}
	}
	var err error
	if r.redis, err = startRedis(ctx, filepath.Join(r.dir, "redis")); err != nil {
		return err
	}
	r.rdb = redis.NewClient(&redis.Options{Addr: r.redis.Addr(), MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	r.log("redis-server on %s (AOF, appendfsync always), dir %s", r.redis.Addr(), r.dir)
	if r.sc.broker == brokerNATS {
		if r.nats, err = startNATS(ctx, filepath.Join(r.dir, "nats")); err != nil {
			return err
		}
		r.log("nats-server -js on %s (file storage), dir %s", r.nats.URL(), r.dir)
	}
	if r.rabbit() {
		if err := r.setupRabbit(); err != nil {
			return err
		}
	}
	return os.WriteFile(r.configPath(), []byte(r.config()), 0o644)
}

func (r *run) configPath() string { return filepath.Join(r.dir, "taskiq.hcl") }

func (r *run) config() string {
	bin, _ := filepath.Abs(r.opts.Bin)
	lease := r.opts.Lease.String()
	return fmt.Sprintf(`# Written by the chaos harness (chaos/run.go) for scenario %[1]s.
plugin_dir = %[2]q

%[7]s
result_backend "default" {
  plugin = "taskiq-redis"
  config {
    url        = %[3]q
    prefix     = "chaos"
    result_ttl = "1h"
  }
}

worker {
  workers          = %[5]d
  max_async_tasks  = %[6]d
  lease            = %[4]q
  shutdown_timeout = "10s"
}
`, r.sc.Name, bin, r.redis.URL(), lease, r.opts.Workers, r.opts.MaxAsync, r.brokerBlock())
}

// brokerBlock is the scenario's broker block.
func (r *run) brokerBlock() string {
	if r.rabbit() {
		return r.rabbitBrokerBlock()
	}
	if r.sc.broker == brokerNATS {
		return natsBrokerBlock(r.nats.URL(), r.opts.Lease.String())
	}
	return fmt.Sprintf(`broker "default" {
  plugin = "taskiq-redis"
  config {
    url          = %q
    queue        = "chaos"
    mode         = "stream"
    lease        = %q
    block        = "500ms"
    max_attempts = 10
  }
}
`, r.redis.URL(), r.opts.Lease.String())
}

// execute starts the worker, kicks the tasks, injects the faults and waits
// until every task settled, the supervisor died or the deadline passed.
func (r *run) execute(ctx context.Context, rep *Report) {
	if err := r.startSupervisor(ctx); err != nil {
		rep.Err = err.Error()
		return
	}
	app, err := core.Load(ctx, r.configPath(), core.WithLogger(r.fileLogger("harness")))
	if err != nil {
		rep.Err = fmt.Sprintf("load %s for kicking: %v", r.configPath(), err)
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Close(cctx)
	}()
	r.tasks = r.plan()

	injectCtx, stopInject := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.watchWorkers(injectCtx) }()
	go func() {
		defer wg.Done()
		if r.sc.inject != nil {
			r.sc.inject(r, injectCtx)
		}
	}()
	kickErr := make(chan error, 1)
	go func() { kickErr <- r.kick(ctx, app, rep) }()

	r.waitSettled(ctx, rep, kickErr)
	stopInject()
	wg.Wait()
}

// plan builds the tasks: ids, unique payloads, durations, bad kinds spread
// evenly through the good ones.
func (r *run) plan() []Task {
	n := r.opts.Tasks
	tasks := make([]Task, 0, n+3*r.opts.Bad)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%06d", r.sc.Name, i)
		tasks = append(tasks, Task{ID: id, Kind: KindEcho, Payload: fmt.Sprintf("%s:%016x", id, r.rng.Uint64())})
	}
	if r.sc.bad {
		var bad []Task
		for i := 0; i < r.opts.Bad; i++ {
			for _, k := range []TaskKind{KindPanic, KindHang, KindMemhog} {
				id := fmt.Sprintf("%s-%s-%03d", r.sc.Name, k, i)
				bad = append(bad, Task{ID: id, Kind: k, Payload: fmt.Sprintf("%s:%016x", id, r.rng.Uint64())})
			}
		}
		step := max(len(tasks)/(len(bad)+1), 1)
		out := make([]Task, 0, len(tasks)+len(bad))
		for i, t := range tasks {
			out = append(out, t)
			if (i+1)%step == 0 && len(bad) > 0 {
				out = append(out, bad[0])
				bad = bad[1:]
			}
		}
		tasks = append(out, bad...)
	}
	return tasks
}

// hangMS and hangTimeout: chaos:hang sleeps 4s, deaf to its context, under
// a timeout label of 1s.
const (
	hangMS      = 4000
	hangTimeout = 1
	memhogMiB   = 2048
)

func (r *run) rawKick(t Task) core.RawKick {
	js := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	k := core.RawKick{TaskID: t.ID, Args: []json.RawMessage{js(t.Payload)}}
	switch t.Kind {
	case KindEcho:
		k.TaskName = "chaos:echo"
		ms := r.opts.TaskMS/2 + int(hash(t.ID)%uint64(r.opts.TaskMS+1))
		k.Args = append(k.Args, js(ms))
	case KindPanic:
		k.TaskName = "chaos:panic"
	case KindHang:
		k.TaskName = "chaos:hang"
		k.Args = append(k.Args, js(hangMS))
		k.Labels = map[string]any{wire.LabelTimeout: hangTimeout}
	case KindMemhog:
		k.TaskName = "chaos:memhog"
		k.Args = append(k.Args, js(memhogMiB))
	}
	return k
}

// hash is FNV-1a: a task's duration depends on its id only.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// kick sends every task, 32 at a time, retrying a failed kick until the
// deadline (the task is then marked: a retried kick may enqueue twice).
func (r *run) kick(ctx context.Context, app *core.App, rep *Report) error {
	defer close(r.kicked)
	idx := make(chan int)
	var retries atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				k := r.rawKick(r.tasks[i])
				for {
					_, err := app.KickByName(ctx, k)
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						once.Do(func() { firstErr = err })
						break
					}
					r.tasks[i].KickRetried = true
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	start := time.Now()
	for i := range r.tasks {
		idx <- i
	}
	close(idx)
	wg.Wait()
	rep.KickRetries = int(retries.Load())
	r.log("kicked %d tasks in %.1fs (%d kick retries)", len(r.tasks), time.Since(start).Seconds(), rep.KickRetries)
	return firstErr
}

// waitSettled polls the results and the dead-letter stream until every
// task has an outcome and the queue is empty, the supervisor dies, or the
// deadline passes.
func (r *run) waitSettled(ctx context.Context, rep *Report, kickErr chan error) {
	pending := map[string]bool{}
	for _, t := range r.tasks {
		pending[t.ID] = true
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	lastLog := time.Now()
	kickDone := false
	for {
		select {
		case <-ctx.Done():
			rep.TimedOut = true
			rep.Problems = append(rep.Problems, fmt.Sprintf("deadline of %v passed with %d of %d tasks without an outcome", r.opts.Deadline, len(pending), len(r.tasks)))
			return
		case <-r.supDone:
			rep.SupervisorDied = true
			rep.Problems = append(rep.Problems, fmt.Sprintf("the taskiq worker supervisor died during the run: %v (see %s)", r.supErr, filepath.Join(r.dir, "worker.log")))
			return
		case err := <-kickErr:
			kickDone = true
			if err != nil {
				rep.Problems = append(rep.Problems, "kicking failed: "+err.Error())
				return
			}
		case <-t.C:
		}
		if err := r.pollOutcomes(ctx, pending); err != nil {
			continue // Redis is down in the restart scenario: poll again
		}
		r.done.Store(int64(len(r.tasks) - len(pending)))
		if time.Since(lastLog) > 5*time.Second {
			r.log("%d/%d tasks have an outcome", len(r.tasks)-len(pending), len(r.tasks))
			lastLog = time.Now()
		}
		if len(pending) == 0 && kickDone && r.sc.broker == brokerNATS {
			if r.natsQueueEmpty(ctx) {
				r.log("every task has an outcome and the queue is empty")
				return
			}
			continue
		}
		if len(pending) == 0 && kickDone && r.rabbit() {
			if empty, err := r.rabbitQueueEmpty(); err == nil && empty {
				r.log("every task has an outcome and the queue is empty")
				return
			}
		} else if len(pending) == 0 && kickDone {
			n, err1 := r.rdb.XLen(ctx, "chaos").Result()
			z, err2 := r.rdb.ZCard(ctx, "chaos:delayed").Result()
			if err1 == nil && err2 == nil && n == 0 && z == 0 {
				r.log("every task has an outcome and the queue is empty")
				return
			}
		}
	}
}

// pollOutcomes removes from pending the tasks that have a result or a
// dead letter.
func (r *run) pollOutcomes(ctx context.Context, pending map[string]bool) error {
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		keys := make([]string, n)
		for i, id := range ids[:n] {
			keys[i] = "chaos:" + id
		}
		vals, err := r.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			if v != nil {
				delete(pending, ids[i])
			}
		}
		ids = ids[n:]
	}
	dead, err := r.deadLetters(ctx)
	if err != nil {
		return err
	}
	for id := range dead {
		delete(pending, id)
	}
	return nil
}

// deadLetters reads the dead-letter stream: task id -> reason.
func (r *run) deadLetters(ctx context.Context) (map[string]string, error) {
	if r.sc.broker == brokerNATS {
		return r.natsDeadLetters(ctx)
	}
	if r.rabbit() {
		return r.rabbitDeadLetters()
	}
	msgs, err := r.rdb.XRange(ctx, "chaos:dead", "-", "+").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range msgs {
		data, _ := m.Values["data"].(string)
		reason, _ := m.Values["reason"].(string)
		msg, err := wire.DecodeMessage([]byte(data))
		if err != nil {
			out["undecodable:"+m.ID] = reason
			continue
		}
		out[msg.TaskID] = reason
	}
	return out, nil
}

// results reads every task's stored result.
func (r *run) results(ctx context.Context) (map[string]*wire.Result, error) {
	out := map[string]*wire.Result{}
	for i := 0; i < len(r.tasks); i += 1000 {
		chunk := r.tasks[i:min(i+1000, len(r.tasks))]
		keys := make([]string, len(chunk))
		for j, t := range chunk {
			keys[j] = "chaos:" + t.ID
		}
		vals, err := r.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		for j, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			res, err := wire.DecodeResult([]byte(s))
			if err != nil {
				return nil, fmt.Errorf("result of %s: %w", chunk[j].ID, err)
			}
			out[chunk[j].ID] = res
		}
	}
	return out, nil
}

func (r *run) fileLogger(name string) hclog.Logger {
	f, err := os.OpenFile(filepath.Join(r.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: f, Level: hclog.Info})
}

// startSupervisor runs `taskiq worker` with the chaos module, TMPDIR set
// to the run directory, and waits until /readyz says every child listens.
func (r *run) startSupervisor(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	health := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(r.dir, "worker.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(r.opts.Bin, "taskiq"), "worker",
		"--config", r.configPath(), "--health-addr", health, filepath.Join(r.opts.Bin, "chaos-module"))
	cmd.Env = append(withoutEnv(os.Environ(), "TMPDIR"), r.env)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C of make reaches the harness, which stops
	// the worker in order. Pdeathsig: a killed harness leaves no worker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start taskiq worker: %w", err)
	}
	r.sup, r.supDone = cmd, make(chan struct{})
	go func() {
		r.supErr = cmd.Wait()
		logf.Close()
		close(r.supDone)
	}()
	r.log("taskiq worker pid %d (%d children, max_async_tasks %d, lease %v)", cmd.Process.Pid, r.opts.Workers, r.opts.MaxAsync, r.opts.Lease)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.supDone:
			return fmt.Errorf("taskiq worker exited at start: %v; see %s", r.supErr, filepath.Join(r.dir, "worker.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("taskiq worker not ready within 30s; see %s", filepath.Join(r.dir, "worker.log"))
		}
	}
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// supervisorPID is 0 before the supervisor started.
func (r *run) supervisorPID() int {
	if r.sup == nil || r.sup.Process == nil {
		return 0
	}
	return r.sup.Process.Pid
}

// watchWorkers records every worker child pid seen.
func (r *run) watchWorkers(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ps, _ := listProcs()
		r.mu.Lock()
		for _, p := range childrenOf(ps, r.supervisorPID(), "") {
			r.workers[p.pid] = true
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// teardown stops the worker with SIGTERM (it must drain and exit 0), finds
// processes of the run that outlived it, and keeps the Redis server running
// for the accounting.
func (r *run) teardown(rep *Report) {
	if r.sup != nil {
		select {
		case <-r.supDone:
			rep.StopResult = fmt.Sprintf("had already exited: %v", r.supErr)
		default:
			_ = r.sup.Process.Signal(syscall.SIGTERM)
			start := time.Now()
			select {
			case <-r.supDone:
				if r.supErr == nil {
					rep.StopResult = fmt.Sprintf("exit 0 in %.1fs", time.Since(start).Seconds())
				} else {
					rep.StopResult = fmt.Sprintf("%v after %.1fs", r.supErr, time.Since(start).Seconds())
					rep.Problems = append(rep.Problems, "taskiq worker did not exit 0 on SIGTERM: "+r.supErr.Error())
				}
			case <-time.After(30 * time.Second):
				_ = r.sup.Process.Kill()
				<-r.supDone
				rep.StopResult = "killed: no exit within 30s of SIGTERM"
				rep.Problems = append(rep.Problems, "taskiq worker did not exit within 30s of SIGTERM")
			}
		}
		// Plugins and modules notice a dead host within a poll interval.
		deadline := time.Now().Add(5 * time.Second)
		var left []proc
		for {
			left = runProcs(r.env)
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, p := range left {
			rep.Orphans = append(rep.Orphans, fmt.Sprintf("pid %d: %s", p.pid, p.cmdline))
			_ = sigkill(p.pid)
		}
		if len(left) > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%d process(es) of the run outlived the worker by 5s: %v", len(left), rep.Orphans))
		}
	}
	r.mu.Lock()
	for pid := range r.workers {
		rep.WorkerPIDs = append(rep.WorkerPIDs, pid)
	}
	r.mu.Unlock()
	rep.WorkerRestarts = max(len(rep.WorkerPIDs)-r.opts.Workers, 0)
	if r.sc.checkWorkers && rep.WorkerRestarts > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d worker child(ren) died and were replaced although no fault was injected (worker pids %v)", rep.WorkerRestarts, rep.WorkerPIDs))
	}
}

// account reads the outcome of every task and the execution log, then
// stops the run's Redis.
func (r *run) account(rep *Report) {
	defer func() {
		if r.rdb != nil {
			_ = r.rdb.Close()
		}
		if r.redis != nil {
			r.redis.stop()
		}
		if r.nats != nil {
			r.nats.stop()
		}
		r.teardownRabbit()
	}()
	r.mu.Lock()
	rep.Events = append([]Event(nil), r.events...)
	r.mu.Unlock()
	for _, e := range rep.Events {
		if (e.Kind == RedisDown || e.Kind == NatsDown) && strings.Contains(e.Detail, restartFailed) {
			rep.Problems = append(rep.Problems, string(e.Kind)+": the server could not be restarted: "+e.Detail)
		}
	}
	if rep.Err == "" && !rep.TimedOut {
		rep.Problems = append(rep.Problems, checkFaults(r.sc.Name, rep.Events)...)
	}
	if rep.Err != "" || r.redis == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := r.results(ctx)
	if err != nil {
		rep.Err = "read results: " + err.Error()
		return
	}
	dead, err := r.deadLetters(ctx)
	if err != nil {
		rep.Err = "read dead letters: " + err.Error()
		return
	}
	f, err := os.Open(filepath.Join(r.dir, execlog.FileName))
	var lines []execlog.Line
	if err == nil {
		lines, err = execlog.Parse(f)
		f.Close()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		rep.Err = "read the execution log: " + err.Error()
		return
	}
	rep.Stats = Analyze(r.tasks, results, dead, lines, rep.Events, 2*time.Second)
	if r.rabbit() {
		// taskiq-rabbitmq declares no stable_ids (delivery tags die with
		// their channel): acks in flight when its plugin is killed are
		// lost by design and those tasks run again, counted as duplicates
		// of the plugin kill, not as a violation.
		rep.Stats.DupFinishedBeforeBrokerKill = 0
	}
}
