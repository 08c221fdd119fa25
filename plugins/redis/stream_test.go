package taskiqredis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// pythonMessage is a message as Python taskiq encodes it: ", " and ": "
// separators, ASCII escapes, labels_types.
const pythonMessage = `{"task_id": "5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60", "task_name": "math:add", ` +
	`"labels": {"retry_on_error": "True", "max_retries": "3", "delay": "1.5", "queue_name": "low", "note": "caf\u00e9"}, ` +
	`"labels_types": {"retry_on_error": 5, "max_retries": 2, "delay": 4, "queue_name": 3, "note": 3}, ` +
	`"args": [1, 2], "kwargs": {"round": true}}`

func fast(kv map[string]any) map[string]any {
	m := map[string]any{"block": "100ms", "delay_poll": "20ms"}
	for k, v := range kv {
		m[k] = v
	}
	return m
}

func TestStreamBroker(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"KickWireLayout":          testKickWireLayout,
		"PythonEntryReceived":     testPythonEntryReceived,
		"AckDeletesEntry":         testAckDeletesEntry,
		"DeleteAckedFalse":        testDeleteAckedFalse,
		"LeaseExpiryReclaims":     testLeaseExpiryReclaims,
		"ExtendedNotReclaimed":    testExtendedNotReclaimed,
		"ConcurrentReclaimOnce":   testConcurrentReclaimOnce,
		"MaxAttemptsDeadLetters":  testMaxAttemptsDeadLetters,
		"NackRequeuesWithAttempt": testNackRequeues,
		"NackWithDelay":           testNackWithDelay,
		"DeadLetterFields":        testDeadLetterFields,
		"EntryWithoutData":        testEntryWithoutData,
		"DelayedKickMover":        testDelayedKickMover,
		"DelayedMoverInListen":    testDelayedMoverInListen,
		"RoutingQueueName":        testRoutingQueueName,
		"StrictPriorityOrder":     testStrictOrder,
		"WeightedRotation":        testWeightedRotation,
		"RecvCancelKeepsEntries":  testRecvCancelKeepsEntries,
		"CloseEndsRecv":           testCloseEndsRecv,
		"KickBeforeListen":        testKickBeforeListen,
	})
}

func testKickWireLayout(t *testing.T, e *testEnv) {
	q := e.queue("taskiq")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	body := []byte(`{"task_id":"a","task_name":"x","labels":{},"labels_types":{},"args":[],"kwargs":{}}`)
	kick(t, b, sdk.Outgoing{Body: body})
	msgs, err := e.rdb.XRange(ctxT(t), q, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, map[string]any{"data": string(body)}, msgs[0].Values, "taskiq-redis reads exactly the field data")
	groups, err := e.rdb.XInfoGroups(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Len(t, groups, 1)
	require.Equal(t, "taskiq", groups[0].Name, "the group is taskiq whatever the stream is called (taskiq-redis consumer_group_name)")
}

func testPythonEntryReceived(t *testing.T, e *testEnv) {
	q := e.queue("taskiq")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	// XADD as taskiq-redis does it.
	require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: q, Values: []any{"data", pythonMessage}}).Err())
	ds := recvN(t, s, 1)
	require.Equal(t, pythonMessage, string(ds[0].Body), "body bytes are passed through untouched")
	require.Equal(t, 1, ds[0].Attempt)
	require.Equal(t, q, ds[0].Queue)
	require.False(t, ds[0].LeaseDeadline.IsZero())
	m, err := wire.DecodeMessage(ds[0].Body)
	require.NoError(t, err)
	require.Equal(t, "math:add", m.TaskName)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	requirePending(t, e, q, defaultGroup, 0)
}

func requirePending(t *testing.T, e *testEnv, key, group string, n int64) {
	t.Helper()
	p, err := e.rdb.XPending(ctxT(t), key, group).Result()
	require.NoError(t, err)
	require.Equal(t, n, p.Count)
}

func testAckDeletesEntry(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("1"), out("2"), out("3"))
	ds := recvN(t, s, 3)
	var ss []sdk.Settlement
	for _, d := range ds {
		ss = append(ss, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
	}
	require.NoError(t, s.Settle(ctxT(t), ss))
	n, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, n, "acked entries are deleted, so the stream does not grow")
	requirePending(t, e, q, defaultGroup, 0)
}

func testDeleteAckedFalse(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q, "delete_acked": false}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("1"))
	ds := recvN(t, s, 1)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	n, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	requirePending(t, e, q, defaultGroup, 0)
}

const testLease = 300 * time.Millisecond

func leaseCfg(q, consumer string, kv map[string]any) map[string]any {
	m := fast(map[string]any{"queue": q, "consumer_name": consumer, "lease": testLease.String()})
	for k, v := range kv {
		m[k] = v
	}
	return m
}

func testLeaseExpiryReclaims(t *testing.T, e *testEnv) {
	q := e.queue("q")
	a := e.broker(t, leaseCfg(q, "a", nil))
	sa := listen(t, a, sdk.ListenRequest{})
	kick(t, a, out("job"))
	da := recvN(t, sa, 1)
	require.Equal(t, 1, da[0].Attempt)

	e.advance(testLease + 100*time.Millisecond)
	b := e.broker(t, leaseCfg(q, "b", nil))
	sb := listen(t, b, sdk.ListenRequest{})
	db := recvN(t, sb, 1)
	require.Equal(t, "job", string(db[0].Body))
	require.Equal(t, 2, db[0].Attempt, "the reclaimed delivery counts the first one")
	require.Equal(t, da[0].ID, db[0].ID, "same stream entry")

	// A's late extension must not take the entry back from B.
	require.NoError(t, sa.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: da[0].ID, Kind: sdk.SettleExtend, Delay: time.Minute}}))
	p, err := e.rdb.XPendingExt(ctxT(t), &redis.XPendingExtArgs{Stream: q, Group: defaultGroup, Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, p, 1)
	require.Equal(t, "b", p[0].Consumer)
	require.EqualValues(t, 2, p[0].RetryCount, "an extension is not a delivery")

	// Nor may A's late nack or dead letter: B now decides the entry's fate.
	require.NoError(t, sa.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: da[0].ID, Kind: sdk.SettleNack}}))
	require.NoError(t, sa.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: da[0].ID, Kind: sdk.SettleDeadLetter, Reason: "late"}}))
	n, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "a late nack must not add a second copy of the message")
	requirePending(t, e, q, defaultGroup, 1)
	dead, err := e.rdb.XLen(ctxT(t), q+":dead").Result()
	require.NoError(t, err)
	require.Zero(t, dead, "a late dead letter must not move an entry another worker runs")
	require.NoError(t, sb.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: db[0].ID, Kind: sdk.SettleAck}}))
	requirePending(t, e, q, defaultGroup, 0)
}

func testExtendedNotReclaimed(t *testing.T, e *testEnv) {
	q := e.queue("q")
	a := e.broker(t, leaseCfg(q, "a", nil))
	sa := listen(t, a, sdk.ListenRequest{})
	kick(t, a, out("kept"), out("lost"))
	ds := recvN(t, sa, 2)
	byBody := map[string]sdk.Delivery{}
	for _, d := range ds {
		byBody[string(d.Body)] = d
	}
	e.advance(testLease + 100*time.Millisecond)
	require.NoError(t, sa.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: byBody["kept"].ID, Kind: sdk.SettleExtend, Delay: testLease}}))

	b := e.broker(t, leaseCfg(q, "b", nil))
	sb := listen(t, b, sdk.ListenRequest{}).(*streamListener)
	got, err := sb.reclaim(ctxT(t), sb.queues[0], testLease, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "lost", string(got[0].Body), "only the entry whose lease was not extended is reclaimed")
	p, err := e.rdb.XPendingExt(ctxT(t), &redis.XPendingExtArgs{Stream: q, Group: defaultGroup, Start: "-", End: "+", Count: 10}).Result()
	require.NoError(t, err)
	owners := map[string]string{}
	for _, x := range p {
		owners[x.ID] = x.Consumer
	}
	require.Equal(t, "a", owners[byBody["kept"].ID])
	require.Equal(t, "b", owners[byBody["lost"].ID])
}

func testConcurrentReclaimOnce(t *testing.T, e *testEnv) {
	q := e.queue("q")
	const n = 40
	rounds := 30
	if e.real() {
		rounds = 5
	}
	a := e.broker(t, leaseCfg(q, "a", map[string]any{"max_attempts": 0}))
	sa := listen(t, a, sdk.ListenRequest{})
	msgs := make([]sdk.Outgoing, n)
	for i := range msgs {
		msgs[i] = out(strconv.Itoa(i))
	}
	kick(t, a, msgs...)
	recvN(t, sa, n)

	var reclaimers []*streamListener
	for _, name := range []string{"b", "c", "d"} {
		br := e.broker(t, leaseCfg(q, name, map[string]any{"max_attempts": 0}))
		reclaimers = append(reclaimers, listen(t, br, sdk.ListenRequest{}).(*streamListener))
	}
	for round := range rounds {
		e.advance(testLease + 50*time.Millisecond)
		var (
			mu   sync.Mutex
			seen = map[string]int{}
			wg   sync.WaitGroup
		)
		for _, r := range reclaimers {
			wg.Go(func() {
				got, err := r.reclaim(context.Background(), r.queues[0], testLease, 2*n)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, d := range got {
					seen[d.ID]++
					// Its worker dies with it: a listener never gets
					// back what it still holds.
					r.release(d.ID)
				}
			})
		}
		wg.Wait()
		require.Len(t, seen, n, "round %d: every expired entry is reclaimed", round)
		for id, c := range seen {
			require.Equal(t, 1, c, "round %d: entry %s claimed by more than one reclaimer", round, id)
		}
	}
}

func testMaxAttemptsDeadLetters(t *testing.T, e *testEnv) {
	q := e.queue("q")
	a := e.broker(t, leaseCfg(q, "a", map[string]any{"max_attempts": 2}))
	sa := listen(t, a, sdk.ListenRequest{}).(*streamListener)
	kick(t, a, out("poison"))
	d1 := recvN(t, sa, 1)
	require.Equal(t, 1, d1[0].Attempt)
	// The worker gives each delivery up (as after a refused nack): a
	// listener never gets back what it still holds.
	sa.release(d1[0].ID)
	e.advance(testLease + 50*time.Millisecond)
	got, err := sa.reclaim(ctxT(t), sa.queues[0], testLease, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Attempt)
	sa.release(got[0].ID)
	e.advance(testLease + 50*time.Millisecond)
	got, err = sa.reclaim(ctxT(t), sa.queues[0], testLease, 10)
	require.NoError(t, err)
	require.Empty(t, got, "attempt 3 > max_attempts 2 is not delivered")

	dead, err := e.rdb.XRange(ctxT(t), q+":dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "poison", dead[0].Values["data"])
	require.Equal(t, "exceeded max_attempts (2)", dead[0].Values["reason"])
	require.Equal(t, "3", dead[0].Values["attempt"])
	require.Equal(t, d1[0].ID, dead[0].Values["original_id"])
	requirePending(t, e, q, defaultGroup, 0)
	n, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

func testNackRequeues(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("again"))
	d := recvN(t, s, 1)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[0].ID, Kind: sdk.SettleNack}}))
	msgs, err := e.rdb.XRange(ctxT(t), q, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1, "old entry deleted, new one added")
	require.Equal(t, "again", msgs[0].Values["data"])
	require.Equal(t, "1", msgs[0].Values["attempt"])
	d2 := recvN(t, s, 1)
	require.Equal(t, "again", string(d2[0].Body))
	require.Equal(t, 2, d2[0].Attempt)
	require.NotEqual(t, d[0].ID, d2[0].ID)
}

func testNackWithDelay(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, map[string]any{"queue": q, "block": "100ms", "delay_poll": "1h"})
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("later"))
	d := recvN(t, s, 1)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[0].ID, Kind: sdk.SettleNack, Delay: time.Hour}}))
	n, err := e.rdb.ZCard(ctxT(t), q+":delayed").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	moved, _, err := b.moveDue(ctxT(t), modeStream, q, time.Now().Add(30*time.Minute))
	require.NoError(t, err)
	require.Zero(t, moved, "not due yet")
	moved, _, err = b.moveDue(ctxT(t), modeStream, q, time.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	d2 := recvN(t, s, 1)
	require.Equal(t, "later", string(d2[0].Body))
	require.Equal(t, 2, d2[0].Attempt, "the attempt survives the delayed set")
}

func testDeadLetterFields(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("bad"))
	d := recvN(t, s, 1)
	before := time.Now().UnixMilli()
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[0].ID, Kind: sdk.SettleDeadLetter, Reason: "unknown task"}}))
	dead, err := e.rdb.XRange(ctxT(t), q+":dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	v := dead[0].Values
	require.Equal(t, "bad", v["data"])
	require.Equal(t, "unknown task", v["reason"])
	require.Equal(t, q, v["queue"])
	require.Equal(t, "1", v["attempt"])
	require.Equal(t, d[0].ID, v["original_id"])
	failedAt, err := strconv.ParseInt(v["failed_at"].(string), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, failedAt, before-1000)
	n, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, n)
	requirePending(t, e, q, defaultGroup, 0)
}

func testEntryWithoutData(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: q, Values: []any{"payload", "x"}}).Err())
	kick(t, b, out("good"))
	d := recvN(t, s, 1)
	require.Equal(t, "good", string(d[0].Body), "the malformed entry is not delivered")
	dead, err := e.rdb.XRange(ctxT(t), q+":dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, `stream entry has no "data" field`, dead[0].Values["reason"])
}

func testDelayedKickMover(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, map[string]any{"queue": q})
	now := time.Now()
	b.now = func() time.Time { return now }
	kick(t, b, sdk.Outgoing{Body: []byte("soon"), Delay: 10 * time.Second},
		sdk.Outgoing{Body: []byte("soon"), Delay: 10 * time.Second},
		sdk.Outgoing{Body: []byte("late"), Delay: time.Hour})
	n, err := e.rdb.ZCard(ctxT(t), q+":delayed").Result()
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "identical bodies do not collide in the set")
	xl, err := e.rdb.XLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, xl)

	moved, next, err := b.moveDue(ctxT(t), modeStream, q, now.Add(20*time.Second))
	require.NoError(t, err)
	require.Equal(t, 2, moved)
	require.WithinDuration(t, now.Add(time.Hour), next, time.Millisecond)
	msgs, err := e.rdb.XRange(ctxT(t), q, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		require.Equal(t, map[string]any{"data": "soon"}, m.Values, "a moved message is a plain taskiq-redis entry")
	}
	// A second mover at the same time finds nothing more to move.
	moved, _, err = b.moveDue(ctxT(t), modeStream, q, now.Add(20*time.Second))
	require.NoError(t, err)
	require.Zero(t, moved)
}

func testDelayedMoverInListen(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, sdk.Outgoing{Body: []byte("delayed"), Delay: 50 * time.Millisecond})
	d := recvN(t, s, 1)
	require.Equal(t, "delayed", string(d[0].Body))
	require.Equal(t, 1, d[0].Attempt)
}

func testRoutingQueueName(t *testing.T, e *testEnv) {
	def, low := e.queue("default"), e.queue("low")
	b := e.broker(t, fast(map[string]any{"queue": def}))
	sLow := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: low}}})
	kick(t, b, sdk.Outgoing{Body: []byte("to-low"), Queue: low}, out("to-default"))
	d := recvN(t, sLow, 1)
	require.Equal(t, "to-low", string(d[0].Body))
	require.Equal(t, low, d[0].Queue)
	n, err := e.rdb.XLen(ctxT(t), def).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func testStrictOrder(t *testing.T, e *testEnv) {
	hi, lo := e.queue("hi"), e.queue("lo")
	b := e.broker(t, fast(map[string]any{"queue": lo}))
	s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: hi}, {Name: lo}}, StrictPriority: true})
	kick(t, b, sdk.Outgoing{Body: []byte("lo1"), Queue: lo}, sdk.Outgoing{Body: []byte("hi1"), Queue: hi},
		sdk.Outgoing{Body: []byte("hi2"), Queue: hi}, sdk.Outgoing{Body: []byte("lo2"), Queue: lo})
	var got []string
	for range 4 {
		d := recvN(t, s, 1)
		got = append(got, string(d[0].Body))
		require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[0].ID, Kind: sdk.SettleAck}}))
	}
	require.Equal(t, []string{"hi1", "hi2", "lo1", "lo2"}, got)
	for _, q := range []string{hi, lo} {
		requirePending(t, e, q, defaultGroup, 0)
	}
}

func testWeightedRotation(t *testing.T, e *testEnv) {
	a, c := e.queue("a"), e.queue("c")
	b := e.broker(t, fast(map[string]any{"queue": a}))
	s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: a, Weight: 3}, {Name: c, Weight: 1}}})
	var msgs []sdk.Outgoing
	for i := range 30 {
		msgs = append(msgs, sdk.Outgoing{Body: fmt.Appendf(nil, "a%d", i), Queue: a}, sdk.Outgoing{Body: fmt.Appendf(nil, "c%d", i), Queue: c})
	}
	kick(t, b, msgs...)
	counts := map[string]int{}
	for range 20 {
		d := recvN(t, s, 1)
		counts[d[0].Queue]++
		require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[0].ID, Kind: sdk.SettleAck}}))
	}
	require.Equal(t, map[string]int{a: 15, c: 5}, counts)
}

func testRecvCancelKeepsEntries(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Recv(ctx, 10)
	require.ErrorIs(t, err, context.Canceled)
	kick(t, b, out("x"))
	d := recvN(t, s, 1)
	require.Equal(t, "x", string(d[0].Body), "a read started by a cancelled Recv is handed to the next one")
}

func testCloseEndsRecv(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background(), 1)
		errc <- err
	}()
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, sdk.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Recv did not return after Close")
	}
	_, err := s.Recv(context.Background(), 1)
	require.ErrorIs(t, err, sdk.ErrClosed)
	require.NoError(t, b.Close(context.Background()))
	require.ErrorIs(t, b.Kick(ctxT(t), []sdk.Outgoing{out("x")}), sdk.ErrClosed)
}

func testKickBeforeListen(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"queue": q}))
	kick(t, b, out("early"))
	s := listen(t, b, sdk.ListenRequest{})
	d := recvN(t, s, 1)
	require.Equal(t, "early", string(d[0].Body), "Kick creates the group, so work kicked before any worker started is not skipped")
}
