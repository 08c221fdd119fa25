package taskiqredis

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// idMsg is a message of task id in the wire format.
func idMsg(id string) sdk.Outgoing {
	return sdk.Outgoing{TaskID: id, TaskName: "idx.task",
		Body: []byte(`{"task_id":"` + id + `","task_name":"idx.task","labels":{},"args":[1],"kwargs":{}}`)}
}

// tidEvalScript runs luaTaskID's tid on ARGV[1].
var tidEvalScript = redis.NewScript(luaTaskID + `
local t = tid(ARGV[1])
if not t then return '' end
return t
`)

func TestBodyTaskID(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"task_id":"abc","task_name":"n"}`:                    "abc",
		`{"task_id" : "abc"}`:                                  "abc",
		"{\"task_id\":\n\t\"a-b_c.1\"}":                        "a-b_c.1",
		`{"task_name":"n","task_id":"late"}`:                   "late",
		`{"task_id":"esc\"aped"}`:                              "",
		`{"task_id":""}`:                                       "",
		`{"task_id":12}`:                                       "",
		`{"task_name":"n"}`:                                    "",
		`{"args":["\"task_id\":\"inner\""],"task_id":"outer"}`: "outer",
		`not json`:                 "",
		`{"task_id":"unterminated`: "",
	}
	e := newMiniEnv(t)
	for body, want := range cases {
		require.Equal(t, want, bodyTaskID([]byte(body)), "Go: %s", body)
		got, err := tidEvalScript.Run(ctxT(t), e.rdb, nil, body).Text()
		require.NoError(t, err)
		require.Equal(t, want, got, "Lua reads the same task id as Go: %s", body)
	}
}

// TestTaskIndex covers the task-id index: written by a kick, moved with the
// message, gone once the message is settled, and stale fields dropped.
func TestTaskIndex(t *testing.T) {
	t.Parallel()
	field := func(t *testing.T, e *testEnv, b *broker, q, id string) string {
		v, err := e.rdb.HGet(ctxT(t), b.idsKey(q), id).Result()
		if err == redis.Nil {
			return ""
		}
		require.NoError(t, err)
		return v
	}
	indexed := func(t *testing.T, b *broker, q, id string) (sdk.MessageInfo, bool) {
		info, ok, err := b.taskFromIndex(ctxT(t), []string{q}, id)
		require.NoError(t, err)
		return info, ok
	}
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"KickIndexesAndAckRemoves": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-ack")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("a1"), idMsg("a2"))
			v := field(t, e, b, q, "a1")
			require.True(t, strings.HasPrefix(v, "s|"), "a kick writes the field: %q", v)
			info, ok := indexed(t, b, q, "a1")
			require.True(t, ok)
			require.Equal(t, sdk.StateQueued, info.State)
			require.Equal(t, "a1", info.TaskID)
			require.Equal(t, strings.TrimPrefix(v, "s|"), info.Ref)

			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			ds := recvN(t, s, 2)
			info, ok = indexed(t, b, q, "a1")
			require.True(t, ok)
			require.Equal(t, sdk.StateRunning, info.State, "a delivered message is running")
			require.Equal(t, b.opts.consumer, info.LeaseHolder)

			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
			require.Empty(t, field(t, e, b, q, "a1"), "an acked message's field is gone")
			require.NotEmpty(t, field(t, e, b, q, "a2"), "the other one's stays")
			_, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "a1"})
			require.ErrorIs(t, err, sdk.ErrTaskNotFound)
		},
		"NackDelayedThenMoved": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-nack")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("n1"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			d := recvN(t, s, 1)[0]
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack, Delay: time.Hour}}))
			require.True(t, strings.HasPrefix(field(t, e, b, q, "n1"), "z|"))
			info, ok := indexed(t, b, q, "n1")
			require.True(t, ok)
			require.Equal(t, sdk.StateDelayed, info.State)

			// Due now: the mover puts it back in the stream.
			zs, err := e.rdb.ZRange(ctxT(t), b.delayedKey(q), 0, -1).Result()
			require.NoError(t, err)
			require.Len(t, zs, 1)
			require.NoError(t, e.rdb.ZAdd(ctxT(t), b.delayedKey(q), redis.Z{Score: 1, Member: zs[0]}).Err())
			n, _, err := b.moveDue(ctxT(t), modeStream, q, time.Now())
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.True(t, strings.HasPrefix(field(t, e, b, q, "n1"), "s|"), "the move points the field at the new entry")
			info, ok = indexed(t, b, q, "n1")
			require.True(t, ok)
			require.Equal(t, sdk.StateQueued, info.State)
			require.Equal(t, 1, info.Attempt, "the entry carries the attempt of its first delivery")

			// A nack without delay re-adds it at once.
			d = recvN(t, s, 1)[0]
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack}}))
			info, ok = indexed(t, b, q, "n1")
			require.True(t, ok)
			require.Equal(t, sdk.StateQueued, info.State)
			require.Equal(t, 2, info.Attempt)
		},
		"DeadLetterFoundAndRequeued": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-dead")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("d1"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			d := recvN(t, s, 1)[0]
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "boom"}}))
			info, ok := indexed(t, b, q, "d1")
			require.True(t, ok)
			require.Equal(t, sdk.StateDead, info.State)
			require.Equal(t, "boom", info.Reason)

			res, err := b.Act(ctxT(t), sdk.Action{Kind: sdk.ActionRequeue, Queue: q, State: sdk.StateDead, Refs: []string{info.Ref}})
			require.NoError(t, err)
			require.Equal(t, 1, res.Done)
			info, ok = indexed(t, b, q, "d1")
			require.True(t, ok, "a requeued dead letter is found in the queue")
			require.Equal(t, sdk.StateQueued, info.State)

			res, err = b.Act(ctxT(t), sdk.Action{Kind: sdk.ActionDelete, Queue: q, State: sdk.StateQueued, Refs: []string{info.Ref}})
			require.NoError(t, err)
			require.Equal(t, 1, res.Done)
			require.Empty(t, field(t, e, b, q, "d1"), "a deleted message's field is gone")
		},
		"MovedToAnotherQueue": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-move")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("m1"))
			info, ok := indexed(t, b, q, "m1")
			require.True(t, ok)
			res, err := b.Act(ctxT(t), sdk.Action{Kind: sdk.ActionMove, Queue: q, State: sdk.StateQueued, Refs: []string{info.Ref}, Target: q + "-b"})
			require.NoError(t, err)
			require.Equal(t, 1, res.Done)
			require.Empty(t, field(t, e, b, q, "m1"))
			got, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "m1"})
			require.NoError(t, err)
			require.Equal(t, q+"-b", got.Queue)
			_, ok = indexed(t, b, q+"-b", "m1")
			require.True(t, ok, "found through the target queue's index")
		},
		"PythonProducedIndexedOnMiss": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-py")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("go1"))
			// taskiq-redis writes a bare XADD: no index field.
			require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: b.streamKey(q), Values: []any{"data", idMsg("py1").Body}}).Err())
			_, ok := indexed(t, b, q, "py1")
			require.False(t, ok)
			got, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "py1"})
			require.NoError(t, err, "a message without a field is found")
			require.Equal(t, sdk.StateQueued, got.State)
			require.Equal(t, "py1", got.TaskID)
			// The miss indexed the entries past the backfill cursor: py1
			// now has its field, go1 kept the one its kick wrote.
			require.Equal(t, idxStream(got.Ref), field(t, e, b, q, "py1"))
			goInfo, ok := indexed(t, b, q, "go1")
			require.True(t, ok)
			require.Equal(t, idxStream(goInfo.Ref), field(t, e, b, q, "go1"))
			// A later entry is indexed by the next miss, from the cursor on.
			require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: b.streamKey(q), Values: []any{"data", idMsg("py2").Body}}).Err())
			got2, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "py2"})
			require.NoError(t, err)
			require.Equal(t, "py2", got2.TaskID)
			require.Equal(t, idxStream(got2.Ref), field(t, e, b, q, "py2"))
			cursor, err := e.rdb.Get(ctxT(t), b.idsKey(q)+":upto").Result()
			require.NoError(t, err)
			require.Equal(t, got2.Ref, cursor, "the cursor is past the last entry read")
		},
		"QueuesRefreshIndexesInTheBackground": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-bg")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			for _, id := range []string{"pyA", "pyB"} {
				require.NoError(t, e.rdb.XAdd(ctxT(t), &redis.XAddArgs{Stream: b.streamKey(q), Values: []any{"data", idMsg(id).Body}}).Err())
			}
			_, err := b.Queues(ctxT(t))
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				return field(t, e, b, q, "pyA") != "" && field(t, e, b, q, "pyB") != ""
			}, 10*time.Second, 5*time.Millisecond, "a queues refresh indexes what a Python producer wrote")
			info, ok := indexed(t, b, q, "pyB")
			require.True(t, ok, "found through the index, without a search")
			require.Equal(t, "pyB", info.TaskID)
		},
		"StaleFieldDroppedOnLookup": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-stale")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("s1"))
			info, ok := indexed(t, b, q, "s1")
			require.True(t, ok)
			// Trimmed (maxlen) or deleted behind the broker's back.
			require.NoError(t, e.rdb.XDel(ctxT(t), b.streamKey(q), info.Ref).Err())
			_, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "s1"})
			require.ErrorIs(t, err, sdk.ErrTaskNotFound)
			require.Empty(t, field(t, e, b, q, "s1"), "the lookup dropped the stale field")
		},
		"SweepDropsStale": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-sweep")
			b := e.broker(t, fast(map[string]any{"queue": q, "delete_acked": false}))
			var msgs []sdk.Outgoing
			for _, id := range []string{"w1", "w2", "w3", "w4"} {
				msgs = append(msgs, idMsg(id))
			}
			late := idMsg("w5")
			late.Delay = time.Hour
			kick(t, b, append(msgs, late)...)
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			ds := recvN(t, s, 2) // w1, w2 running
			w3, _ := indexed(t, b, q, "w3")
			// A Python worker acks w1 (the field stays: it does not know
			// the index); w3 is trimmed.
			require.NoError(t, e.rdb.XAck(ctxT(t), b.streamKey(q), b.groupName(q), strings.TrimPrefix(field(t, e, b, q, "w1"), "s|")).Err())
			require.NoError(t, e.rdb.XDel(ctxT(t), b.streamKey(q), w3.Ref).Err())
			require.EqualValues(t, 5, e.rdb.HLen(ctxT(t), b.idsKey(q)).Val())
			require.NoError(t, b.sweepIndex(ctxT(t), b.spec(sdk.Queue{Name: q})))
			for id, live := range map[string]bool{"w1": false, "w2": true, "w3": false, "w4": true, "w5": true} {
				require.Equal(t, live, field(t, e, b, q, id) != "", "field of %s kept: %v", id, live)
			}
			_ = ds
		},
		"SameTaskIDKickedAgain": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-again")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("r1"))
			s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: q}}})
			d := recvN(t, s, 1)[0]
			// A retry kicks the same task id before the first is acked.
			kick(t, b, idMsg("r1"))
			again := field(t, e, b, q, "r1")
			require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleAck}}))
			require.Equal(t, again, field(t, e, b, q, "r1"), "the ack of the first leaves the field of the second")
			info, ok := indexed(t, b, q, "r1")
			require.True(t, ok)
			require.Equal(t, sdk.StateQueued, info.State)
		},
		"KickAfterScriptFlush": func(t *testing.T, e *testEnv) {
			if e.real() {
				t.Skip("SCRIPT FLUSH would empty the script cache of every user of the shared server")
			}
			q := e.queue("idx-flush")
			b := e.broker(t, fast(map[string]any{"queue": q}))
			kick(t, b, idMsg("f1"))
			require.NoError(t, e.rdb.ScriptFlush(ctxT(t)).Err())
			kick(t, b, idMsg("f2"), idMsg("f3"))
			for _, id := range []string{"f1", "f2", "f3"} {
				_, ok := indexed(t, b, q, id)
				require.True(t, ok, "%s indexed", id)
			}
			require.EqualValues(t, 3, e.rdb.XLen(ctxT(t), b.streamKey(q)).Val(), "each message added once")
		},
		"ListModeKeepsNoIndex": func(t *testing.T, e *testEnv) {
			q := e.queue("idx-list")
			b := e.broker(t, fast(map[string]any{"queue": q, "mode": modeList}))
			kick(t, b, idMsg("l1"))
			require.EqualValues(t, 0, e.rdb.Exists(ctxT(t), b.idsKey(q)).Val())
			got, err := b.Task(ctxT(t), sdk.TaskRef{TaskID: "l1"})
			require.NoError(t, err)
			require.Equal(t, sdk.StateQueued, got.State)
		},
	})
}
