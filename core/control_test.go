package core_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TestRequeueHoldsWhateverTheTaskReturns: a task that calls Requeue and then
// returns a value (not Requeue's error) is requeued all the same; the value
// of that run is not stored and the message is not acked as done.
func TestRequeueHoldsWhateverTheTaskReturns(t *testing.T) {
	t.Parallel()
	logs := &syncLog{}
	b := setup(t, core.WithLogger(logs.logger()))
	var mu sync.Mutex
	var runs []int64
	task := core.MustTask[int64](b.app, "requeue.then.value", func(ctx context.Context) (int64, error) {
		tc := core.ContextFrom(ctx)
		n, _ := tc.Message.LabelInt(wire.LabelRequeue)
		mu.Lock()
		runs = append(runs, n)
		mu.Unlock()
		if n == 0 {
			_ = tc.Requeue()
			return 99, nil
		}
		return n, nil
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	res := wait(t, at)
	require.False(t, res.IsErr, "%v", res.Error)
	require.EqualValues(t, 1, res.ReturnValue, "the requeued run's value is not the result")
	mu.Lock()
	require.Equal(t, []int64{0, 1}, runs)
	mu.Unlock()
	require.Contains(t, logs.String(), "[DEBUG] task called Requeue and returned a value; the value is ignored")
}

// TestRejectHoldsWhateverTheTaskReturns: a task that calls Reject and then
// returns an error of its own is dead-lettered without a result; the error
// is logged as ignored.
func TestRejectHoldsWhateverTheTaskReturns(t *testing.T) {
	t.Parallel()
	logs := &syncLog{}
	b := setup(t, core.WithLogger(logs.logger()))
	task := core.MustTask[int](b.app, "reject.then.error", func(ctx context.Context) (int, error) {
		_ = core.ContextFrom(ctx).Reject()
		return 0, errors.New("something else went wrong")
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "rejected by the task", b.broker.DeadLetters()[0].Reason)
	require.Eventually(t, func() bool { return b.broker.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	ready, err := at.IsReady(context.Background())
	require.NoError(t, err)
	require.False(t, ready, "a rejected run stores no result")
	require.Regexp(t, `\[WARN\]  task called Reject and returned an error; the error is ignored: .*error="something else went wrong"`, logs.String())
}

// pyTypeError is a task's own error that calls itself TypeError, as a
// Python-style error would.
type pyTypeError struct{ msg string }

func (e *pyTypeError) Error() string     { return e.msg }
func (e *pyTypeError) ErrorType() string { return "TypeError" }

// TestModuleControlAndErrorKinds: in a task module, Reject holds whatever
// the task returns, and an error the task returns that is named TypeError
// is the task's failure, stored as its result, not an argument mismatch:
// only arguments that do not fit (sdk.ErrBadArguments) dead-letter.
func TestModuleControlAndErrorKinds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{})

	rejected := kickRaw(t, b, "mod:reject-then-value")
	failed := kickRaw(t, b, "mod:python-typeerror")
	res := wait(t, failed)
	require.True(t, res.IsErr)
	require.Equal(t, "TypeError", res.Error.ExcType)
	require.Equal(t, "TypeError: unsupported operand", res.Error.Error())
	require.Eventually(t, func() bool {
		for _, dl := range b.broker.DeadLetters() {
			if dl.TaskID == rejected.TaskID {
				require.Equal(t, "rejected by the task", dl.Reason)
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return b.broker.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	for _, dl := range b.broker.DeadLetters() {
		require.NotEqual(t, failed.TaskID, dl.TaskID, "a task's own TypeError is not an argument mismatch")
	}
	ready, err := rejected.IsReady(context.Background())
	require.NoError(t, err)
	require.False(t, ready, "a rejected run stores no result")
}
