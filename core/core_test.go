package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

type testBundle struct {
	app     *core.App
	broker  *inmemory.Broker
	results *inmemory.ResultBackend
}

func brokerCaps() []string {
	return inmemory.Plugin().Broker.Capabilities
}

func setup(t *testing.T, opts ...core.Option) *testBundle {
	t.Helper()
	b := &testBundle{
		broker:  inmemory.NewBroker(inmemory.BrokerOptions{}),
		results: inmemory.NewResultBackend(inmemory.ResultOptions{}),
	}
	base := []core.Option{
		core.WithBroker("default", b.broker, brokerCaps()...),
		core.WithResultBackend(b.results, sdk.CapWait, sdk.CapProgress),
		core.WithLogger(hclog.NewNullLogger()),
	}
	app, err := core.New(append(base, opts...)...)
	require.NoError(t, err)
	b.app = app
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	return b
}

// runWorker starts a worker and returns once it listens; cleanup stops it
// and waits for it to return.
func (b *testBundle) runWorker(t *testing.T, o core.WorkerOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	o.Ready = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- b.app.RunWorker(ctx, o) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker stopped before listening: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func wait[R any](t *testing.T, at *core.AsyncTask[R]) *core.Result[R] {
	t.Helper()
	res, err := at.WaitResult(context.Background(), 10*time.Second)
	require.NoError(t, err)
	return res
}

func TestRoundTripReturnsTypedValue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	add := core.MustTask[int](b.app, "math.add", func(a, c int) (int, error) { return a + c, nil })
	b.runWorker(t, core.WorkerOptions{})
	at, err := add.Kiq(context.Background(), 1, 2)
	require.NoError(t, err)
	require.Len(t, at.TaskID, 32)
	res := wait(t, at)
	v, err := res.Value()
	require.NoError(t, err)
	require.Equal(t, 3, v)
	require.False(t, res.IsErr)
}

type quotaError struct{ left int }

func (e *quotaError) Error() string     { return fmt.Sprintf("quota exhausted (%d left)", e.left) }
func (e *quotaError) ErrorType() string { return "QuotaError" }

func TestFailingTaskRecordsErrorPerWire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := &quotaError{left: 0}
	fail := core.MustTask[string](b.app, "billing.charge", func(ctx context.Context, id string) (string, error) {
		return "", fmt.Errorf("charge %s: %w", id, base)
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := fail.Kiq(context.Background(), "c-1")
	require.NoError(t, err)
	res := wait(t, at)
	require.True(t, res.IsErr)
	_, verr := res.Value()
	require.Error(t, verr)
	require.Equal(t, "Error", res.Error.ExcType)
	require.Equal(t, "fmt", res.Error.ExcModule)
	require.Equal(t, []any{"charge c-1: quota exhausted (0 left)"}, res.Error.ExcMessage)
	require.NotNil(t, res.Error.ExcCause)
	require.Equal(t, "QuotaError", res.Error.ExcCause.ExcType)
	var we *wire.Error
	require.ErrorAs(t, verr, &we)
}

func TestContextGivesMessageLabelsAndState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.app.State().Set("region", "eu")
	type seen struct {
		TaskID, Region, Tenant, Broker string
	}
	who := core.MustTask[seen](b.app, "ctx.who", func(ctx context.Context) (seen, error) {
		tc := core.ContextFrom(ctx)
		region, _ := core.StateValue[string](tc.State(), "region")
		tenant, _ := tc.Message.LabelString("tenant")
		return seen{tc.Message.TaskID, region, tenant, tc.BrokerName}, nil
	}, core.WithLabels(map[string]any{"tenant": "acme"}))
	b.runWorker(t, core.WorkerOptions{})
	at, err := who.Kicker().WithTaskID("fixed-id").WithLabels(map[string]any{"extra": 7}).Kiq(context.Background())
	require.NoError(t, err)
	require.Equal(t, "fixed-id", at.TaskID)
	res := wait(t, at)
	require.Equal(t, seen{"fixed-id", "eu", "acme", "default"}, res.ReturnValue)
	require.EqualValues(t, 7, res.Labels["extra"])
	require.Nil(t, core.ContextFrom(context.Background()))
}

func TestTimeoutLabelFailsTheTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	slow := core.MustTask[int](b.app, "slow", func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := slow.Kicker().WithLabels(map[string]any{"timeout": 0.05}).Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.True(t, res.IsErr)
	require.Equal(t, "TaskiqResultTimeoutError", res.Error.ExcType)
}

func TestPanicBecomesErrorResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	boom := core.MustTask[int](b.app, "boom", func() (int, error) { panic("kaboom") })
	b.runWorker(t, core.WorkerOptions{})
	at, err := boom.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.True(t, res.IsErr)
	require.Equal(t, "Panic", res.Error.ExcType)
	require.Contains(t, res.Error.Error(), "kaboom")
}

func TestRequeueSendsTheMessageAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var requeues []int64
	task := core.MustTask[int64](b.app, "requeue.me", func(ctx context.Context) (int64, error) {
		tc := core.ContextFrom(ctx)
		n, _ := tc.Message.LabelInt(wire.LabelRequeue)
		mu.Lock()
		requeues = append(requeues, n)
		mu.Unlock()
		if n < 2 {
			return 0, tc.Requeue()
		}
		return n, nil
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.EqualValues(t, 2, res.ReturnValue)
	mu.Lock()
	require.Equal(t, []int64{0, 1, 2}, requeues)
	mu.Unlock()
	require.Empty(t, b.broker.DeadLetters())
}

func TestRejectDeadLettersWithoutResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "reject.me", func(ctx context.Context) (int, error) {
		return 0, core.ContextFrom(ctx).Reject()
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "rejected by the task", b.broker.DeadLetters()[0].Reason)
	ready, err := at.IsReady(context.Background())
	require.NoError(t, err)
	require.False(t, ready)
}

func TestBadInputGoesToDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithMaxMessageSize(1024))
	var ran atomic.Int32
	core.MustTask[int](b.app, "typed", func(n int) (int, error) { ran.Add(1); return n, nil })
	b.runWorker(t, core.WorkerOptions{})
	cases := map[string]struct{ body, reason string }{
		"garbage":   {"\x00garbage", "unparseable message"},
		"truncated": {`{"task_id":"t","task_name":"typed","labels":{}`, "unparseable message"},
		"args type": {`{"task_id":"w","task_name":"typed","labels":{},"args":{"a":1},"kwargs":{}}`, "unparseable message"},
		"name type": {`{"task_id":"n","task_name":7,"labels":{},"args":[],"kwargs":{}}`, "unparseable message"},
		"labels":    {`{"task_id":"l","task_name":"typed","labels":[1,2],"args":[1],"kwargs":{}}`, "unparseable message"},
		"no name":   {`{"task_id":"x","labels":{},"args":[],"kwargs":{}}`, "task_name is missing"},
		"unknown":   {`{"task_id":"u","task_name":"nobody.home","labels":{},"args":[],"kwargs":{}}`, `unknown task name "nobody.home"`},
		"bad arg":   {`{"task_id":"a","task_name":"typed","labels":{},"args":["not a number"],"kwargs":{}}`, "argument 0"},
		"extra arg": {`{"task_id":"e","task_name":"typed","labels":{},"args":[1,2],"kwargs":{}}`, "takes 1 arguments"},
		"oversize":  {`{"task_id":"o","task_name":"typed","labels":{},"args":["` + strings.Repeat("x", 2048) + `"],"kwargs":{}}`, "over max_message_size"},
	}
	var out []sdk.Outgoing
	for _, c := range cases {
		out = append(out, sdk.Outgoing{Body: []byte(c.body)})
	}
	require.NoError(t, b.broker.Kick(context.Background(), out))
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == len(cases) }, 10*time.Second, 5*time.Millisecond)
	for name, c := range cases {
		found := false
		for _, d := range b.broker.DeadLetters() {
			if string(d.Body) == c.body {
				found = true
				require.Contains(t, d.Reason, c.reason, name)
			}
		}
		require.True(t, found, "%s: not dead-lettered with its original bytes", name)
	}
	require.Zero(t, ran.Load(), "no bad message may run")
	// The bad-arguments task also stores an error result for its waiter.
	res := wait(t, core.ResultOf[int](b.app, "a"))
	require.True(t, res.IsErr)
	require.Equal(t, "TypeError", res.Error.ExcType)
}

// TestHostileLabelsDoNotStopTheWorker: labels with absurd values are ignored
// where they would have a meaning; the task runs and the worker goes on.
func TestHostileLabelsDoNotStopTheWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "typed", func(n int) (int, error) { return n, nil })
	b.runWorker(t, core.WorkerOptions{})
	hostile := []map[string]any{
		{"timeout": "NaN", "delay": "-1e309", "priority": "99999999999999999999"},
		{"timeout": -5, "ack_type": "<script>", "queue_name": ""},
		{"X-Taskiq-requeue": "many", "max_retries": []any{1}, "_retries": map[string]any{"a": 1}},
		{"delay": 1e300, "timeout": 1e300},
	}
	for i, labels := range hostile {
		at, err := task.Kicker().WithLabels(labels).Kiq(context.Background(), i)
		require.NoError(t, err)
		if _, huge := labels["delay"].(float64); huge {
			// A delay of 1e300 s is held as long as a delay can be, not run now.
			require.Equal(t, 1, b.broker.Delayed())
			continue
		}
		require.Equal(t, i, wait(t, at).ReturnValue)
	}
	// A Python producer's typed labels that do not parse as their type.
	body := `{"task_id": "py", "task_name": "typed", "labels": {"timeout": "soon", "delay": "x"}, "labels_types": {"timeout": 4, "delay": 4}, "args": [7], "kwargs": {}}`
	require.NoError(t, b.broker.Kick(context.Background(), []sdk.Outgoing{{Body: []byte(body)}}))
	require.Equal(t, 7, wait(t, core.ResultOf[int](b.app, "py")).ReturnValue)
}

// gatedResults blocks result writes until released, to observe when acks happen.
type gatedResults struct {
	*inmemory.ResultBackend
	entered chan struct{}
	release chan struct{}
}

func (g *gatedResults) SetResults(ctx context.Context, rs []sdk.StoredResult) error {
	g.entered <- struct{}{}
	<-g.release
	return g.ResultBackend.SetResults(ctx, rs)
}

func TestAckTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ack              core.AckType
		inFlightWhileRun int
		inFlightOnSave   int
	}{
		{core.AckWhenReceived, 0, 0},
		{core.AckWhenExecuted, 1, 0},
		{core.AckWhenSaved, 1, 1},
	}
	for _, tc := range cases {
		t.Run(string(tc.ack), func(t *testing.T) {
			t.Parallel()
			gr := &gatedResults{inmemory.NewResultBackend(inmemory.ResultOptions{}), make(chan struct{}), make(chan struct{})}
			broker := inmemory.NewBroker(inmemory.BrokerOptions{})
			app, err := core.New(core.WithBroker("default", broker, brokerCaps()...), core.WithResultBackend(gr), core.WithLogger(hclog.NewNullLogger()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = app.Close(context.Background()) })
			b := &testBundle{app: app, broker: broker}
			running, finish := make(chan struct{}), make(chan struct{})
			task := core.MustTask[int](app, "ack.probe", func() (int, error) {
				close(running)
				<-finish
				return 1, nil
			})
			b.runWorker(t, core.WorkerOptions{AckType: tc.ack})
			_, err = task.Kiq(context.Background())
			require.NoError(t, err)
			<-running
			require.Eventually(t, func() bool { return broker.InFlight() == tc.inFlightWhileRun }, 5*time.Second, time.Millisecond)
			close(finish)
			<-gr.entered
			require.Eventually(t, func() bool { return broker.InFlight() == tc.inFlightOnSave }, 5*time.Second, time.Millisecond)
			close(gr.release)
			require.Eventually(t, func() bool { return broker.InFlight() == 0 && broker.Len("") == 0 }, 5*time.Second, time.Millisecond)
		})
	}
}

func TestManualAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	attempts := 0
	task := core.MustTask[int](b.app, "manual", func(ctx context.Context) (int, error) {
		tc := core.ContextFrom(ctx)
		mu.Lock()
		attempts++
		n := attempts
		mu.Unlock()
		if n == 1 {
			return 0, nil // forgot to ack: the message comes back
		}
		require.Equal(t, 2, tc.Delivery.Attempt)
		return n, tc.Ack()
	})
	b.runWorker(t, core.WorkerOptions{AckType: core.AckManual})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		res, err := at.GetResult(context.Background())
		return err == nil && res.ReturnValue == 2
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return b.broker.InFlight() == 0 && b.broker.Len("") == 0 }, 5*time.Second, time.Millisecond)
}

func TestDummyResultBackendSaysSo(t *testing.T) {
	t.Parallel()
	broker := inmemory.NewBroker(inmemory.BrokerOptions{})
	app, err := core.New(core.WithBroker("default", broker))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	task := core.MustTask[int](app, "noop", func() (int, error) { return 1, nil })
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	_, err = at.GetResult(context.Background())
	require.ErrorIs(t, err, core.ErrNoResultBackend)
	_, err = at.WaitResult(context.Background(), time.Second)
	require.ErrorIs(t, err, core.ErrNoResultBackend)
}

func TestRegistrationChecksTypesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := core.NewTask[string](b.app, "wrong", func() (int, error) { return 0, nil })
	require.ErrorContains(t, err, "returns int but the task was declared with result type string")
	_, err = core.NewTask[int](b.app, "noerr", func() int { return 0 })
	require.ErrorContains(t, err, "must return (R, error) or error")
	_, err = core.NewTask[int](b.app, "chan", func(c chan int) error { return nil })
	require.ErrorContains(t, err, "cannot be encoded as JSON")
	ok := core.MustTask[int](b.app, "ok", func(a int, s string) (int, error) { return a, nil })
	_, err = core.NewTask[int](b.app, "ok", func() (int, error) { return 0, nil })
	require.ErrorIs(t, err, core.ErrDuplicateTask)
	_, err = ok.Kiq(context.Background(), 1)
	require.ErrorIs(t, err, core.ErrBadArguments)
	_, err = ok.Kiq(context.Background(), "x", "y")
	require.ErrorIs(t, err, core.ErrBadArguments)
	_, err = ok.Kicker().WithBroker("nope").Kiq(context.Background(), 1, "y")
	require.ErrorIs(t, err, core.ErrUnknownBroker)
}

func TestKwargsReachNamedParameters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	core.MustTask[string](b.app, "greet", func(name string, excited bool) (string, error) {
		if excited {
			return "hello " + name + "!", nil
		}
		return "hello " + name, nil
	}, core.WithParamNames("name", "excited"))
	b.runWorker(t, core.WorkerOptions{})
	body := `{"task_id": "py1", "task_name": "greet", "labels": {"x": "1"}, "labels_types": {"x": 2}, "args": ["ada"], "kwargs": {"excited": true}}`
	require.NoError(t, b.broker.Kick(context.Background(), []sdk.Outgoing{{TaskID: "py1", Body: []byte(body)}}))
	res := wait(t, core.ResultOf[string](b.app, "py1"))
	require.Equal(t, "hello ada!", res.ReturnValue)
	require.EqualValues(t, 1, res.Labels["x"])
}

type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// allHooks implements the six hooks and records every call.
type allHooks struct {
	name string
	rec  *recorder
}

func (m allHooks) PreSend(_ context.Context, msg *wire.Message) error {
	m.rec.add(m.name + ".pre_send")
	msg.SetLabel("seen_by_"+m.name, true)
	return nil
}
func (m allHooks) PostSend(context.Context, *wire.Message) error {
	m.rec.add(m.name + ".post_send")
	return nil
}
func (m allHooks) PreExecute(context.Context, *wire.Message) error {
	m.rec.add(m.name + ".pre_execute")
	return nil
}
func (m allHooks) OnError(context.Context, *wire.Message, *wire.Result, error) error {
	m.rec.add(m.name + ".on_error")
	return nil
}
func (m allHooks) PostExecute(context.Context, *wire.Message, *wire.Result) error {
	m.rec.add(m.name + ".post_execute")
	return nil
}
func (m allHooks) PostSave(context.Context, *wire.Message, *wire.Result) error {
	m.rec.add(m.name + ".post_save")
	return nil
}

// preOnly declares one hook; the chain must call nothing else on it.
type preOnly struct{ rec *recorder }

func (m preOnly) PreExecute(context.Context, *wire.Message) error {
	m.rec.add("pre.pre_execute")
	return nil
}

func TestMiddlewareOrderFollowsTaskiq(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, core.WithMiddleware(allHooks{"a", rec}, preOnly{rec}, allHooks{"b", rec}))
	fail := core.MustTask[int](b.app, "mw.fail", func() (int, error) { return 0, errors.New("no") })
	b.runWorker(t, core.WorkerOptions{})
	at, err := fail.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.Equal(t, true, res.Labels["seen_by_a"])
	require.Equal(t, true, res.Labels["seen_by_b"])
	require.Eventually(t, func() bool { return len(rec.get()) == 13 }, 5*time.Second, time.Millisecond)
	// Client and worker hooks are each ordered; the sides run concurrently.
	var client, worker []string
	for _, h := range rec.get() {
		if strings.HasSuffix(h, "_send") {
			client = append(client, h)
		} else {
			worker = append(worker, h)
		}
	}
	require.Equal(t, []string{"a.pre_send", "b.pre_send", "b.post_send", "a.post_send"}, client)
	require.Equal(t, []string{
		"a.pre_execute", "pre.pre_execute", "b.pre_execute",
		"b.on_error", "a.on_error", "b.post_execute", "a.post_execute",
		"b.post_save", "a.post_save",
	}, worker)
}

// noResultOnError skips saving failed results, as a retry middleware does.
type noResultOnError struct{}

func (noResultOnError) OnError(context.Context, *wire.Message, *wire.Result, error) error {
	return sdk.ErrNoResult
}

func TestOnErrorCanSkipTheResult(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithMiddleware(noResultOnError{}))
	fail := core.MustTask[int](b.app, "skip", func() (int, error) { return 0, errors.New("no") })
	b.runWorker(t, core.WorkerOptions{})
	at, err := fail.Kiq(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.broker.InFlight() == 0 && b.broker.Len("") == 0 }, 5*time.Second, time.Millisecond)
	ready, err := at.IsReady(context.Background())
	require.NoError(t, err)
	require.False(t, ready)
}

type conn struct {
	id     int
	closed *[]int
	mu     *sync.Mutex
}

func TestDependenciesAndEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var closed []int
	next := 0
	b.app.OnEvent(core.EventWorkerStartup, func(ctx context.Context, s *core.State) error {
		s.Set("pool", "ready")
		return nil
	})
	shutdown := make(chan struct{})
	b.app.OnEvent(core.EventWorkerShutdown, func(ctx context.Context, s *core.State) error {
		close(shutdown)
		return nil
	})
	core.Provide(b.app, func(ctx context.Context) (*conn, func(), error) {
		mu.Lock()
		next++
		c := &conn{id: next, closed: &closed, mu: &mu}
		mu.Unlock()
		return c, func() { mu.Lock(); closed = append(closed, c.id); mu.Unlock() }, nil
	})
	type out struct {
		Same bool
		Pool string
	}
	task := core.MustTask[out](b.app, "deps", func(ctx context.Context) (out, error) {
		c1, err := core.Use[*conn](ctx)
		if err != nil {
			return out{}, err
		}
		c2, _ := core.Use[*conn](ctx)
		pool, _ := core.StateValue[string](core.ContextFrom(ctx).State(), "pool")
		_, missing := core.Use[int](ctx)
		if !errors.Is(missing, core.ErrNoProvider) {
			return out{}, fmt.Errorf("want ErrNoProvider, got %v", missing)
		}
		return out{c1 == c2, pool}, nil
	})
	stop := b.runWorker(t, core.WorkerOptions{})
	for i := 0; i < 2; i++ {
		at, err := task.Kiq(context.Background())
		require.NoError(t, err)
		require.Equal(t, out{true, "ready"}, wait(t, at).ReturnValue)
	}
	mu.Lock()
	require.ElementsMatch(t, []int{1, 2}, closed, "one dependency per task run, each cleaned up")
	mu.Unlock()
	stop()
	<-shutdown
}

func TestGracefulShutdownDrainsRunningTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	task := core.MustTask[string](b.app, "drain", func() (string, error) {
		close(started)
		<-release
		return "finished", nil
	})
	stop := b.runWorker(t, core.WorkerOptions{ShutdownTimeout: time.Minute})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the worker returned while a task was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	res, err := at.GetResult(context.Background())
	require.NoError(t, err)
	require.Equal(t, "finished", res.ReturnValue)
}

func TestShutdownTimeoutLeavesMessageForRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan struct{})
	task := core.MustTask[int](b.app, "stuck", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	stop := b.runWorker(t, core.WorkerOptions{ShutdownTimeout: 20 * time.Millisecond, AckType: core.AckWhenSaved})
	_, err := task.Kiq(context.Background())
	require.NoError(t, err)
	<-started
	stop()
	// The cancelled task's message was not acked: it is back in the queue.
	require.Eventually(t, func() bool { return b.broker.Len("") == 1 }, 5*time.Second, time.Millisecond)
}

func TestProgress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "progress", func(ctx context.Context) (int, error) {
		return 1, core.ContextFrom(ctx).SetProgress(ctx, wire.StateStarted, map[string]any{"pct": 50})
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	wait(t, at)
	p, err := at.GetProgress(context.Background())
	require.NoError(t, err)
	require.Equal(t, wire.StateStarted, p.State)
	require.EqualValues(t, 50, p.Meta["pct"])
}

func TestDelayLabelPostponesDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "later", func() (int, error) { return 1, nil })
	at, err := task.Kicker().WithLabels(map[string]any{"delay": 3600}).Kiq(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, b.broker.Delayed())
	ready, err := at.IsReady(context.Background())
	require.NoError(t, err)
	require.False(t, ready)
}

func TestOversizeMessageIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithMaxMessageSize(1024))
	task := core.MustTask[int](b.app, "big", func(s string) (int, error) { return len(s), nil })
	_, err := task.Kiq(context.Background(), string(make([]byte, 2048)))
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
	require.Equal(t, 0, b.broker.Len(""))
}

// TestLeaseIsExtendedWhileTheTaskRuns runs a task through several of the
// broker's (short) leases: without extensions the broker would redeliver it
// and it would run twice. The worker's clock is a fake one, moved a tick of
// the extender at a time; the test keeps the broker's view of the lease
// (renewed by each extension) and checks it never runs out.
func TestLeaseIsExtendedWhileTheTaskRuns(t *testing.T) {
	t.Parallel()
	const lease = 100 * time.Millisecond
	clk := core.NewFakeClock()
	st := newScriptedStream()
	app, _, _ := scriptedApp(t, st, core.WithClock(clk))
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	core.MustTask[int32](app, "long", func() (int32, error) {
		n := runs.Add(1)
		close(started)
		<-release
		return n, nil
	})
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{}) // no Lease option: the broker's lease is used
	brokerDeadline := clk.Now().Add(lease)
	st.deliveries <- delivery(t, "1-0", "long", 1, brokerDeadline)
	<-started
	// The extender ticks at a quarter of the shortest lease once it saw it.
	n := 0
	for ; nextAfter(t, clk, n) != lease/4; n++ {
	}
	extends := 0
	for extends < 5 {
		n = len(clk.Afters())
		clk.Advance(lease / 4)
		nextAfter(t, clk, n) // the extender ran its tick and waits again
		for _, ext := range st.settledOf("1-0")[extends:] {
			require.Equal(t, sdk.SettleExtend, ext.Kind)
			brokerDeadline = clk.Now().Add(ext.Delay)
			extends++
		}
		require.True(t, clk.Now().Before(brokerDeadline), "the lease ran out: the broker would have redelivered the message while its task ran")
	}
	require.EqualValues(t, 1, runs.Load(), "the message was redelivered while its task ran")
	close(release)
	require.Eventually(t, func() bool { return slices.Contains(st.kinds("1-0"), sdk.SettleAck) }, 10*time.Second, time.Millisecond)
	require.EqualValues(t, 1, runs.Load())
}

// TestTaskSlotIsFreeWhileTheResultIsSaved: with one task slot, a second task
// starts while the first one's result is still being saved.
func TestTaskSlotIsFreeWhileTheResultIsSaved(t *testing.T) {
	t.Parallel()
	gr := &gatedResults{inmemory.NewResultBackend(inmemory.ResultOptions{}), make(chan struct{}, 2), make(chan struct{})}
	broker := inmemory.NewBroker(inmemory.BrokerOptions{})
	app, err := core.New(core.WithBroker("default", broker, brokerCaps()...), core.WithResultBackend(gr), core.WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	b := &testBundle{app: app, broker: broker}
	started := make(chan int, 2)
	task := core.MustTask[int](app, "n", func(n int) (int, error) { started <- n; return n, nil })
	b.runWorker(t, core.WorkerOptions{MaxAsyncTasks: 1})
	first, err := task.Kiq(context.Background(), 1)
	require.NoError(t, err)
	require.Equal(t, 1, <-started)
	<-gr.entered // the first result's save is in progress, and held
	second, err := task.Kiq(context.Background(), 2)
	require.NoError(t, err)
	select {
	case n := <-started:
		require.Equal(t, 2, n)
	case <-time.After(10 * time.Second):
		t.Fatal("the second task did not start while the first result was being saved")
	}
	close(gr.release)
	require.Equal(t, 1, wait(t, first).ReturnValue)
	require.Equal(t, 2, wait(t, second).ReturnValue)
}

// flakyResults fails its first writes, as a backend that is restarting.
type flakyResults struct {
	*inmemory.ResultBackend
	failures atomic.Int32
}

func (f *flakyResults) SetResults(ctx context.Context, rs []sdk.StoredResult) error {
	if f.failures.Add(-1) >= 0 {
		return fmt.Errorf("backend restarting: %w", sdk.ErrUnavailable)
	}
	return f.ResultBackend.SetResults(ctx, rs)
}

// TestResultSaveIsRetriedBeforeRunningTheTaskAgain: a result write that
// fails for a moment is retried; the task is not run a second time.
func TestResultSaveIsRetriedBeforeRunningTheTaskAgain(t *testing.T) {
	t.Parallel()
	fr := &flakyResults{ResultBackend: inmemory.NewResultBackend(inmemory.ResultOptions{})}
	fr.failures.Store(2)
	broker := inmemory.NewBroker(inmemory.BrokerOptions{})
	app, err := core.New(core.WithBroker("default", broker, brokerCaps()...), core.WithResultBackend(fr), core.WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	b := &testBundle{app: app, broker: broker}
	var runs atomic.Int32
	task := core.MustTask[int32](app, "once", func() (int32, error) { return runs.Add(1), nil })
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, wait(t, at).ReturnValue)
	require.EqualValues(t, 1, runs.Load())
	require.Eventually(t, func() bool { return broker.InFlight() == 0 && broker.Len("") == 0 }, 5*time.Second, time.Millisecond)
}
