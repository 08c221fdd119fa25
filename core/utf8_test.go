package core_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// A message whose task_id or task_name is not valid UTF-8 is dead-lettered
// with its original bytes and a reason that says so; it does not run, and no
// result is stored under the U+FFFD spelling of its id. Before, JSON
// decoding replaced the bad bytes, the task ran, and its result landed under
// a key the producer never reads.
func TestInvalidUTF8TaskIDGoesToDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ran atomic.Int32
	task := core.MustTask[int](b.app, "typed", func(n int) (int, error) { ran.Add(1); return n, nil })
	b.runWorker(t, core.WorkerOptions{})
	bodies := []string{
		"{\"task_id\":\"bad\xff\",\"task_name\":\"typed\",\"labels\":{},\"args\":[1],\"kwargs\":{}}",
		`{"task_id":"esc\udcff","task_name":"typed","labels":{},"args":[1],"kwargs":{}}`,
		"{\"task_id\":\"name\",\"task_name\":\"typ\xe9d\",\"labels\":{},\"args\":[1],\"kwargs\":{}}",
	}
	var out []sdk.Outgoing
	for _, body := range bodies {
		out = append(out, sdk.Outgoing{Body: []byte(body)})
	}
	require.NoError(t, b.broker.Kick(context.Background(), out))
	require.Eventually(t, func() bool { return len(b.broker.DeadLetters()) == len(bodies) }, 10*time.Second, 5*time.Millisecond)
	for _, body := range bodies {
		found := false
		for _, d := range b.broker.DeadLetters() {
			if string(d.Body) == body {
				found = true
				require.Contains(t, d.Reason, "is not valid UTF-8", body)
			}
		}
		require.True(t, found, "%q: not dead-lettered with its original bytes", body)
	}
	require.Zero(t, ran.Load(), "no such message may run")
	for _, id := range []string{"bad\uFFFD", "esc\uFFFD"} {
		_, err := b.results.GetResult(context.Background(), id)
		require.ErrorIs(t, err, sdk.ErrNotFound, "no result under the replaced id %q", id)
	}

	// The same id from a Go producer is refused at the kick.
	_, err := task.Kicker().WithTaskID("bad\xff").Kiq(context.Background(), 1)
	require.ErrorIs(t, err, wire.ErrInvalidUTF8)
}
