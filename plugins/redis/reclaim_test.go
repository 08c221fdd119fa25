package taskiqredis

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestReclaimDrainsInSmallBatches: a busy worker asks for one delivery at a
// time, yet every expired entry of a dead consumer comes back at once, not
// one per lease/2. (Regression: a reclaim pass used to end the reclaim for
// lease/2 even when it had filled its batch.) miniredis only: its clock
// expires the leases while real time stays far below lease/2.
func TestReclaimDrainsInSmallBatches(t *testing.T) {
	t.Parallel()
	e := newMiniEnv(t)
	const n = 5
	cfg := func(consumer string) map[string]any {
		return fast(map[string]any{"queue": "q", "consumer_name": consumer, "lease": "1h"})
	}
	a := e.broker(t, cfg("a"))
	sa := listen(t, a, sdk.ListenRequest{})
	msgs := make([]sdk.Outgoing, n)
	for i := range msgs {
		msgs[i] = out(strconv.Itoa(i))
	}
	kick(t, a, msgs...)
	recvN(t, sa, n) // a dies holding them all

	e.advance(2 * time.Hour)
	b := e.broker(t, cfg("b"))
	sb := listen(t, b, sdk.ListenRequest{})
	seen := map[string]bool{}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ds, err := sb.Recv(ctx, 1)
		cancel()
		require.NoError(t, err, "reclaimed delivery %d of %d did not come back", i+1, n)
		require.Len(t, ds, 1)
		require.Equal(t, 2, ds[0].Attempt)
		seen[string(ds[0].Body)] = true
	}
	require.Len(t, seen, n)
}

// TestReclaimKeepsOwnHeldEntries: a worker that froze past its lease (no
// extensions) while its broker plugin kept running must not get its own
// running deliveries back as new ones. The listener's reclaim claims the
// expired entry (it cannot tell whose it was), finds it in its own held
// table, logs it and delivers the next new entry instead; idle time and
// delivery counter are put back, so another worker can still take a
// frozen worker's entries over, and the original delivery can be acked.
// Regression: the entry came back as a second delivery with the same id
// (attempt 2), and again at every lease/2, all running in one worker.
// miniredis and the broker's clock: no waiting.
func TestReclaimKeepsOwnHeldEntries(t *testing.T) {
	t.Parallel()
	e := newMiniEnv(t)
	b := e.broker(t, fast(map[string]any{"queue": "q", "consumer_name": "a", "lease": "1h"}))
	logs := &logBuffer{}
	b.log = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: logs})
	var mu sync.Mutex
	clock := time.Now()
	b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	freeze := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		e.advance(d)
	}
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("running"), out("next"), out("last"))
	first := recvN(t, s, 1)[0]
	require.Equal(t, "running", string(first.Body))

	freeze(2 * time.Hour) // past the lease, the first reclaim is due
	got := recvN(t, s, 1)[0]
	require.Equal(t, "next", string(got.Body), "the reclaim handed back the entry this worker still runs")
	require.Contains(t, logs.String(), "still held by this worker; kept, not redelivered")
	require.Contains(t, logs.String(), first.ID)
	p, err := e.rdb.XPendingExt(ctxT(t), &redis.XPendingExtArgs{Stream: "q", Group: defaultGroup, Start: first.ID, End: first.ID, Count: 1}).Result()
	require.NoError(t, err)
	require.Len(t, p, 1)
	require.Equal(t, "a", p[0].Consumer)
	require.EqualValues(t, 1, p[0].RetryCount, "the reclaim of a held entry is not a delivery")
	require.GreaterOrEqual(t, p[0].Idle, time.Hour, "put back still expired: another worker may take it over")

	freeze(2 * time.Hour) // frozen again: still not handed back
	got = recvN(t, s, 1)[0]
	require.Equal(t, "last", string(got.Body))
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: first.ID, Kind: sdk.SettleAck}}))
	require.EqualValues(t, 2, e.rdb.XPending(ctxT(t), "q", defaultGroup).Val().Count, "the two later deliveries are still pending, the first is acked")

	// A worker that stays frozen does not keep its entries from the others:
	// another listener takes the expired ones over.
	freeze(2 * time.Hour)
	require.Empty(t, recvNone(s), "this listener puts them back, still expired, and delivers nothing")
	other := e.broker(t, fast(map[string]any{"queue": "q", "consumer_name": "b", "lease": "1h"}))
	other.now = b.now
	taken := recvN(t, listen(t, other, sdk.ListenRequest{}), 2)
	bodies := []string{string(taken[0].Body), string(taken[1].Body)}
	require.ElementsMatch(t, []string{"next", "last"}, bodies)
	require.Equal(t, 2, taken[0].Attempt, "one real delivery before this one")
}

// recvNone gives s one short Recv, which runs a reclaim pass when due.
func recvNone(s sdk.Stream) []sdk.Delivery {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ds, _ := s.Recv(ctx, 10)
	return ds
}
