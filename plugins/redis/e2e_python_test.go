package taskiqredis

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/pickle"
)

// TestE2EBesidePython: a worker whose plugins are processes, configured as
// docs/wire.md says for a stream shared with Python workers. A Python
// message for a Go task runs and its result is stored as taskiq-redis's
// PickleSerializer stores it; a message for a task only Python has goes back
// to the group, where the Python consumer reads it, and no result is stored.
func TestE2EBesidePython(t *testing.T) {
	t.Parallel()
	e := e2eEnv(t)
	q := e.queue("e2e-python")
	cfg := baseConfig(t, e, q)
	cfg.broker["unknown_tasks"] = "leave"
	cfg.broker["lease"] = "10m"
	cfg.results["serializer"] = "pickle"
	app := loadApp(t, cfg.write(t, t.TempDir()))
	core.MustTask[int](app, "tests.tasks:add", func(a, b int, round bool) (int, error) { return a + b, nil },
		core.WithParamNames("a", "b", "round"))
	runWorker(t, app, nil)

	ctx := within(t, 60*time.Second)
	goID, pyID := core.NewTaskID(), core.NewTaskID()
	require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q, Values: map[string]any{
		"data": pythonTaskMessage(goID, "tests.tasks:add", `[1]`, `{"b": 2, "round": true}`)}}).Err())
	var stored []byte
	require.Eventually(t, func() bool {
		b, err := e.rdb.Get(ctx, goID).Bytes()
		stored = b
		return err == nil
	}, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, byte(0x80), stored[0], "pickled, as PickleSerializer stores it")
	v, err := pickle.Decode(stored)
	require.NoError(t, err)
	require.Equal(t, int64(3), v.(map[string]any)["return_value"])
	res, err := core.ResultOf[int](app, goID).GetResult(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, res.ReturnValue, "Go reads the pickle back")

	// A message for a task only Python has: the Go worker (the only reader
	// so far) takes it and gives it back; the Python worker, waiting in
	// XREADGROUP BLOCK as taskiq-redis does, reads it when it returns.
	pyMsg := pythonTaskMessage(pyID, "py_app.tasks:resize", `[]`, `{}`)
	require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: q, Values: map[string]any{"data": pyMsg}}).Err())
	require.Eventually(t, func() bool {
		n, err := e.rdb.ZCard(ctx, q+":delayed").Result()
		return err == nil && n == 1
	}, 30*time.Second, time.Millisecond, "the Go worker did not give the message back")
	pyRead := make(chan []redis.XMessage, 1)
	go func() {
		res, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "taskiq", Consumer: pythonConsumer,
			Streams: []string{q, ">"}, Count: 1, Block: 50 * time.Second}).Result()
		if err != nil {
			pyRead <- nil
			return
		}
		pyRead <- res[0].Messages
	}()
	var got []redis.XMessage
	select {
	case got = <-pyRead:
	case <-ctx.Done():
		t.Fatal("the Python consumer never got the message")
	}
	require.Len(t, got, 1)
	require.Equal(t, pyMsg, got[0].Values["data"], "Python reads the message as it was sent")
	require.NotNil(t, got[0].Values["attempt"], "it came back through the Go worker's nack")
	n, err := e.rdb.Exists(ctx, pyID).Result()
	require.NoError(t, err)
	require.Zero(t, n, "no result for a task Go does not run")
}
