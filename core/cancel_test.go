package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// preExecCount counts pre_execute and post_execute calls.
type preExecCount struct{ n, post atomic.Int32 }

func (p *preExecCount) PreExecute(context.Context, *wire.Message) error { p.n.Add(1); return nil }

func (p *preExecCount) PostExecute(context.Context, *wire.Message, *wire.Result) error {
	p.post.Add(1)
	return nil
}

// TestCancelQueuedTaskNeverStarts: a task cancelled while queued is taken
// by the worker and not run, not even its pre_execute and post_execute
// hooks; its result is a CancelledError.
func TestCancelQueuedTaskNeverStarts(t *testing.T) {
	t.Parallel()
	pre := &preExecCount{}
	b := setup(t, core.WithMiddleware(pre))
	ran := make(chan struct{}, 1)
	task := core.MustTask[int](b.app, "cancel.queued", func(ctx context.Context) (int, error) {
		ran <- struct{}{}
		return 1, nil
	})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.NoError(t, at.Cancel(context.Background()))
	b.runWorker(t, core.WorkerOptions{})
	res := wait(t, at)
	require.True(t, res.IsErr)
	_, verr := res.Value()
	require.True(t, core.IsCancelled(verr), "the stored error is a cancellation: %v", verr)
	require.Equal(t, "TaskCancelledError", res.Error.ExcType)
	select {
	case <-ran:
		t.Fatal("a cancelled task ran")
	default:
	}
	require.Zero(t, pre.n.Load(), "pre_execute does not run for a cancelled task")
	require.Zero(t, pre.post.Load(), "post_execute does not run for a task that never started")
}

// TestCancelRunningTask: a running task's context is cancelled when its
// tombstone arrives; the result says it was cancelled while running.
func TestCancelRunningTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan struct{})
	task := core.MustTask[int](b.app, "cancel.running", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	<-started
	require.NoError(t, at.Cancel(context.Background()))
	res := wait(t, at)
	require.True(t, res.IsErr)
	require.Equal(t, "TaskCancelledError", res.Error.ExcType)
	require.Contains(t, res.Error.Error(), "cancelled while running")
}

// TestCancelFinishedTaskSaysSo: cancelling a task whose result is stored is
// ErrTaskFinished and changes nothing.
func TestCancelFinishedTaskSaysSo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "cancel.done", func(ctx context.Context) (int, error) { return 7, nil })
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 7, wait(t, at).ReturnValue)
	err = at.Cancel(context.Background())
	require.ErrorIs(t, err, core.ErrTaskFinished)
	require.EqualValues(t, 7, wait(t, at).ReturnValue, "the result is untouched")
}

// TestCancelledErrorMatches: CancelledError is ErrCancelled, and its wire
// form is recognised by IsCancelled.
func TestCancelledErrorMatches(t *testing.T) {
	t.Parallel()
	err := error(&core.CancelledError{TaskID: "x"})
	require.ErrorIs(t, err, core.ErrCancelled)
	require.True(t, core.IsCancelled(wire.FromError(err)))
	require.False(t, core.IsCancelled(wire.FromError(errors.New("boom"))))
}

// TestWorkerHeartbeatAndInspector: a running worker is listed by the
// broker's inspector, and App.TaskDetail combines the broker's message with
// the stored result.
func TestWorkerHeartbeatAndInspector(t *testing.T) {
	t.Parallel()
	b := setup(t)
	task := core.MustTask[int](b.app, "inspect.me", func(ctx context.Context) (int, error) { return 3, nil })
	in, err := b.app.Inspector("")
	require.NoError(t, err)
	b.runWorker(t, core.WorkerOptions{Queues: []core.Queue{{Name: "taskiq"}}})
	require.Eventually(t, func() bool {
		ws, err := in.Workers(context.Background())
		return err == nil && len(ws) == 1 && ws[0].Queues[0] == "taskiq"
	}, 5*time.Second, 10*time.Millisecond, "the worker's first heartbeat is sent when it starts")
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	wait(t, at)
	d, err := b.app.TaskDetail(context.Background(), "", core.TaskRef{TaskID: at.TaskID})
	require.NoError(t, err)
	require.NotNil(t, d.Result)
	require.Equal(t, "3", string(d.Result.ReturnValue))
	_, err = b.app.TaskDetail(context.Background(), "", core.TaskRef{TaskID: "nope"})
	require.ErrorIs(t, err, core.ErrTaskNotFound)
}
