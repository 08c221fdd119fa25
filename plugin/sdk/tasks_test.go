package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// envTasksModule makes the test binary serve testModule instead of running
// tests. TestMain checks it before serving the fake plugin of the other
// tests (not an init function: a test binary built with -cover writes the
// coverage of a process that exits before its own init ran, as one exiting
// from init does, nowhere).
const envTasksModule = "TASKIQ_SDK_TEST_TASKS"

func serveTasksIfRequested() {
	if os.Getenv(envTasksModule) == "1" {
		sdk.ServeTasks("taskiq-test-tasks", "0.0.1", newTestModule())
		os.Exit(0)
	}
}

// testModule is a hand-written TaskModule: each task exercises one path of
// the Execute stream.
type testModule struct {
	mu      sync.Mutex
	cond    *sync.Cond
	cur     int // executions running now
	maxSeen int
	arrived int // at the gate, in this generation
	gen     int
}

func newTestModule() *testModule {
	m := &testModule{}
	m.cond = sync.NewCond(&m.mu)
	return m
}

func (m *testModule) Tasks() []sdk.TaskInfo {
	return []sdk.TaskInfo{
		{Name: "add", Params: []sdk.ParamInfo{{Name: "a", Type: "integer"}, {Name: "b", Type: "integer"}}, Result: "integer",
			Labels: map[string]any{"queue_name": "math"}},
		{Name: "gate", Params: []sdk.ParamInfo{{Type: "integer"}}, Result: "integer"},
		{Name: "typeerror"}, {Name: "fail"}, {Name: "panic"}, {Name: "big"}, {Name: "wait"},
		{Name: "requeue"}, {Name: "reject"}, {Name: "ack"}, {Name: "call"}, {Name: "exit"}, {Name: "deadline"},
	}
}

type valueError struct{ msg string }

func (e *valueError) Error() string     { return e.msg }
func (e *valueError) ErrorType() string { return "ValueError" }

type typeError struct{ msg string }

func (e *typeError) Error() string     { return e.msg }
func (e *typeError) ErrorType() string { return "TypeError" }

func (m *testModule) Execute(ctx context.Context, msg *wire.Message) (json.RawMessage, error) {
	arg := func(i int, v any) error {
		if i >= len(msg.Args) {
			return &typeError{fmt.Sprintf("%s: missing argument %d", msg.TaskName, i)}
		}
		if err := json.Unmarshal(msg.Args[i], v); err != nil {
			return &typeError{fmt.Sprintf("%s: argument %d: %v", msg.TaskName, i, err)}
		}
		return nil
	}
	switch msg.TaskName {
	case "add":
		var a, b int
		if err := arg(0, &a); err != nil {
			return nil, err
		}
		if err := arg(1, &b); err != nil {
			return nil, err
		}
		return json.Marshal(a + b)
	case "gate":
		// A cyclic barrier of n: every execution waits until n run at
		// once. It reports the most executions it saw running together.
		var n int
		if err := arg(0, &n); err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.cur++
		m.maxSeen = max(m.maxSeen, m.cur)
		gen := m.gen
		m.arrived++
		if m.arrived == n {
			m.arrived = 0
			m.gen++
			m.cond.Broadcast()
		}
		for m.gen == gen {
			m.cond.Wait()
		}
		m.cur--
		seen := m.maxSeen
		m.mu.Unlock()
		return json.Marshal(seen)
	case "typeerror":
		return nil, &typeError{"gate() takes 1 argument"}
	case "fail":
		return nil, fmt.Errorf("charging the card: %w", &valueError{"card declined"})
	case "panic":
		panic("boom")
	case "big":
		var n int
		if err := arg(0, &n); err != nil {
			return nil, err
		}
		return json.Marshal(strings.Repeat("x", n))
	case "deadline":
		// Reports the deadline the host's context carried, to the second.
		dl, ok := ctx.Deadline()
		if !ok {
			return json.Marshal(nil)
		}
		return json.Marshal(dl.Unix())
	case "wait":
		<-ctx.Done()
		return nil, ctx.Err()
	case "wait-and-mark":
		// Waits for its context to end, then creates the file its argument
		// names, so that a test sees the module cancelled the call.
		var path string
		if err := arg(0, &path); err != nil {
			return nil, err
		}
		<-ctx.Done()
		return nil, os.WriteFile(path, []byte(context.Cause(ctx).Error()), 0o600)
	case "requeue":
		return nil, fmt.Errorf("not now: %w", sdk.ErrRequeue)
	case "reject":
		return nil, sdk.ErrReject
	case "ack":
		sdk.TaskCallFrom(ctx).Ack()
		return json.Marshal("acked")
	case "call":
		c := sdk.TaskCallFrom(ctx)
		return json.Marshal(map[string]any{"broker": c.Broker, "delivery": c.DeliveryID, "attempt": c.Attempt})
	case "exit":
		os.Exit(3)
	}
	return nil, fmt.Errorf("unknown task %q", msg.TaskName)
}

func launchModule(t *testing.T, opts ...sdktest.Option) *sdk.Client {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return sdktest.LaunchBinary(t, exe, sdk.KindTasks, "{}", append([]sdktest.Option{sdktest.WithEnv(envTasksModule + "=1")}, opts...)...)
}

func taskMsg(name string, args ...any) *wire.Message {
	m := &wire.Message{TaskID: "id-" + name, TaskName: name, Labels: map[string]any{}}
	for _, a := range args {
		b, _ := json.Marshal(a)
		m.Args = append(m.Args, b)
	}
	return m
}

func closeModule(t *testing.T, m sdk.TaskModule) {
	t.Cleanup(func() { _ = m.(interface{ Close(context.Context) error }).Close(context.Background()) })
}

func TestTaskModuleReportsItsTasksAtConfigure(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	info, err := c.Info(testCtx(t))
	require.NoError(t, err)
	_, ok := info.Role(sdk.KindTasks)
	require.True(t, ok, "Info lists the tasks role")

	m := c.Tasks(0)
	closeModule(t, m)
	tasks := m.Tasks()
	require.Len(t, tasks, 13)
	require.Equal(t, sdk.TaskInfo{
		Name: "add", Labels: map[string]any{"queue_name": "math"}, Result: "integer",
		Params: []sdk.ParamInfo{{Name: "a", Type: "integer"}, {Name: "b", Type: "integer"}},
	}, tasks[0])
}

func TestTaskModuleExecuteStream(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(4)
	closeModule(t, m)
	ctx := testCtx(t)

	t.Run("result", func(t *testing.T) {
		// Many calls share the one stream and each gets its own answer.
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ret, err := m.Execute(ctx, taskMsg("add", i, 1000))
				require.NoError(t, err)
				require.JSONEq(t, fmt.Sprint(i+1000), string(ret))
			}()
		}
		wg.Wait()
	})
	t.Run("task error keeps its type and cause", func(t *testing.T) {
		_, err := m.Execute(ctx, taskMsg("fail"))
		var we *wire.Error
		require.ErrorAs(t, err, &we)
		require.Equal(t, "Error", we.ExcType)
		require.Equal(t, "charging the card: card declined", fmt.Sprint(we.ExcMessage...))
		require.NotNil(t, we.ExcCause)
		require.Equal(t, "ValueError", we.ExcCause.ExcType)
	})
	t.Run("bad arguments are a TypeError", func(t *testing.T) {
		_, err := m.Execute(ctx, taskMsg("add", "one", 2))
		var we *wire.Error
		require.ErrorAs(t, err, &we)
		require.Equal(t, "TypeError", we.ExcType)
		require.Contains(t, we.Error(), "add: argument 0")
	})
	t.Run("panic is an error, the module survives", func(t *testing.T) {
		_, err := m.Execute(ctx, taskMsg("panic"))
		var we *wire.Error
		require.ErrorAs(t, err, &we)
		require.Equal(t, "Panic", we.ExcType)
		require.Contains(t, we.Error(), "boom")
		ret, err := m.Execute(ctx, taskMsg("add", 1, 2))
		require.NoError(t, err)
		require.JSONEq(t, "3", string(ret))
	})
	t.Run("requeue and reject are controls", func(t *testing.T) {
		_, err := m.Execute(ctx, taskMsg("requeue"))
		require.ErrorIs(t, err, sdk.ErrRequeue)
		_, err = m.Execute(ctx, taskMsg("reject"))
		require.ErrorIs(t, err, sdk.ErrReject)
	})
	t.Run("task call crosses both ways", func(t *testing.T) {
		call := &sdk.TaskCall{Broker: "default", DeliveryID: "d-7", Attempt: 2}
		ret, err := m.Execute(sdk.WithTaskCall(ctx, call), taskMsg("call"))
		require.NoError(t, err)
		require.JSONEq(t, `{"broker":"default","delivery":"d-7","attempt":2}`, string(ret))
		require.False(t, call.Acked())
		_, err = m.Execute(sdk.WithTaskCall(ctx, call), taskMsg("ack"))
		require.NoError(t, err)
		require.True(t, call.Acked())
	})
	t.Run("deadline reaches the module", func(t *testing.T) {
		ret, err := m.Execute(ctx, taskMsg("deadline"))
		require.NoError(t, err)
		dl, _ := ctx.Deadline()
		require.JSONEq(t, fmt.Sprint(dl.Unix()), string(ret))

		// A call past its deadline ends with the deadline's error.
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = m.Execute(dctx, taskMsg("wait"))
		require.Error(t, err)
		require.Contains(t, err.Error(), "deadline exceeded")
	})
	t.Run("cancel reaches the module and frees the slot", func(t *testing.T) {
		// More cancelled calls than the window: each slot comes back once
		// the module has stopped the call, or the next calls would hang.
		for range 8 {
			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(5*time.Millisecond, cancel)
			_, err := m.Execute(cctx, taskMsg("wait"))
			require.ErrorIs(t, err, context.Canceled)
		}
		ret, err := m.Execute(ctx, taskMsg("add", 2, 2))
		require.NoError(t, err)
		require.JSONEq(t, "4", string(ret))
	})
}

// TestTaskModuleWindow sends three windows' worth of executions at once to
// tasks that each wait until `window` of them run together: the module sees
// exactly `window` at a time, never more.
func TestTaskModuleWindow(t *testing.T) {
	t.Parallel()
	const window = 5
	c := launchModule(t)
	m := c.Tasks(window)
	closeModule(t, m)
	ctx := testCtx(t)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen []int
	)
	for range 3 * window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ret, err := m.Execute(ctx, taskMsg("gate", window))
			require.NoError(t, err)
			var n int
			require.NoError(t, json.Unmarshal(ret, &n))
			mu.Lock()
			seen = append(seen, n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Len(t, seen, 3*window)
	for _, n := range seen {
		require.Equal(t, window, n, "executions running together in the module")
	}
}

// TestTaskModuleLargeMessages sends a message and gets back a result of
// several MiB, far over HTTP/2's default 64 KiB window: the connections'
// fixed flow-control window (flowWindow) carries them in both directions.
func TestTaskModuleLargeMessages(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(2)
	closeModule(t, m)
	ctx := testCtx(t)
	const n = 6 << 20
	ret, err := m.Execute(ctx, taskMsg("add", 1, 2, strings.Repeat("p", n)))
	require.NoError(t, err)
	require.JSONEq(t, "3", string(ret))
	ret, err = m.Execute(ctx, taskMsg("big", n))
	require.NoError(t, err)
	require.Len(t, ret, n+2)
	require.Equal(t, `"`+strings.Repeat("x", n)+`"`, string(ret))
}

func TestTaskModuleOversize(t *testing.T) {
	t.Parallel()
	const limit = 4 << 10
	c := launchModule(t, sdktest.WithMaxMessageSize(limit))
	m := c.Tasks(2)
	closeModule(t, m)
	ctx := testCtx(t)

	_, err := m.Execute(ctx, taskMsg("add", strings.Repeat("y", limit), 1))
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge, "a message over the limit is refused before it is sent")

	_, err = m.Execute(ctx, taskMsg("big", limit+1))
	var we *wire.Error
	require.ErrorAs(t, err, &we, "a result over the limit is the task's error")
	require.Contains(t, we.Error(), "max_message_size")

	ret, err := m.Execute(ctx, taskMsg("big", 10))
	require.NoError(t, err)
	require.JSONEq(t, `"xxxxxxxxxx"`, string(ret))
}

func TestTaskModuleDeathFailsPendingCalls(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(4)
	closeModule(t, m)
	ctx := testCtx(t)

	waiting := make(chan error, 1)
	go func() {
		_, err := m.Execute(ctx, taskMsg("wait"))
		waiting <- err
	}()
	_, err := m.Execute(ctx, taskMsg("exit"))
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.ErrorIs(t, <-waiting, sdk.ErrUnavailable, "a call pending on the dead module fails too")
	require.Eventually(t, c.Exited, 5*time.Second, 10*time.Millisecond)
}

// TestTaskModuleCloseCancelsRunningCalls closes the Execute stream while a
// call runs in the module: the module cancels the call's context.
func TestTaskModuleCloseCancelsRunningCalls(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(4)
	ctx := testCtx(t)
	mark := filepath.Join(t.TempDir(), "cancelled")
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Execute(ctx, taskMsg("wait-and-mark", mark))
		waiting <- err
	}()
	// A call answered on the stream shows the stream is open; the waiting
	// call was sent before it (the window is not full).
	_, err := m.Execute(ctx, taskMsg("add", 1, 1))
	require.NoError(t, err)
	require.NoError(t, m.(interface{ Close(context.Context) error }).Close(ctx))
	<-waiting // it ends with the module's answer or with the closed stream
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(mark)
		return err == nil && string(b) == context.Canceled.Error()
	}, 10*time.Second, 5*time.Millisecond, "the module cancelled the running call when the stream closed")
}

func TestTaskModuleClose(t *testing.T) {
	t.Parallel()
	c := launchModule(t)
	m := c.Tasks(4)
	ctx := testCtx(t)
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Execute(ctx, taskMsg("wait"))
		waiting <- err
	}()
	// A call answered on the stream shows the stream is open.
	_, err := m.Execute(ctx, taskMsg("add", 1, 1))
	require.NoError(t, err)
	require.NoError(t, m.(interface{ Close(context.Context) error }).Close(ctx))
	err = <-waiting
	require.Error(t, err, "a running call ends when the module is closed")
	_, err = m.Execute(ctx, taskMsg("add", 1, 1))
	require.ErrorIs(t, err, sdk.ErrClosed)
}

// BenchmarkTaskModuleExecute is the cost of the process hop to a task
// module: 256 callers at once (a worker's max_async_tasks) run a no-op-sized
// task through one Execute stream. It reports the CPU both processes spent
// per call; TASKIQ_BENCH_PLUGIN_CPUPROFILE=path profiles the module.
func BenchmarkTaskModuleExecute(b *testing.B) {
	exe, err := os.Executable()
	require.NoError(b, err)
	opts := []sdktest.Option{sdktest.WithEnv(envTasksModule + "=1")}
	if p := os.Getenv("TASKIQ_BENCH_PLUGIN_CPUPROFILE"); p != "" {
		opts = append(opts, sdktest.WithEnv(sdk.EnvCPUProfile+"="+p))
	}
	c := sdktest.LaunchBinary(b, exe, sdk.KindTasks, "{}", opts...)
	m := c.Tasks(256)
	defer func() { _ = m.(interface{ Close(context.Context) error }).Close(context.Background()) }()
	msg := taskMsg("add", 1, 2)
	body, err := msg.AppendJSON(nil)
	require.NoError(b, err)
	hostCPU, moduleCPU := processCPU(b, os.Getpid()), processCPU(b, c.Pid())
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx := sdk.WithTaskCall(context.Background(), &sdk.TaskCall{Body: body})
			if _, err := m.Execute(ctx, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric((processCPU(b, os.Getpid())-hostCPU).Seconds()*1e6/float64(b.N), "host-cpu-µs/call")
	b.ReportMetric((processCPU(b, c.Pid())-moduleCPU).Seconds()*1e6/float64(b.N), "module-cpu-µs/call")
}
