//go:build linux

package taskiqredis

// Tests against a private redis-server that is made to run out of memory
// (maxmemory, policy noeviction), which miniredis cannot do: Redis then
// refuses every deny-oom command (XADD, ZADD, SET, XGROUP CREATE…) but still
// runs XACK, XDEL, ZREM and XCLAIM. Gated like the topology tests
// (TASKIQ_REDIS_TOPOLOGY=1).

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// oomServer is a private redis-server whose memory limit a test switches.
type oomServer struct {
	srv   *topoServer
	admin *redis.Client
}

func startOOMServer(t *testing.T) *oomServer {
	t.Helper()
	requireTopology(t)
	srv := startTopoServer(t, "oom", serverConf{lines: []string{"maxmemory-policy noeviction"}})
	return &oomServer{srv: srv, admin: adminClient(t, srv.addr(), nil)}
}

// full makes every deny-oom command fail: used memory is always above one
// byte.
func (o *oomServer) full(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { _ = o.admin.ConfigSet(context.Background(), "maxmemory", "0").Err() })
	require.NoError(t, o.admin.ConfigSet(ctxT(t), "maxmemory", "1").Err())
	err := o.admin.Set(ctxT(t), "probe", "x", 0).Err()
	require.ErrorContains(t, err, "OOM", "the server should refuse writes now")
}

// room gives the server its memory back.
func (o *oomServer) room(t *testing.T) {
	t.Helper()
	require.NoError(t, o.admin.ConfigSet(ctxT(t), "maxmemory", "0").Err())
}

func (o *oomServer) broker(t *testing.T, kv map[string]any) *broker {
	t.Helper()
	b, err := newBroker(context.Background(), rawConfig(t, merged(map[string]any{
		"url": "redis://" + o.srv.addr() + "/0", "block": "100ms", "delay_poll": "20ms", "lease": "500ms",
	}, kv)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// pendingCount is how many entries of the queue's group are pending.
func (o *oomServer) pendingCount(t *testing.T, queue string) int64 {
	t.Helper()
	p, err := o.admin.XPending(ctxT(t), queue, defaultGroup).Result()
	require.NoError(t, err)
	return p.Count
}

// TestOOMSettlementKeepsEntries: a nack (with and without delay) or dead
// letter that Redis refuses because it is full leaves the entry pending
// and in the stream, with nothing written elsewhere; Settle says so; once
// Redis has room again the entry is redelivered and can be settled. Before
// the settlements were atomic, the refused write was followed by XACK and
// XDEL that Redis did run: the entry was gone (pending 0, stream empty).
func TestOOMSettlementKeepsEntries(t *testing.T) {
	o := startOOMServer(t)
	cases := map[string]sdk.Settlement{
		"nack":        {Kind: sdk.SettleNack, Reason: "result not saved"},
		"nack-delay":  {Kind: sdk.SettleNack, Delay: time.Second, Reason: "result not saved"},
		"dead-letter": {Kind: sdk.SettleDeadLetter, Reason: "bad"},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			queue := "oom-" + name
			b := o.broker(t, map[string]any{"queue": queue})
			s := listen(t, b, sdk.ListenRequest{})
			const n = 20
			msgs := make([]sdk.Outgoing, n)
			for i := range msgs {
				msgs[i] = out(name + "-" + strconv.Itoa(i))
			}
			kick(t, b, msgs...)
			ds := recvN(t, s, n)

			o.full(t)
			batch := make([]sdk.Settlement, n)
			for i, d := range ds {
				batch[i] = st
				batch[i].DeliveryID = d.ID
			}
			err := s.Settle(ctxT(t), batch)
			require.Error(t, err, "Redis refused the writes; Settle must not report success")
			require.ErrorContains(t, err, "OOM")
			require.ErrorContains(t, err, "stay pending")
			require.EqualValues(t, n, o.pendingCount(t, queue), "every refused entry stays pending")
			require.EqualValues(t, n, o.admin.XLen(ctxT(t), queue).Val(), "no entry was deleted")
			require.Zero(t, o.admin.ZCard(ctxT(t), queue+":delayed").Val())
			require.Zero(t, o.admin.XLen(ctxT(t), queue+":dead").Val())

			o.room(t)
			// The entries come back through reclaim once their lease
			// expires: 0 lost.
			again := recvN(t, s, n)
			got := map[string]bool{}
			for _, d := range again {
				got[string(d.Body)] = true
				require.Equal(t, 2, d.Attempt, "a redelivery after a refused nack is a new attempt")
			}
			require.Len(t, got, n, "every message came back once")
			for i, d := range again {
				batch[i].DeliveryID = d.ID
			}
			require.NoError(t, s.Settle(ctxT(t), batch))
			require.Zero(t, o.pendingCount(t, queue))
			switch {
			case st.Kind == sdk.SettleDeadLetter:
				require.EqualValues(t, n, o.admin.XLen(ctxT(t), queue+":dead").Val())
			case st.Delay > 0:
				// Moved back to the stream by the listener's mover once due.
				require.Eventually(t, func() bool {
					return o.admin.ZCard(ctxT(t), queue+":delayed").Val() == 0
				}, 10*time.Second, 20*time.Millisecond)
				fallthrough
			default:
				third := recvN(t, s, n)
				require.Equal(t, 3, third[0].Attempt)
			}
		})
	}
}

// TestOOMDeadLetterOnAdmit: an entry past max_attempts is dead-lettered
// when it is read; with Redis full that write is refused and the entry
// must stay pending (before, the XACK+XDEL after the refused XADD ran and
// the message vanished), then be dead-lettered once there is room.
func TestOOMDeadLetterOnAdmit(t *testing.T) {
	o := startOOMServer(t)
	queue := "oom-admit"
	b := o.broker(t, map[string]any{"queue": queue, "max_attempts": 1})
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("x"))
	recvN(t, s, 1)
	// Left unsettled, as by a worker that died: its lease expires.
	s2 := listen(t, b, sdk.ListenRequest{})
	o.full(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	ds, err := s2.Recv(ctx, 1)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "attempt 2 > max_attempts: not delivered (got %v)", ds)
	require.EqualValues(t, 1, o.pendingCount(t, queue), "the refused dead letter leaves the entry pending")
	require.EqualValues(t, 1, o.admin.XLen(ctxT(t), queue).Val())
	require.Zero(t, o.admin.XLen(ctxT(t), queue+":dead").Val())

	o.room(t)
	require.Eventually(t, func() bool {
		return o.admin.XLen(ctxT(t), queue+":dead").Val() == 1
	}, 10*time.Second, 20*time.Millisecond, "dead-lettered once Redis has room")
	require.Zero(t, o.pendingCount(t, queue))
}

// TestOOMMoveDueKeepsMembers: the mover pushes a due member before it
// removes it, so a full Redis (which refuses the XADD) keeps the member in
// the delayed set instead of moving it past maxmemory.
func TestOOMMoveDueKeepsMembers(t *testing.T) {
	o := startOOMServer(t)
	queue := "oom-move"
	b := o.broker(t, map[string]any{"queue": queue})
	now := time.Now()
	b.now = func() time.Time { return now }
	kick(t, b, sdk.Outgoing{TaskID: "t", TaskName: "n", Body: []byte("later"), Delay: time.Second})
	o.full(t)
	_, _, err := b.moveDue(ctxT(t), modeStream, queue, now.Add(time.Minute))
	require.ErrorContains(t, err, "OOM")
	require.EqualValues(t, 1, o.admin.ZCard(ctxT(t), queue+":delayed").Val(), "the member stays delayed")
	require.Zero(t, o.admin.XLen(ctxT(t), queue).Val())
	o.room(t)
	moved, _, err := b.moveDue(ctxT(t), modeStream, queue, now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	require.EqualValues(t, 1, o.admin.XLen(ctxT(t), queue).Val())
}

// TestOOMListNackRetried: in list mode a popped message exists only in the
// worker, so a nack refused by a full Redis is retried until it is written
// instead of being dropped.
func TestOOMListNackRetried(t *testing.T) {
	o := startOOMServer(t)
	queue := "oom-list"
	b := o.broker(t, map[string]any{"queue": queue, "mode": modeList})
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("only-copy"))
	d := recvN(t, s, 1)[0]
	o.full(t)
	done := make(chan error, 1)
	go func() { done <- s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack}}) }()
	select {
	case err := <-done:
		t.Fatalf("the nack returned (%v) while Redis could not store the message", err)
	case <-time.After(300 * time.Millisecond):
	}
	o.room(t)
	require.NoError(t, <-done)
	again := recvN(t, s, 1)
	require.Equal(t, "only-copy", string(again[0].Body))
}

// TestOOMListenWithExistingGroup: a full Redis refuses XGROUP CREATE even
// for a group that exists; Listen must not need it then, or a worker
// cannot start (and report ready) while Redis is full of queued work.
func TestOOMListenWithExistingGroup(t *testing.T) {
	o := startOOMServer(t)
	queue := "oom-listen"
	b := o.broker(t, map[string]any{"queue": queue})
	kick(t, b, out("queued")) // creates the stream and the group
	o.full(t)
	b2 := o.broker(t, map[string]any{"queue": queue})
	s, err := b2.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err, "the group exists: Listen must work on a full Redis")
	t.Cleanup(func() { _ = s.Close() })
	ds := recvN(t, s, 1)
	require.Equal(t, "queued", string(ds[0].Body))

	// A group that does not exist yet cannot be created on a full Redis:
	// Listen says why.
	b3 := o.broker(t, map[string]any{"queue": queue + "-new"})
	_, err = b3.Listen(ctxT(t), sdk.ListenRequest{})
	require.ErrorContains(t, err, "OOM")
}
