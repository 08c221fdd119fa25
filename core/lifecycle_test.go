package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskiq-go/taskiq/core"
)

// TestAppCloseEndsItsGoroutines: once RunWorker and App.Close have
// returned, nothing they started still runs: not the worker's pool, lease
// extender or readiness timers, not the kick, result and settlement
// coalescers (whose runners used to idle on for 5s).
func TestAppCloseEndsItsGoroutines(t *testing.T) {
	others := goleak.IgnoreCurrent()
	b := setup(t)
	task := core.MustTask[int](b.app, "inc", func(n int) (int, error) { return n + 1, nil })
	stop := b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background(), 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, wait(t, at).ReturnValue)
	stop()
	require.NoError(t, b.app.Close(context.Background()))
	goleak.VerifyNone(t, others)
}

// TestShutdownWaitsForCancelledTasks: after the shutdown timeout, RunWorker
// cancels the tasks and returns only once their functions have returned,
// even when one takes a while to notice; the message is left unsettled.
func TestShutdownWaitsForCancelledTasks(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	st := newScriptedStream()
	app, _, logs := scriptedApp(t, st, core.WithClock(clk))
	started, finish := make(chan struct{}), make(chan struct{})
	core.MustTask[int](app, "slow.to.stop", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		<-finish // cleaning up after the cancellation
		return 0, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunWorker(ctx, core.WorkerOptions{ShutdownTimeout: time.Minute}) }()
	st.deliveries <- delivery(t, "1-0", "slow.to.stop", 1, time.Time{})
	<-started
	n := len(clk.Afters())
	cancel()
	require.Equal(t, time.Minute, afterOf(t, clk, &n, time.Minute))
	clk.Advance(time.Minute)
	// RunWorker is now waiting, on the clock, for the cancelled task.
	require.Equal(t, 5*time.Second, afterOf(t, clk, &n, 5*time.Second))
	select {
	case err := <-done:
		t.Fatalf("RunWorker returned (%v) while a task function was still running", err)
	default:
	}
	close(finish)
	require.NoError(t, <-done)
	require.Contains(t, logs.String(), "shutdown timeout passed with tasks still running")
	require.NotContains(t, logs.String(), "task still running after its context was cancelled")
	require.Empty(t, st.kinds("1-0"), "a task cut off by shutdown leaves its message to be redelivered")
}

// TestShutdownGivesUpOnATaskThatIgnoresItsContext: a task function that
// ignores its context cannot be stopped; RunWorker waits cancelGrace (5s)
// for it after cancelling, logs it and returns without it.
func TestShutdownGivesUpOnATaskThatIgnoresItsContext(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	st := newScriptedStream()
	app, _, logs := scriptedApp(t, st, core.WithClock(clk))
	started, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	core.MustTask[int](app, "deaf", func(context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// 2s: the lease extender asks for timers of at most 1s, which afterOf
	// must not take for the shutdown timeout's.
	go func() { done <- app.RunWorker(ctx, core.WorkerOptions{ShutdownTimeout: 2 * time.Second}) }()
	st.deliveries <- delivery(t, "1-0", "deaf", 1, time.Time{})
	<-started
	n := len(clk.Afters())
	cancel()
	afterOf(t, clk, &n, 2*time.Second)
	clk.Advance(2 * time.Second)
	afterOf(t, clk, &n, 5*time.Second)
	clk.Advance(5 * time.Second)
	require.NoError(t, <-done)
	require.Regexp(t, `\[ERROR\] task still running after its context was cancelled: it ignores its context and cannot be stopped; `+
		`the worker returns without it and the broker redelivers its message: attempt=1 queue=default task_id=task-1-0 task_name=deaf grace=5s`, logs.String())
	require.Empty(t, st.kinds("1-0"))
}

// afterOf waits until clk is asked for a timer of d beyond the first *n,
// and moves *n past it.
func afterOf(t *testing.T, clk *core.FakeClock, n *int, d time.Duration) time.Duration {
	t.Helper()
	for {
		got := nextAfter(t, clk, *n)
		*n++
		if got == d {
			return got
		}
	}
}
