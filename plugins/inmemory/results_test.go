package inmemory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

type resultBundle struct {
	r   *ResultBackend
	clk *fakeClock
}

func setupResults(t *testing.T, opts ResultOptions) *resultBundle {
	t.Helper()
	clk := newFakeClock()
	r := newResultBackend(opts, clk.Now)
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return &resultBundle{r: r, clk: clk}
}

func (rb *resultBundle) set(t *testing.T, taskID, body string) {
	t.Helper()
	require.NoError(t, rb.r.SetResults(context.Background(), []sdk.StoredResult{{TaskID: taskID, Body: []byte(body)}}))
}

// waitAsync starts WaitResult and returns where its outcome arrives, once
// the call is parked on the task's waiter (so the test exercises the wake-up,
// not the fast path).
func (rb *resultBundle) waitAsync(t *testing.T, ctx context.Context, taskID string, parked int) <-chan waitOutcome {
	t.Helper()
	out := make(chan waitOutcome, 1)
	go func() {
		body, err := rb.r.WaitResult(ctx, taskID)
		out <- waitOutcome{body, err}
	}()
	require.Eventually(t, func() bool {
		rb.r.mu.Lock()
		defer rb.r.mu.Unlock()
		w, ok := rb.r.waiters[taskID]
		return ok && w.n == parked
	}, 5*time.Second, time.Millisecond)
	return out
}

type waitOutcome struct {
	body []byte
	err  error
}

func receive(t *testing.T, c <-chan waitOutcome) waitOutcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("WaitResult did not return")
		return waitOutcome{}
	}
}

func TestResultSetGet(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{})
	ctx := context.Background()

	_, err := rb.r.GetResult(ctx, "t1")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	ready, err := rb.r.IsReady(ctx, "t1")
	require.NoError(t, err)
	require.False(t, ready)

	require.NoError(t, rb.r.SetResults(ctx, []sdk.StoredResult{
		{TaskID: "t1", Body: []byte(`{"return_value":1}`)},
		{TaskID: "t2", Body: []byte(`{"return_value":2}`)},
	}))
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("t%d", i)
		ready, err := rb.r.IsReady(ctx, id)
		require.NoError(t, err)
		require.True(t, ready)
		body, err := rb.r.GetResult(ctx, id)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf(`{"return_value":%d}`, i), string(body))
	}
	// keep_results defaults to true: reading twice works.
	_, err = rb.r.GetResult(ctx, "t1")
	require.NoError(t, err)

	// A later result replaces the earlier one.
	rb.set(t, "t1", "again")
	body, err := rb.r.GetResult(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, "again", string(body))
}

func TestWaitResultReturnsOnSet(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{})
	first := rb.waitAsync(t, context.Background(), "w", 1)
	second := rb.waitAsync(t, context.Background(), "w", 2)
	rb.set(t, "w", "done")
	for _, c := range []<-chan waitOutcome{first, second} {
		o := receive(t, c)
		require.NoError(t, o.err)
		require.Equal(t, "done", string(o.body))
	}
	rb.r.mu.Lock()
	require.Empty(t, rb.r.waiters)
	rb.r.mu.Unlock()

	// Already stored: returns at once.
	body, err := rb.r.WaitResult(context.Background(), "w")
	require.NoError(t, err)
	require.Equal(t, "done", string(body))
}

func TestWaitResultContextCancel(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	c := rb.waitAsync(t, ctx, "never", 1)
	cancel()
	require.ErrorIs(t, receive(t, c).err, context.Canceled)
	rb.r.mu.Lock()
	require.Empty(t, rb.r.waiters, "a cancelled waiter leaves nothing behind")
	rb.r.mu.Unlock()
}

func TestWaitResultBackendClose(t *testing.T) {
	t.Parallel()
	r := newResultBackend(ResultOptions{}, newFakeClock().Now)
	rb := &resultBundle{r: r}
	c := rb.waitAsync(t, context.Background(), "x", 1)
	require.NoError(t, r.Close(context.Background()))
	require.ErrorIs(t, receive(t, c).err, sdk.ErrClosed)
	_, err := r.WaitResult(context.Background(), "x")
	require.ErrorIs(t, err, sdk.ErrClosed)
	_, err = r.GetResult(context.Background(), "x")
	require.ErrorIs(t, err, sdk.ErrClosed)
	require.ErrorIs(t, r.SetResults(context.Background(), nil), sdk.ErrClosed)
	require.NoError(t, r.Close(context.Background()), "Close is idempotent")
}

func TestResultTTL(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{TTL: time.Minute})
	ctx := context.Background()
	rb.set(t, "old", "1")
	require.NoError(t, rb.r.SetProgress(ctx, "old", []byte("50%")))

	rb.clk.Advance(time.Minute - time.Nanosecond)
	body, err := rb.r.GetResult(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, "1", string(body))
	_, err = rb.r.GetProgress(ctx, "old")
	require.NoError(t, err)

	rb.clk.Advance(time.Nanosecond)
	_, err = rb.r.GetResult(ctx, "old")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	ready, err := rb.r.IsReady(ctx, "old")
	require.NoError(t, err)
	require.False(t, ready)
	_, err = rb.r.GetProgress(ctx, "old")
	require.ErrorIs(t, err, sdk.ErrNotFound)
}

func TestResultTTLSweepsUnreadResults(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{TTL: time.Minute})
	for i := range 100 {
		rb.set(t, fmt.Sprint(i), "x")
	}
	// Rewritten later: its first expiry record must not delete it.
	rb.clk.Advance(30 * time.Second)
	rb.set(t, "7", "newer")
	rb.clk.Advance(30 * time.Second)
	// Any write sweeps what expired, read or not.
	rb.set(t, "fresh", "y")
	rb.r.mu.Lock()
	require.Len(t, rb.r.results, 2)
	rb.r.mu.Unlock()
	body, err := rb.r.GetResult(context.Background(), "7")
	require.NoError(t, err)
	require.Equal(t, "newer", string(body))
}

func TestDiscardOnRead(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{DiscardOnRead: true})
	ctx := context.Background()
	rb.set(t, "once", "v")
	require.NoError(t, rb.r.SetProgress(ctx, "once", []byte("p")))
	ready, err := rb.r.IsReady(ctx, "once")
	require.NoError(t, err)
	require.True(t, ready, "IsReady does not consume")

	body, err := rb.r.GetResult(ctx, "once")
	require.NoError(t, err)
	require.Equal(t, "v", string(body))
	_, err = rb.r.GetResult(ctx, "once")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = rb.r.GetProgress(ctx, "once")
	require.ErrorIs(t, err, sdk.ErrNotFound)

	// Every parked waiter still gets the result it was woken for.
	a := rb.waitAsync(t, ctx, "w", 1)
	b := rb.waitAsync(t, ctx, "w", 2)
	rb.set(t, "w", "r")
	require.Equal(t, "r", string(receive(t, a).body))
	require.Equal(t, "r", string(receive(t, b).body))
	_, err = rb.r.GetResult(ctx, "w")
	require.ErrorIs(t, err, sdk.ErrNotFound)
}

func TestProgress(t *testing.T) {
	t.Parallel()
	rb := setupResults(t, ResultOptions{})
	ctx := context.Background()
	_, err := rb.r.GetProgress(ctx, "p")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.NoError(t, rb.r.SetProgress(ctx, "p", []byte("10%")))
	require.NoError(t, rb.r.SetProgress(ctx, "p", []byte("20%")))
	body, err := rb.r.GetProgress(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "20%", string(body))
	_, err = rb.r.GetResult(ctx, "p")
	require.ErrorIs(t, err, sdk.ErrNotFound, "progress is not a result")
}
