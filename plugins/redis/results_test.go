package taskiqredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// errorResult is a failed result as Python taskiq stores it with
// JSONSerializer, including a nested cause.
const errorResult = `{"is_err": true, "log": null, "return_value": null, "execution_time": 0.25, ` +
	`"labels": {"max_retries": 3, "retry_on_error": true}, "error": {"exc_type": "ValueError", ` +
	`"exc_message": ["boom", 42], "exc_module": "builtins", "exc_cause": {"exc_type": "KeyError", ` +
	`"exc_message": ["k"], "exc_module": "builtins", "exc_cause": null, "exc_context": null, ` +
	`"exc_suppress_context": false}, "exc_context": null, "exc_suppress_context": true}}`

func TestResultBackend(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"WireLayout":         testResultWireLayout,
		"Prefix":             testResultPrefix,
		"ErrorRoundTrip":     testResultErrorRoundTrip,
		"NotFound":           testResultNotFound,
		"KeepResultsFalse":   testResultGetDel,
		"TTL":                testResultTTL,
		"Progress":           testResultProgress,
		"WaitNotified":       testWaitNotified,
		"WaitTakesNotified":  testWaitTakesNotifiedResult,
		"ReadBatch":          testResultReadBatch,
		"WaitAlreadyStored":  testWaitAlreadyStored,
		"WaitPollFallback":   testWaitPollFallback,
		"WaitManyConcurrent": testWaitManyConcurrent,
		"WaitContextEnds":    testWaitContextEnds,
	})
}

func taskID(e *testEnv) string { return e.queue("5f1c0e7d9a2b4c6e8f0a1b2c3d4e5f60") }

func testResultWireLayout(t *testing.T, e *testEnv) {
	r := e.results(t, nil)
	id := taskID(e)
	body, err := wire.EncodeResult(&wire.Result{ReturnValue: []byte("3"), ExecutionTime: 0.01, Labels: map[string]any{"max_retries": 3}})
	require.NoError(t, err)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: body}}))
	raw, err := e.rdb.Get(ctxT(t), id).Bytes()
	require.NoError(t, err)
	require.Equal(t, body, raw, "SET <task_id> <json>, as taskiq-redis")
	ttl, err := e.rdb.TTL(ctxT(t), id).Result()
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), ttl, "no expiry by default")
	ready, err := r.IsReady(ctxT(t), id)
	require.NoError(t, err)
	require.True(t, ready)
	got, err := r.GetResult(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, body, got)
}

func testResultPrefix(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"prefix": "app"})
	id := taskID(e)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`{"is_err": false}`)}, {TaskID: id + "b", Body: []byte(`2`)}}))
	raw, err := e.rdb.Get(ctxT(t), "app:"+id).Result()
	require.NoError(t, err)
	require.Equal(t, `{"is_err": false}`, raw)
	n, err := e.rdb.Exists(ctxT(t), id).Result()
	require.NoError(t, err)
	require.Zero(t, n)
	got, err := r.GetResult(ctxT(t), id+"b")
	require.NoError(t, err)
	require.Equal(t, "2", string(got))
}

func testResultErrorRoundTrip(t *testing.T, e *testEnv) {
	r := e.results(t, nil)
	id := taskID(e)
	// Written by a Python worker...
	require.NoError(t, e.rdb.Set(ctxT(t), id, errorResult, 0).Err())
	got, err := r.GetResult(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, errorResult, string(got), "bytes are returned untouched")
	res, err := wire.DecodeResult(got)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Equal(t, "KeyError", res.Error.ExcCause.ExcType)
	// ...and stored by us byte for byte.
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id + "-go", Body: []byte(errorResult)}}))
	raw, err := e.rdb.Get(ctxT(t), id+"-go").Result()
	require.NoError(t, err)
	require.Equal(t, errorResult, raw)
}

func testResultNotFound(t *testing.T, e *testEnv) {
	r := e.results(t, nil)
	_, err := r.GetResult(ctxT(t), taskID(e))
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = r.GetProgress(ctxT(t), taskID(e))
	require.ErrorIs(t, err, sdk.ErrNotFound)
	ready, err := r.IsReady(ctxT(t), taskID(e))
	require.NoError(t, err)
	require.False(t, ready)
}

func testResultGetDel(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"keep_results": false})
	id := taskID(e)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`1`)}}))
	got, err := r.GetResult(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, "1", string(got))
	_, err = r.GetResult(ctxT(t), id)
	require.ErrorIs(t, err, sdk.ErrNotFound, "read once, then gone")
}

func testResultTTL(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"result_ttl": "1h"})
	id := taskID(e)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`1`)}}))
	require.NoError(t, r.SetProgress(ctxT(t), id, []byte(`{}`)))
	for _, k := range []string{id, id + "__progress"} {
		ttl, err := e.rdb.TTL(ctxT(t), k).Result()
		require.NoError(t, err)
		require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5, k)
	}
}

func testResultProgress(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"prefix": "p"})
	id := taskID(e)
	p := []byte(`{"state": "STARTED", "meta": {"done": 3}}`)
	require.NoError(t, r.SetProgress(ctxT(t), id, p))
	raw, err := e.rdb.Get(ctxT(t), "p:"+id+"__progress").Bytes()
	require.NoError(t, err)
	require.Equal(t, p, raw)
	got, err := r.GetProgress(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, p, got)
}

func testWaitNotified(t *testing.T, e *testEnv) {
	// poll_fallback is an hour: only the notification can end this wait.
	r := e.results(t, map[string]any{"poll_fallback": "1h"})
	w := e.results(t, nil)
	id := taskID(e)
	// Store once the waiter is subscribed (otherwise the test could pass
	// through the initial read alone).
	got := waitSubscribed(t, e, r, id)
	require.NoError(t, w.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`"done"`)}}))
	select {
	case b := <-got:
		require.Equal(t, `"done"`, string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("WaitResult was not woken by the notification")
	}
}

// One pipelined batch of reads gives each read its own outcome: a stored
// result, a missing one, and a key of the wrong type.
func testResultReadBatch(t *testing.T, e *testEnv) {
	r := e.results(t, nil)
	id := taskID(e)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`{"a":1}`)}}))
	require.NoError(t, e.rdb.LPush(ctxT(t), id+"-list", "x").Err())
	reads := []*resultRead{{taskID: id}, {taskID: id + "-missing"}, {taskID: id + "-list"}}
	require.NoError(t, r.readBatch(ctxT(t), reads))
	require.NoError(t, reads[0].err)
	require.Equal(t, `{"a":1}`, string(reads[0].body))
	require.ErrorIs(t, reads[1].err, redis.Nil)
	require.Error(t, reads[2].err)
	require.NotErrorIs(t, reads[2].err, redis.Nil)

	_, err := r.GetResult(ctxT(t), id+"-missing")
	require.ErrorIs(t, err, sdk.ErrNotFound)
}

// waitSubscribed starts WaitResult on r and returns once its subscription
// is live on the server.
func waitSubscribed(t *testing.T, e *testEnv, r *resultBackend, id string) <-chan []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, err := r.WaitResult(ctxT(t), id)
		if err == nil {
			got <- b
		}
	}()
	require.Eventually(t, func() bool {
		n, err := e.rdb.PubSubNumSub(ctxT(t), resultChannel(id)).Result()
		return err == nil && n[resultChannel(id)] == 1
	}, 10*time.Second, 5*time.Millisecond)
	return got
}

// A notification carries a small result: the waiter returns it without a
// GET. Published here with nothing stored, the waiter can only have it from
// the notification. With keep_results off the waiter must GETDEL, so it
// ignores the payload and returns what is stored.
func testWaitTakesNotifiedResult(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"poll_fallback": "1h"})
	id := taskID(e)
	got := waitSubscribed(t, e, r, id)
	require.NoError(t, e.rdb.Publish(ctxT(t), resultChannel(id), `{"from":"notification"}`).Err())
	select {
	case b := <-got:
		require.Equal(t, `{"from":"notification"}`, string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("WaitResult did not take the result from its notification")
	}

	del := e.results(t, map[string]any{"poll_fallback": "1h", "keep_results": false})
	id2 := id + "-getdel"
	got = waitSubscribed(t, e, del, id2)
	require.NoError(t, e.rdb.Publish(ctxT(t), resultChannel(id2), `{"from":"notification"}`).Err())
	require.NoError(t, del.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id2, Body: []byte(`{"from":"store"}`)}}))
	select {
	case b := <-got:
		require.Equal(t, `{"from":"store"}`, string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("WaitResult was not woken")
	}
	n, err := e.rdb.Exists(ctxT(t), id2).Result()
	require.NoError(t, err)
	require.Zero(t, n, "read with keep_results off, the result is deleted")
}

func testWaitAlreadyStored(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"poll_fallback": "1h"})
	id := taskID(e)
	require.NoError(t, r.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: id, Body: []byte(`1`)}}))
	b, err := r.WaitResult(ctxT(t), id)
	require.NoError(t, err)
	require.Equal(t, "1", string(b))
}

func testWaitPollFallback(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"poll_fallback": "20ms"})
	id := taskID(e)
	got := make(chan []byte, 1)
	go func() {
		b, err := r.WaitResult(ctxT(t), id)
		if err == nil {
			got <- b
		}
	}()
	// Stored without a notification (a Python worker does not publish).
	require.NoError(t, e.rdb.Set(ctxT(t), id, "py", 0).Err())
	select {
	case b := <-got:
		require.Equal(t, "py", string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("WaitResult did not find the result by polling")
	}
}

func testWaitManyConcurrent(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"poll_fallback": "1h"})
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = taskID(e) + "-" + randomHex(4)
	}
	errs := make(chan error, 2*n)
	for _, id := range ids {
		// Two waiters per id share one subscription.
		for range 2 {
			go func() {
				b, err := r.WaitResult(ctxT(t), id)
				if err == nil && string(b) != id {
					err = context.Canceled
				}
				errs <- err
			}()
		}
	}
	var batch []sdk.StoredResult
	for _, id := range ids {
		batch = append(batch, sdk.StoredResult{TaskID: id, Body: []byte(id)})
	}
	require.NoError(t, r.SetResults(ctxT(t), batch))
	for range 2 * n {
		require.NoError(t, <-errs)
	}
}

func testWaitContextEnds(t *testing.T, e *testEnv) {
	r := e.results(t, map[string]any{"poll_fallback": "10ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := r.WaitResult(ctx, taskID(e))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
