package core_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// nextAfter waits until something asks clk for a timer beyond the first n
// and returns how long that timer is.
func nextAfter(t *testing.T, clk *core.FakeClock, n int) time.Duration {
	t.Helper()
	require.Eventually(t, func() bool { return len(clk.Afters()) > n }, 10*time.Second, time.Millisecond)
	return clk.Afters()[n]
}

// TestTaskTimeoutFollowsTheWorkerClock: a task's timeout is measured on the
// worker's clock: an hour-long timeout passes when the clock moves an hour,
// and the task's context reports the deadline it was given.
func TestTaskTimeoutFollowsTheWorkerClock(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	st := newScriptedStream()
	results := inmemory.NewResultBackend(inmemory.ResultOptions{})
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return st, nil }}
	app, _ := scriptedBrokerApp(t, b, []string{sdk.CapAckable}, core.WithClock(clk), core.WithResultBackend(results))
	deadline := make(chan time.Time, 1)
	core.MustTask[int](app, "patient", func(ctx context.Context) (int, error) {
		dl, _ := ctx.Deadline()
		deadline <- dl
		<-ctx.Done()
		return 0, ctx.Err()
	}, core.WithTimeout(time.Hour))
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	n := len(clk.Afters())
	st.deliveries <- delivery(t, "1-0", "patient", 1, time.Time{})
	require.Equal(t, clk.Now().Add(time.Hour), <-deadline)
	require.Equal(t, time.Hour, nextAfter(t, clk, n))
	clk.Advance(time.Hour)
	require.Eventually(t, func() bool { return slices.Contains(st.kinds("1-0"), sdk.SettleAck) }, 10*time.Second, time.Millisecond)
	raw, err := results.GetResult(context.Background(), "task-1-0")
	require.NoError(t, err)
	res, err := wire.DecodeResult(raw)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Equal(t, "TaskiqResultTimeoutError", res.Error.ExcType)
	require.Equal(t, 3600.0, res.ExecutionTime, "execution time is read on the worker clock")
}

// failingResults is a result backend whose writes always fail.
type failingResults struct {
	sdk.ResultBackend
	writes atomic.Int32
}

func (f *failingResults) SetResults(context.Context, []sdk.StoredResult) error {
	f.writes.Add(1)
	return errors.New("backend restarting")
}

// TestSaveRetryFollowsTheWorkerClock: a result that cannot be saved is
// retried with a doubling wait capped at 2s for 10s of the worker's clock,
// then its message goes back to the queue (nack, 1s delay).
func TestSaveRetryFollowsTheWorkerClock(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	st := newScriptedStream()
	results := &failingResults{ResultBackend: inmemory.NewResultBackend(inmemory.ResultOptions{})}
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return st, nil }}
	app, logs := scriptedBrokerApp(t, b, []string{sdk.CapAckable}, core.WithClock(clk), core.WithResultBackend(results))
	core.MustTask[int](app, "quick", func() (int, error) { return 1, nil })
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	n := len(clk.Afters())
	st.deliveries <- delivery(t, "1-0", "quick", 1, time.Time{})
	start := clk.Now()
	var waits []time.Duration
	for len(st.kinds("1-0")) == 0 {
		if len(clk.Afters()) > n {
			d := clk.Afters()[n]
			n++
			waits = append(waits, d)
			clk.Advance(d)
		}
		require.Less(t, len(waits), 20, "the save retry does not end")
		time.Sleep(time.Millisecond) // let the worker act on the moved clock
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 2000 * ms, 2000 * ms}, waits)
	require.Equal(t, 11100*ms, clk.Now().Sub(start))
	require.EqualValues(t, 10, results.writes.Load())
	require.Equal(t, []sdk.SettleKind{sdk.SettleNack}, st.kinds("1-0"))
	st.mu.Lock()
	nack := st.settled[0]
	st.mu.Unlock()
	require.Equal(t, time.Second, nack.Delay)
	require.Equal(t, "result not saved", nack.Reason)
	require.Contains(t, logs.String(), "saving the result failed; the message is returned to the queue")
}
