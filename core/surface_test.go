package core_test

import (
	"context"
	"encoding/json"
	"strings"
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

// TestContextReachesTheApp: inside a task, the Context gives the App, the
// labels, the broker the message came from and the shared state.
func TestContextReachesTheApp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.app.State().Set("greeting", "hi")
	type seen struct {
		SameApp, SameBroker bool
		Label, Greeting     string
	}
	task := core.MustTask[seen](b.app, "ctx.probe", func(ctx context.Context) (seen, error) {
		tc := core.ContextFrom(ctx)
		g, _ := core.StateValue[string](tc.State(), "greeting")
		l, _ := tc.Labels()["probe"].(string)
		return seen{SameApp: tc.App() == b.app, SameBroker: tc.Broker() == sdk.Broker(b.broker), Label: l, Greeting: g}, nil
	})
	require.Equal(t, "ctx.probe", task.Name())
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kicker().WithLabels(map[string]any{"probe": "yes"}).Kiq(context.Background())
	require.NoError(t, err)
	require.Equal(t, seen{true, true, "yes", "hi"}, wait(t, at).ReturnValue)
	require.Nil(t, core.ContextFrom(context.Background()), "no task Context outside a task")

	require.NotNil(t, b.app.Logger())
	caps, err := b.app.BrokerCapabilities("")
	require.NoError(t, err)
	require.Equal(t, brokerCaps(), caps)
	_, err = b.app.BrokerCapabilities("nope")
	require.ErrorIs(t, err, core.ErrUnknownBroker)
}

// TestStartAndCloseFireClientEventsOnce: Start fires client startup once
// however often it is called; Close fires client shutdown only after Start.
func TestStartAndCloseFireClientEventsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var startups, shutdowns atomic.Int32
	b.app.OnEvent(core.EventClientStartup, func(context.Context, *core.State) error { startups.Add(1); return nil })
	b.app.OnEvent(core.EventClientShutdown, func(context.Context, *core.State) error { shutdowns.Add(1); return nil })
	require.NoError(t, b.app.Start(context.Background()))
	require.NoError(t, b.app.Start(context.Background()))
	require.EqualValues(t, 1, startups.Load())
	require.NoError(t, b.app.Close(context.Background()))
	require.EqualValues(t, 1, shutdowns.Load())
	require.NoError(t, b.app.Close(context.Background()))
	require.EqualValues(t, 1, shutdowns.Load(), "a second Close without Start fires nothing")
}

// TestWorkerWithoutResultBackend: tasks run and are acked without a result
// backend; reading results, readiness or progress says there is none.
func TestWorkerWithoutResultBackend(t *testing.T) {
	t.Parallel()
	broker := inmemory.NewBroker(inmemory.BrokerOptions{})
	app, err := core.New(core.WithBroker("default", broker, brokerCaps()...), core.WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	ran := make(chan error, 1)
	task := core.MustTask[int](app, "noresult", func(ctx context.Context) (int, error) {
		ran <- core.ContextFrom(ctx).SetProgress(ctx, wire.StateStarted, nil)
		return 1, nil
	})
	(&testBundle{app: app, broker: broker}).runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.NoError(t, <-ran, "progress goes nowhere without a backend, silently")
	require.Eventually(t, func() bool { return broker.InFlight() == 0 && broker.Len("") == 0 }, 10*time.Second, time.Millisecond)
	_, err = at.IsReady(context.Background())
	require.ErrorIs(t, err, core.ErrNoResultBackend)
	_, err = at.GetProgress(context.Background())
	require.ErrorIs(t, err, core.ErrNoResultBackend)
}

// pollOnly hides the backend's WaitResult, as a backend without the wait
// capability has none.
type pollOnly struct{ sdk.ResultBackend }

// TestWaitResultPollsABackendThatCannotWait: without WaitResult, waiting
// for a result polls for it, and gives up when the timeout passes.
func TestWaitResultPollsABackendThatCannotWait(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithResultBackend(pollOnly{inmemory.NewResultBackend(inmemory.ResultOptions{})}))
	task := core.MustTask[int](b.app, "polled", func(n int) (int, error) { return n * 2, nil })
	at, err := task.Kiq(context.Background(), 21)
	require.NoError(t, err)
	_, err = at.WaitResult(context.Background(), 20*time.Millisecond)
	require.ErrorIs(t, err, core.ErrTimeout, "no worker yet: the wait times out")
	b.runWorker(t, core.WorkerOptions{})
	require.Equal(t, 42, wait(t, at).ReturnValue)
}

// TestOversizeResultIsStoredAsAnError: a return value over max_message_size
// is stored as an error saying so, not dropped.
func TestOversizeResultIsStoredAsAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithMaxMessageSize(1024))
	task := core.MustTask[string](b.app, "big.result", func() (string, error) { return strings.Repeat("x", 2048), nil })
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.True(t, res.IsErr)
	require.Contains(t, res.Error.Error(), "is over max_message_size (1024)")
}

// TestUnexpectedKeywordArgumentDeadLetters: a keyword the task does not take
// dead-letters the message with the keyword's name.
func TestUnexpectedKeywordArgumentDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	core.MustTask[int](b.app, "kw", func(a int) (int, error) { return a, nil }, core.WithParamNames("a"))
	b.runWorker(t, core.WorkerOptions{})
	_, err := b.app.KickByName(context.Background(), core.RawKick{TaskName: "kw",
		Kwargs: map[string]json.RawMessage{"a": json.RawMessage("1"), "zz": json.RawMessage("2")}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == 1 }, 10*time.Second, time.Millisecond)
	require.Contains(t, b.broker.DeadLetters()[0].Reason, `unexpected keyword argument "zz"`)
}

// TestFailedRequeueReturnsTheMessage: when kicking the requeued copy fails,
// the delivery is nacked, so the message is not lost.
func TestFailedRequeueReturnsTheMessage(t *testing.T) {
	t.Parallel()
	st := newScriptedStream()
	app, _, logs := scriptedApp(t, st) // the scripted broker refuses kicks
	core.MustTask[int](app, "again", func(ctx context.Context) (int, error) { return 0, core.ContextFrom(ctx).Requeue() })
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	st.deliveries <- delivery(t, "1-0", "again", 1, time.Time{})
	require.Eventually(t, func() bool { return len(st.kinds("1-0")) == 1 }, 10*time.Second, time.Millisecond)
	got := st.settledOf("1-0")[0]
	require.Equal(t, sdk.SettleNack, got.Kind)
	require.Equal(t, "requeue failed", got.Reason)
	require.Contains(t, logs.String(), "requeue failed; the message is returned to the queue instead")
}

// TestDeadLetterWithoutStoreIsLoggedAndDropped: on a broker without a
// dead-letter store, a dead-lettered message is logged with its body, then
// settled as dead letter (the broker drops it).
func TestDeadLetterWithoutStoreIsLoggedAndDropped(t *testing.T) {
	t.Parallel()
	st := newScriptedStream()
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return st, nil }}
	app, logs := scriptedBrokerApp(t, b, []string{sdk.CapAckable})
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	st.deliveries <- sdk.Delivery{ID: "1-0", Body: []byte("not json")}
	require.Eventually(t, func() bool { return len(st.kinds("1-0")) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []sdk.SettleKind{sdk.SettleDeadLetter}, st.kinds("1-0"))
	require.Contains(t, logs.String(), `the broker has no dead-letter store; the message is dropped after this log line: body="not json"`)
}

// neverWatcher is a backend whose watches never answer; it counts the
// watches withdrawn.
type neverWatcher struct {
	sdk.ResultBackend
	stopped chan string
}

func (n neverWatcher) WatchResult(taskID string, _ func([]byte, error)) func() bool {
	return func() bool { n.stopped <- taskID; return true }
}

// TestOnResult: OnResult delivers the result once it is stored, and when
// ctx ends first it withdraws the backend's watch and reports ctx's error.
func TestOnResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "on.result", func(n int) (int, error) { return n * 2, nil })
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background(), 21)
	require.NoError(t, err)
	got := make(chan int, 1)
	at.OnResult(context.Background(), func(r *core.Result[int], err error) {
		require.NoError(t, err)
		got <- r.ReturnValue
	})
	select {
	case v := <-got:
		require.Equal(t, 42, v)
	case <-time.After(10 * time.Second):
		t.Fatal("OnResult was not called")
	}

	nw := neverWatcher{ResultBackend: inmemory.NewResultBackend(inmemory.ResultOptions{}), stopped: make(chan string, 1)}
	w := setup(t, core.WithResultBackend(nw))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	core.ResultOf[int](w.app, "t1").OnResult(ctx, func(_ *core.Result[int], err error) { errs <- err })
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	require.Equal(t, "t1", <-nw.stopped)
}
