package taskiqredis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// A Python taskiq-redis 1.2 worker in the stream's group, as it reads:
// XREADGROUP GROUP taskiq <uuid4 consumer> ... STREAMS <queue> >.
const pythonConsumer = "0d9b3c1e-5f7a-4b2c-9e8d-6a1f2b3c4d5e"

func pythonRead(t *testing.T, e *testEnv, q string) []redis.XMessage {
	t.Helper()
	res, err := e.rdb.XReadGroup(ctxT(t), &redis.XReadGroupArgs{Group: "taskiq", Consumer: pythonConsumer,
		Streams: []string{q, ">"}, Count: 10, Block: -1}).Result()
	if err == redis.Nil {
		return nil
	}
	require.NoError(t, err)
	return res[0].Messages
}

func TestSharedGroupWithPython(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"OneGroupWithPython":    testOneGroupWithPython,
		"WarnsAboutPython":      testWarnsAboutForeignConsumers,
		"LeaveUnknownTasks":     testLeaveUnknownTasks,
		"BrokerLeaseForPython":  testBrokerLeaseWithoutWorkerLease,
		"UnknownTasksValidated": testUnknownTasksValidated,
	})
}

// A custom queue, everything else default: Go and Python share group
// "taskiq", so an entry read by one is not read by the other.
func testOneGroupWithPython(t *testing.T, e *testEnv) {
	q := e.queue("jobs")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("one"), out("two"))
	got := pythonRead(t, e, q)
	require.Len(t, got, 2, "Python's group is the Go worker's group")
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	ds, err := s.Recv(ctx, 2)
	require.Empty(t, ds, "the entries Python read are not delivered to Go as well")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func capturedBroker(t *testing.T, e *testEnv, kv map[string]any) (*broker, *logBuffer) {
	b := e.broker(t, fast(kv))
	logs := &logBuffer{}
	b.log = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: logs})
	return b, logs
}

func testWarnsAboutForeignConsumers(t *testing.T, e *testEnv) {
	q := e.queue("jobs")
	first, firstLogs := capturedBroker(t, e, map[string]any{"queue": q, "consumer_name": "go-a"})
	s := listen(t, first, sdk.ListenRequest{})
	kick(t, first, out("x"))
	recvN(t, s, 1) // go-a is now a consumer of the group
	require.NotContains(t, firstLogs.String(), "not taskiq-go workers")

	// Another Go worker: it knows go-a, so no warning.
	second, secondLogs := capturedBroker(t, e, map[string]any{"queue": q, "consumer_name": "go-b"})
	listen(t, second, sdk.ListenRequest{})
	require.NotContains(t, secondLogs.String(), "not taskiq-go workers")

	// A Python worker joins the group: the next Go worker warns about it.
	require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: q, Values: []any{"data", pythonMessage}}).Err())
	require.Len(t, pythonRead(t, e, q), 1)
	third, thirdLogs := capturedBroker(t, e, map[string]any{"queue": q, "consumer_name": "go-c"})
	listen(t, third, sdk.ListenRequest{})
	require.Contains(t, thirdLogs.String(), "[WARN]")
	require.Contains(t, thirdLogs.String(), pythonConsumer)
	require.Contains(t, thirdLogs.String(), `set unknown_tasks = "leave"`)
	require.NotContains(t, thirdLogs.String(), "go-a")

	fourth, fourthLogs := capturedBroker(t, e, map[string]any{"queue": q, "consumer_name": "go-d", "unknown_tasks": "leave"})
	listen(t, fourth, sdk.ListenRequest{})
	require.NotContains(t, fourthLogs.String(), "[WARN]")
	require.Contains(t, fourthLogs.String(), "are left to them")
}

// unknown_tasks = "leave": the broker declares CapLeaveUnknownTasks (the
// worker then nacks such messages), and a nacked entry goes back to the
// stream, where the Python consumer reads it.
func testLeaveUnknownTasks(t *testing.T, e *testEnv) {
	q := e.queue("jobs")
	require.NotContains(t, e.broker(t, map[string]any{"queue": q}).Capabilities(), sdk.CapLeaveUnknownTasks)
	b := e.broker(t, fast(map[string]any{"queue": q, "unknown_tasks": "leave"}))
	require.Contains(t, b.Capabilities(), sdk.CapLeaveUnknownTasks)
	s := listen(t, b, sdk.ListenRequest{})
	require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: q, Values: []any{"data", pythonMessage}}).Err())
	d := recvN(t, s, 1)[0]
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack, Reason: "unknown task name"}}))
	got := pythonRead(t, e, q)
	require.Len(t, got, 1)
	require.Equal(t, pythonMessage, got[0].Values["data"], "Python reads the message as it was sent")
}

// The broker's lease applies when the worker sets none: an entry a Python
// worker holds (taskiq-redis never extends a lease) is not reclaimed by a Go
// worker before it, and a lease set by the worker wins.
func testBrokerLeaseWithoutWorkerLease(t *testing.T, e *testEnv) {
	if e.mr == nil {
		t.Skip("moves Redis's clock: miniredis only")
	}
	q := e.queue("jobs")
	b := e.broker(t, fast(map[string]any{"queue": q, "lease": "10m"}))
	var mu sync.Mutex
	clock := time.Now()
	b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	pass := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		e.advance(d)
	}
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{}) // no worker lease
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	l := st.(*streamListener)
	require.Equal(t, 10*time.Minute, l.lease)

	kick(t, b, out("python runs me"))
	require.Len(t, pythonRead(t, e, q), 1)
	pass(40 * time.Second)
	ds, err := l.reclaim(ctxT(t), l.queues[0], l.lease, 10)
	require.NoError(t, err)
	require.Empty(t, ds, "a Python task running 40s is not taken over under a 10m broker lease")
	pass(10 * time.Minute)
	ds, err = l.reclaim(ctxT(t), l.queues[0], l.lease, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1, "past the lease it is")

	withLease, err := b.Listen(ctxT(t), sdk.ListenRequest{Lease: 20 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = withLease.Close() })
	require.Equal(t, 20*time.Second, withLease.(*streamListener).lease, "the worker block's lease wins")
}

func testUnknownTasksValidated(t *testing.T, e *testEnv) {
	_, err := newBroker(ctxT(t), e.config(t, map[string]any{"unknown_tasks": "drop"}))
	require.ErrorContains(t, err, `unknown value "drop"`)
}
