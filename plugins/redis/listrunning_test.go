package taskiqredis

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestListRunning covers the running records of list mode: listed and
// counted while a worker holds the message, gone once it is settled, and
// bounded by the lease when the worker dies.
func TestListRunning(t *testing.T) {
	t.Parallel()
	type clock struct {
		mu  sync.Mutex
		now time.Time
	}
	// withClock gives b a clock of its own, to move past leases. Such a
	// broker is built with move_delayed = false: its delayed mover would
	// serve every queue registered on the shared server and, by this
	// clock, move other tests' delayed messages early.
	withClock := func(b *broker) *clock {
		c := &clock{now: time.Now()}
		b.now = func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
		return c
	}
	advance := func(c *clock, d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
	running := func(t *testing.T, b *broker, q string) []sdk.MessageInfo {
		page, err := b.Messages(ctxT(t), sdk.MessageQuery{Queue: q, State: sdk.StateRunning, Limit: 100})
		require.NoError(t, err)
		return page.Messages
	}
	stats := func(t *testing.T, b *broker, q string) sdk.QueueStats {
		b.insp.invalidate()
		qs, err := b.Queues(ctxT(t))
		require.NoError(t, err)
		for _, s := range qs {
			if s.Name == q {
				return s
			}
		}
		t.Fatalf("queue %s not listed", q)
		return sdk.QueueStats{}
	}
	ids := func(ms []sdk.MessageInfo) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.TaskID)
		}
		return out
	}
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"ListedUntilSettled": func(t *testing.T, e *testEnv) {
			q := e.queue("lrun")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList}))
			kick(t, b, idMsg("r1"), idMsg("r2"), idMsg("r3"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			ds := recvN(t, s, 2)
			got := running(t, b, q)
			require.ElementsMatch(t, []string{"r1", "r2"}, ids(got), "the popped messages are running")
			l := s.(*listListener)
			for _, m := range got {
				require.Equal(t, l.consumer, m.LeaseHolder)
				require.Equal(t, sdk.StateRunning, m.State)
				require.Equal(t, q, m.Queue)
				require.WithinDuration(t, b.now().Add(b.opts.lease), m.LeaseDeadline, 5*time.Second)
			}
			st := stats(t, b, q)
			require.EqualValues(t, 2, st.Running)
			require.EqualValues(t, 1, st.Queued)
			info, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "r2"})
			require.NoError(t, err)
			require.Equal(t, sdk.StateRunning, info.State, "a task by id is found running")

			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{
				{DeliveryID: ds[0].ID, Kind: sdk.SettleAck},
				{DeliveryID: ds[1].ID, Kind: sdk.SettleNack},
			}))
			require.Empty(t, running(t, b, q), "settled messages are no longer running")
			st = stats(t, b, q)
			require.EqualValues(t, 0, st.Running)
			require.EqualValues(t, 2, st.Queued, "the nacked one is queued again")
			require.EqualValues(t, 0, e.rdb.Exists(ctxT(t), b.runningKey(q), b.runningExpKey(q)).Val(), "no record is left")
		},
		"DeadWorkerRecordsExpire": func(t *testing.T, e *testEnv) {
			q := e.queue("lrun-dead")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList, "lease": "1m", "move_delayed": false}))
			c := withClock(b)
			kick(t, b, idMsg("x1"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			recvN(t, s, 1)
			require.Len(t, running(t, b, q), 1)
			require.NoError(t, s.Close()) // the worker is gone; its message with it
			advance(c, 30*time.Second)
			require.Len(t, running(t, b, q), 1, "within the lease the record stays")
			advance(c, 31*time.Second)
			require.EqualValues(t, 0, stats(t, b, q).Running, "an expired record is not counted")
			require.Empty(t, running(t, b, q), "nor listed")
			require.EqualValues(t, 0, e.rdb.HLen(ctxT(t), b.runningKey(q)).Val(), "and the listing swept it")
		},
		"RenewedWhileHeld": func(t *testing.T, e *testEnv) {
			q := e.queue("lrun-renew")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList, "lease": "1m", "move_delayed": false}))
			c := withClock(b)
			kick(t, b, idMsg("h1"), idMsg("h2"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			d := recvN(t, s, 2)
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d[1].ID, Kind: sdk.SettleAck}}))
			advance(c, 50*time.Second)
			s.(*listListener).renew(ctxT(t))
			advance(c, 50*time.Second)
			require.Equal(t, []string{"h1"}, ids(running(t, b, q)), "a renewed record outlives its first lease")
		},
		"RecordsWhatBRPOPTook": func(t *testing.T, e *testEnv) {
			// After a BRPOP returned one message, popScript records it and
			// pops the rest of the batch.
			q := e.queue("lrun-brpop")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList}))
			kick(t, b, idMsg("b2"), idMsg("b3"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			l := s.(*listListener)
			first := string(idMsg("b1").Body)
			got, ds, err := l.popRecorded(ctxT(t), l.queues, 5, &first)
			require.NoError(t, err)
			require.Equal(t, l.queues[0], got)
			require.Len(t, ds, 3)
			require.Equal(t, first, string(ds[0].Body), "the message BRPOP took comes first")
			require.ElementsMatch(t, []string{"b1", "b2", "b3"}, ids(running(t, b, q)))
			var settle []sdk.Settlement
			for _, d := range ds {
				settle = append(settle, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "x"})
			}
			require.NoError(t, s.Settle(ctxT(t), settle))
			require.Empty(t, running(t, b, q))
			require.EqualValues(t, 3, stats(t, b, q).Dead)
		},
		"RecordsOff": func(t *testing.T, e *testEnv) {
			q := e.queue("lrun-off")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList, "running_records": false}))
			kick(t, b, idMsg("o1"), idMsg("o2"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			ds := recvN(t, s, 2)
			require.Empty(t, running(t, b, q), "running_records = false writes no record")
			require.EqualValues(t, 0, e.rdb.Exists(ctxT(t), b.runningKey(q), b.runningExpKey(q)).Val())
			require.NotEqual(t, ds[0].ID, ds[1].ID)
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}, {DeliveryID: ds[1].ID, Kind: sdk.SettleNack}}))
			require.EqualValues(t, 1, stats(t, b, q).Queued, "the nacked one is queued again")
		},
		"StrictOrderAcrossQueues": func(t *testing.T, e *testEnv) {
			q := e.queue("lrun-multi")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList}))
			low := idMsg("low")
			low.Queue = q + "-low"
			high := idMsg("high")
			high.Queue = q + "-high"
			kick(t, b, low, high)
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q + "-high"}, {Name: q + "-low"}}, StrictPriority: true})
			d := recvN(t, s, 1)[0]
			require.Equal(t, q+"-high", d.Queue)
			require.Equal(t, []string{"high"}, ids(running(t, b, q+"-high")))
			require.Empty(t, running(t, b, q+"-low"))
		},
	})
}
