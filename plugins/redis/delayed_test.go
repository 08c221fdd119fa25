package taskiqredis

import (
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestDelayedMovedByAnyProcess(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"KickerMovesPythonQueue": testKickerMovesDelayed,
		"WorkerOfOtherQueue":     testWorkerOfOtherQueueMovesDelayed,
		"MoveDelayedOff":         testMoveDelayedOff,
	})
}

// passes makes a broker's mover report each pass on a channel.
func passes(b *broker) <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.mover.mu.Lock()
	b.mover.passed = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	b.mover.mu.Unlock()
	return ch
}

// waitPasses waits for two full passes of the mover (the first may have
// begun before the state the test set up).
func waitPasses(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	for range 2 {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the delayed mover made no pass")
		}
	}
}

// A Go process that only kicks (no listener at all) moves its delayed kick
// to a queue that only Python workers consume.
func testKickerMovesDelayed(t *testing.T, e *testEnv) {
	q := e.queue("py-only")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	if e.mr == nil {
		// On the shared server the mover serves every registered queue: a
		// clock of its own would move other tests' delayed messages early.
		// The real clock, then, and a delay the reads before it cannot miss.
		kick(t, b, sdk.Outgoing{Body: []byte(pythonMessage), Delay: 3 * time.Second})
		require.Empty(t, pythonRead(t, e, q), "not due yet")
		var got []redis.XMessage
		require.Eventually(t, func() bool {
			got = append(got, pythonRead(t, e, q)...) // a read takes what it returns
			return len(got) > 0
		}, 20*time.Second, 10*time.Millisecond, "moved without a listener of the queue")
		require.Len(t, got, 1)
		require.Equal(t, pythonMessage, got[0].Values["data"])
		return
	}
	var mu sync.Mutex
	now := time.Now()
	b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ch := passes(b)
	kick(t, b, sdk.Outgoing{Body: []byte(pythonMessage), Delay: time.Second})
	waitPasses(t, ch)
	require.Empty(t, pythonRead(t, e, q), "not due yet")
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	waitPasses(t, ch)
	got := pythonRead(t, e, q)
	require.Len(t, got, 1, "moved without a listener of the queue")
	require.Equal(t, pythonMessage, got[0].Values["data"])
}

// A worker of another queue moves what a kicker that has gone delayed.
func testWorkerOfOtherQueueMovesDelayed(t *testing.T, e *testEnv) {
	q, other := e.queue("py-only"), e.queue("go-jobs")
	kicker := e.broker(t, fast(map[string]any{"queue": q, "move_delayed": false}))
	require.Nil(t, kicker.mover)
	kick(t, kicker, sdk.Outgoing{Body: []byte(pythonMessage), Delay: time.Millisecond})
	require.NoError(t, kicker.Close(ctxT(t)))

	worker := e.broker(t, fast(map[string]any{"queue": other}))
	ch := passes(worker)
	listen(t, worker, sdk.ListenRequest{})
	var got []redis.XMessage
	for range 100 {
		waitPasses(t, ch)
		if got = pythonRead(t, e, q); len(got) > 0 {
			break
		}
	}
	require.Len(t, got, 1, "moved by a worker of another queue")
	members, err := e.rdb.SMembers(ctxT(t), delayedQueuesKey).Result()
	require.NoError(t, err)
	require.Contains(t, members, "stream|"+q)
	require.Contains(t, members, "stream|"+other, "a listened queue is registered for its delayed nacks")
}

func testMoveDelayedOff(t *testing.T, e *testEnv) {
	q := e.queue("py-only")
	b := e.broker(t, fast(map[string]any{"queue": q, "move_delayed": false}))
	require.Nil(t, b.mover)
	p := e.broker(t, map[string]any{"mode": "pubsub"})
	require.Nil(t, p.mover, "pubsub has no delays")
}
