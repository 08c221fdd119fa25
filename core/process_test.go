package core_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The tests in this file run the host (this process) against plugin
// processes: the test binary itself, serving the plugin named in the block's
// env (see main_test.go).

type procBundle struct {
	app    *core.App
	dir    string
	record string // the recorder middleware's file
}

// pluginBlock renders a plugin block served by this test binary.
func pluginBlock(kind, name, plugin, config string, extraEnv ...string) string {
	self, _ := os.Executable()
	env := fmt.Sprintf("%s = %q", "TASKIQ_CORE_TEST_PLUGIN", plugin)
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env += fmt.Sprintf("\n    %s = %q", extraEnv[i], extraEnv[i+1])
	}
	return fmt.Sprintf("%s %q {\n  plugin = %q\n  env = {\n    %s\n  }\n  config {\n%s\n  }\n}\n", kind, name, self, env, config)
}

// loadProc writes taskiq.hcl with the in-memory plugin as broker and result
// backend plus extra blocks, and loads it.
func loadProc(t *testing.T, extra string, opts ...core.Option) *procBundle {
	t.Helper()
	dir := t.TempDir()
	b := &procBundle{dir: dir, record: filepath.Join(dir, "hooks.log")}
	hcl := pluginBlock("broker", "default", "inmemory", `    lease = "5s"`) +
		pluginBlock("result_backend", "default", "inmemory", "") +
		strings.ReplaceAll(extra, "RECORD", b.record)
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := core.Load(ctx, path, append([]core.Option{core.WithLogger(hclog.NewNullLogger())}, opts...)...)
	require.NoError(t, err)
	b.app = app
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = app.Close(ctx)
	})
	return b
}

func (b *procBundle) runWorker(t *testing.T, o core.WorkerOptions) (stop func()) {
	return (&testBundle{app: b.app}).runWorker(t, o)
}

func (b *procBundle) hooks(t *testing.T) []string {
	data, err := os.ReadFile(b.record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(data))
}

func TestProcessRoundTrip(t *testing.T) {
	t.Parallel()
	b := loadProc(t, "")
	ctx := context.Background()
	var rejected, requeued atomic.Int32
	add := core.MustTask[int](b.app, "math.add", func(a, c int) (int, error) { return a + c, nil })
	fail := core.MustTask[int](b.app, "fail", func() (int, error) { return 0, fmt.Errorf("wrapped: %w", errors.New("root")) })
	slow := core.MustTask[int](b.app, "slow", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	requeue := core.MustTask[int64](b.app, "requeue", func(ctx context.Context) (int64, error) {
		tc := core.ContextFrom(ctx)
		n, _ := tc.Message.LabelInt(wire.LabelRequeue)
		if n == 0 {
			requeued.Add(1)
			return 0, tc.Requeue()
		}
		return n, nil
	})
	reject := core.MustTask[int](b.app, "reject", func(ctx context.Context) (int, error) {
		rejected.Add(1)
		return 0, core.ContextFrom(ctx).Reject()
	})
	b.runWorker(t, core.WorkerOptions{})

	sum, err := add.Kiq(ctx, 40, 2)
	require.NoError(t, err)
	require.Equal(t, 42, wait(t, sum).ReturnValue)

	f, err := fail.Kiq(ctx)
	require.NoError(t, err)
	fr := wait(t, f)
	require.True(t, fr.IsErr)
	require.Equal(t, "Error", fr.Error.ExcType)
	require.Equal(t, []any{"wrapped: root"}, fr.Error.ExcMessage)
	require.Equal(t, "Error", fr.Error.ExcCause.ExcType)

	s, err := slow.Kicker().WithLabels(map[string]any{"timeout": 0.05}).Kiq(ctx)
	require.NoError(t, err)
	require.Equal(t, "TaskiqResultTimeoutError", wait(t, s).Error.ExcType)

	rq, err := requeue.Kiq(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, wait(t, rq).ReturnValue)
	require.EqualValues(t, 1, requeued.Load())

	rj, err := reject.Kiq(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rejected.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	// A rejected message is dead-lettered, not redelivered: kick a marker
	// task behind it and check the rejecting task ran once.
	marker, err := add.Kiq(ctx, 0, 0)
	require.NoError(t, err)
	wait(t, marker)
	require.EqualValues(t, 1, rejected.Load())
	ready, err := rj.IsReady(ctx)
	require.NoError(t, err)
	require.False(t, ready)
}

// TestProcessAckTypes stops a worker, with a short shutdown timeout, while
// its task runs: a message acked when received is gone, any other ack type
// leaves it to be redelivered to the next worker.
func TestProcessAckTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ack  core.AckType
		runs int32
	}{
		{core.AckWhenReceived, 1},
		{core.AckWhenExecuted, 2},
		{core.AckWhenSaved, 2},
		{core.AckManual, 2},
	}
	for _, tc := range cases {
		t.Run(string(tc.ack), func(t *testing.T) {
			t.Parallel()
			b := loadProc(t, "")
			var runs atomic.Int32
			started := make(chan struct{}, 2)
			task := core.MustTask[int32](b.app, "probe", func(ctx context.Context) (int32, error) {
				n := runs.Add(1)
				started <- struct{}{}
				if n == 1 {
					<-ctx.Done() // held until the shutdown timeout cancels it
					return 0, ctx.Err()
				}
				if tc.ack == core.AckManual {
					return n, core.ContextFrom(ctx).Ack()
				}
				return n, nil
			})
			stop := b.runWorker(t, core.WorkerOptions{AckType: tc.ack, ShutdownTimeout: 10 * time.Millisecond})
			at, err := task.Kiq(context.Background())
			require.NoError(t, err)
			<-started
			stop()
			b.runWorker(t, core.WorkerOptions{AckType: tc.ack})
			if tc.runs == 2 {
				require.EqualValues(t, 2, wait(t, at).ReturnValue)
				return
			}
			// At most once: the message is gone. A marker kicked after it
			// runs, and the probe never runs again.
			marker, err := task.Kicker().WithTaskID("marker").Kiq(context.Background())
			require.NoError(t, err)
			require.EqualValues(t, 2, wait(t, marker).ReturnValue)
			require.EqualValues(t, 2, runs.Load())
		})
	}
}

func TestProcessMiddlewareOrderPluginAndInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	record := filepath.Join(dir, "hooks.log")
	extra := pluginBlock("middleware", "recorder", "recorder", `    name = "plugin"
    path = "`+record+`"`)
	// The in-process middleware comes after the configured ones.
	b := loadProc(t, extra, core.WithMiddleware(recordingMiddleware{name: "local", path: record}))
	b.record = record
	fail := core.MustTask[int](b.app, "boom", func() (int, error) { return 0, errors.New("no") })
	b.runWorker(t, core.WorkerOptions{})
	at, err := fail.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.Equal(t, true, res.Labels["seen_by_plugin"])
	require.Equal(t, true, res.Labels["seen_by_local"])
	// The client's hooks and the worker's are each ordered; the two sides
	// run concurrently (the worker may start before post_send returns).
	wantClient := []string{"plugin.pre_send", "local.pre_send", "local.post_send", "plugin.post_send"}
	wantWorker := []string{
		"plugin.pre_execute", "local.pre_execute",
		"local.on_error", "plugin.on_error", "local.post_execute", "plugin.post_execute",
		"local.post_save", "plugin.post_save",
	}
	require.Eventually(t, func() bool { return len(b.hooks(t)) >= len(wantClient)+len(wantWorker) }, 10*time.Second, 5*time.Millisecond)
	var client, worker []string
	for _, h := range b.hooks(t) {
		if strings.HasSuffix(h, "_send") {
			client = append(client, h)
		} else {
			worker = append(worker, h)
		}
	}
	require.Equal(t, wantClient, client)
	require.Equal(t, wantWorker, worker)
}

func TestProcessMiddlewareOnlyDeclaredHooksAreCalled(t *testing.T) {
	t.Parallel()
	extra := pluginBlock("middleware", "recorder", "recorder", `    name = "plugin"
    path = "RECORD"`, "TASKIQ_CORE_TEST_HOOKS", "pre_execute,post_save")
	b := loadProc(t, extra)
	fail := core.MustTask[int](b.app, "boom", func() (int, error) { return 0, errors.New("no") })
	b.runWorker(t, core.WorkerOptions{})
	at, err := fail.Kiq(context.Background())
	require.NoError(t, err)
	wait(t, at)
	require.Eventually(t, func() bool { return len(b.hooks(t)) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"plugin.pre_execute", "plugin.post_save"}, b.hooks(t))
}

func killPlugin(t *testing.T, app *core.App, key string) int {
	t.Helper()
	pid := core.PluginPIDs(app)[key]
	require.NotZero(t, pid, "no running plugin %s", key)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	return pid
}

func TestProcessSupervisionRestartsMiddlewarePlugin(t *testing.T) {
	t.Parallel()
	extra := pluginBlock("middleware", "recorder", "recorder", `    name = "plugin"
    path = "RECORD"`, "TASKIQ_CORE_TEST_HOOKS", "pre_execute")
	b := loadProc(t, extra)
	var executed atomic.Int32
	task := core.MustTask[int](b.app, "n", func(n int) (int, error) { executed.Add(1); return n, nil })
	b.runWorker(t, core.WorkerOptions{MaxAsyncTasks: 8})
	ctx := context.Background()
	const total = 300
	handles := make([]*core.AsyncTask[int], 0, total)
	for i := 0; i < total; i++ {
		if i == total/3 {
			require.Eventually(t, func() bool { return executed.Load() >= total/6 }, 10*time.Second, time.Millisecond)
			killPlugin(t, b.app, "middleware.recorder")
		}
		h, err := task.Kiq(ctx, i)
		require.NoError(t, err)
		handles = append(handles, h)
	}
	for i, h := range handles {
		require.Equal(t, i, wait(t, h).ReturnValue)
	}
	// The restarted middleware kept being called.
	require.Eventually(t, func() bool { return len(b.hooks(t)) >= total }, 10*time.Second, 5*time.Millisecond)
	require.NotZero(t, core.PluginPIDs(b.app)["middleware.recorder"])
}

// heldTasks registers task "held", which returns i*mul once release is
// closed, and runs a worker with room for n of them at once; running is
// done when n of them have started.
func (b *procBundle) heldTasks(t *testing.T, n, mul int) (task *core.Task[int], running *sync.WaitGroup, release chan struct{}) {
	release = make(chan struct{})
	running = &sync.WaitGroup{}
	running.Add(n)
	task = core.MustTask[int](b.app, "held", func(i int) (int, error) {
		running.Done()
		<-release
		return i * mul, nil
	})
	b.runWorker(t, core.WorkerOptions{MaxAsyncTasks: n})
	return task, running, release
}

func TestProcessSupervisionRestartsResultBackendPlugin(t *testing.T) {
	t.Parallel()
	b := loadProc(t, "")
	const n = 40
	task, running, release := b.heldTasks(t, n, 2)
	handles := make([]*core.AsyncTask[int], n)
	for i := range handles {
		h, err := task.Kiq(context.Background(), i)
		require.NoError(t, err)
		handles[i] = h
	}
	running.Wait()
	old := killPlugin(t, b.app, "result_backend.default")
	close(release) // every save now meets a dead result backend
	for i, h := range handles {
		require.Equal(t, i*2, wait(t, h).ReturnValue, "task %d", i)
	}
	require.NotEqual(t, old, core.PluginPIDs(b.app)["result_backend.default"])
}

func TestValidateReportsPluginConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	self, _ := os.Executable()
	hcl := `broker "default" {
  plugin = "` + self + `"
  env = { TASKIQ_CORE_TEST_PLUGIN = "inmemory" }
  config {
    queu = "x"
    lease = 5
  }
}
result_backend "default" {
  plugin = "` + filepath.Join(dir, "taskiq-missing") + `"
}
middleware "pinned" {
  plugin = "` + self + `"
  sha256 = "` + strings.Repeat("0", 64) + `"
}
worker {
  max_async_task = 3
}
`
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o600))
	diags := core.Validate(context.Background(), path, nil)
	require.True(t, diags.HasErrors())
	text := config.FormatDiagnostics(diags)
	require.Contains(t, text, `Did you mean "max_async_tasks"?`)
	require.Contains(t, text, "taskiq.hcl:17:3")
	require.Contains(t, text, `Did you mean "queue"?`)
	require.Contains(t, text, "taskiq.hcl:5:5")
	require.Contains(t, text, "taskiq-missing")
	require.Contains(t, text, "checksum")
}

func BenchmarkEndToEndInmemoryPlugin(b *testing.B) {
	dir := b.TempDir()
	hcl := pluginBlock("broker", "default", "inmemory", "") + pluginBlock("result_backend", "default", "inmemory", "")
	path := filepath.Join(dir, "taskiq.hcl")
	require.NoError(b, os.WriteFile(path, []byte(hcl), 0o600))
	ctx := context.Background()
	app, err := core.Load(ctx, path, core.WithLogger(hclog.NewNullLogger()))
	require.NoError(b, err)
	defer app.Close(ctx)
	var done atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	task := core.MustTask[int](app, "noop", func(n int) (int, error) {
		if done.Add(1) == target {
			close(all)
		}
		return n, nil
	})
	wctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	go func() {
		_ = app.RunWorker(wctx, core.WorkerOptions{MaxAsyncTasks: 256, Ready: func() { close(ready) }})
	}()
	<-ready
	defer stop()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	kickers := benchKickers()
	for k := 0; k < kickers; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < b.N; i += kickers {
				if _, err := task.Kiq(ctx, i); err != nil {
					b.Error(err)
					return
				}
			}
		}(k)
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d tasks ran", done.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

// benchKickers is the number of concurrently kicking goroutines
// (TASKIQ_BENCH_KICKERS, default 64): each Kiq waits for the broker, so
// throughput from one goroutine is bounded by the round trip.
func benchKickers() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("TASKIQ_BENCH_KICKERS"), &n); err != nil || n <= 0 {
		return 64
	}
	return n
}

// TestOnResultThroughAPluginProcess: OnResult over a result backend plugin
// holds no goroutine per pending call, delivers every result, survives the
// plugin's restart under pending watches, and ends a call whose context
// ends first with that context's error.
func TestOnResultThroughAPluginProcess(t *testing.T) {
	b := loadProc(t, "")
	const n = 500
	task, running, release := b.heldTasks(t, n, 3)
	type answer struct {
		i, v int
		err  error
	}
	answers := make(chan answer, n)
	before := runtime.NumGoroutine()
	for i := range n {
		h, err := task.Kiq(context.Background(), i)
		require.NoError(t, err)
		h.OnResult(context.Background(), func(r *core.Result[int], err error) {
			if err != nil {
				answers <- answer{i: i, err: err}
				return
			}
			answers <- answer{i: i, v: r.ReturnValue}
		})
	}
	running.Wait()
	require.Less(t, runtime.NumGoroutine()-before, n/10,
		"%d pending OnResult calls hold no goroutine each", n)

	old := killPlugin(t, b.app, "result_backend.default")
	close(release) // every save and every watch now meets a dead result backend
	for range n {
		a := <-answers
		require.NoError(t, a.err, "task %d", a.i)
		require.Equal(t, a.i*3, a.v, "task %d", a.i)
	}
	require.NotEqual(t, old, core.PluginPIDs(b.app)["result_backend.default"])

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	core.ResultOf[int](b.app, "never-kicked").OnResult(ctx, func(_ *core.Result[int], err error) { errs <- err })
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
}
