package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
)

// TestDeadLetteredBeforeRunStoresErrorResult: a message the worker
// dead-letters without running it (its task is not registered there) gets
// an error result saying why, so its waiter returns at once instead of
// waiting out its timeout.
func TestDeadLetteredBeforeRunStoresErrorResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.runWorker(t, core.WorkerOptions{})
	at, err := b.app.KickByName(context.Background(), core.RawKick{TaskName: "example:nope"})
	require.NoError(t, err)
	// The timeout is a bound, not the expected wait: the result is saved as
	// soon as the worker dead-letters the message.
	res, err := at.WaitResult(context.Background(), time.Minute)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Equal(t, "DeadLetterError", res.Error.ExcType)
	_, werr := res.Value()
	require.ErrorContains(t, werr, `unknown task name "example:nope"`)
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == 1 }, 10*time.Second, time.Millisecond)
	require.Contains(t, b.broker.DeadLetters()[0].Reason, `unknown task name "example:nope"`)
}
