package taskiqredis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestListAndPubSubModes(t *testing.T) {
	t.Parallel()
	runSuite(t, map[string]func(t *testing.T, e *testEnv){
		"ListWireLayout":     testListWireLayout,
		"ListPythonPush":     testListPythonPush,
		"ListNackAndDead":    testListNackAndDead,
		"ListDelay":          testListDelay,
		"ListRoutingStrict":  testListRoutingStrict,
		"PubSubBroadcast":    testPubSubBroadcast,
		"PubSubRejectsDelay": testPubSubRejectsDelay,
		"PubSubDeadLetter":   testPubSubDeadLetter,
	})
}

func testListWireLayout(t *testing.T, e *testEnv) {
	q := e.queue("taskiq")
	b := e.broker(t, fast(map[string]any{"mode": "list", "queue": q}))
	kick(t, b, out("first"), out("second"))
	vals, err := e.rdb.LRange(ctxT(t), q, 0, -1).Result()
	require.NoError(t, err)
	require.Equal(t, []string{"second", "first"}, vals, "LPUSH, as taskiq-redis")
	s := listen(t, b, sdk.ListenRequest{})
	ds := recvN(t, s, 2)
	require.Equal(t, "first", string(ds[0].Body), "BRPOP takes the oldest")
	require.Equal(t, "second", string(ds[1].Body))
	require.True(t, ds[0].LeaseDeadline.IsZero(), "no leases in list mode")
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}, {DeliveryID: ds[1].ID, Kind: sdk.SettleExtend}}))
	n, err := e.rdb.LLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

func testListPythonPush(t *testing.T, e *testEnv) {
	q := e.queue("taskiq")
	b := e.broker(t, fast(map[string]any{"mode": "list", "queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	require.NoError(t, e.rdb.LPush(ctxT(t), q, pythonMessage).Err())
	ds := recvN(t, s, 1)
	require.Equal(t, pythonMessage, string(ds[0].Body))
}

func testListNackAndDead(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"mode": "list", "queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("retry"), out("dead"))
	ds := recvN(t, s, 2)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{
		{DeliveryID: ds[0].ID, Kind: sdk.SettleNack},
		{DeliveryID: ds[1].ID, Kind: sdk.SettleDeadLetter, Reason: "bad"},
	}))
	again := recvN(t, s, 1)
	require.Equal(t, "retry", string(again[0].Body))
	dead, err := e.rdb.XRange(ctxT(t), q+":dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "dead", dead[0].Values["data"])
	require.Equal(t, "bad", dead[0].Values["reason"])
	require.Equal(t, q, dead[0].Values["queue"])
}

func testListDelay(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, map[string]any{"mode": "list", "queue": q})
	now := time.Now()
	b.now = func() time.Time { return now }
	kick(t, b, sdk.Outgoing{Body: []byte("d"), Delay: time.Minute})
	n, err := e.rdb.LLen(ctxT(t), q).Result()
	require.NoError(t, err)
	require.Zero(t, n)
	moved, _, err := b.moveDue(ctxT(t), modeList, q, now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	vals, err := e.rdb.LRange(ctxT(t), q, 0, -1).Result()
	require.NoError(t, err)
	require.Equal(t, []string{"d"}, vals)
}

func testListRoutingStrict(t *testing.T, e *testEnv) {
	hi, lo := e.queue("hi"), e.queue("lo")
	b := e.broker(t, fast(map[string]any{"mode": "list", "queue": lo}))
	kick(t, b, sdk.Outgoing{Body: []byte("lo"), Queue: lo}, sdk.Outgoing{Body: []byte("hi"), Queue: hi})
	s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: hi}, {Name: lo}}, StrictPriority: true})
	d := recvN(t, s, 1)
	require.Equal(t, "hi", string(d[0].Body))
	require.Equal(t, hi, d[0].Queue)
	d = recvN(t, s, 1)
	require.Equal(t, "lo", string(d[0].Body))
}

func testPubSubBroadcast(t *testing.T, e *testEnv) {
	q := e.queue("taskiq")
	b := e.broker(t, fast(map[string]any{"mode": "pubsub", "queue": q}))
	s1 := listen(t, b, sdk.ListenRequest{})
	s2 := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("everyone"))
	require.NoError(t, e.rdb.Publish(ctxT(t), q, pythonMessage).Err(), "PUBLISH <queue>, as taskiq-redis")
	for _, s := range []sdk.Stream{s1, s2} {
		ds := recvN(t, s, 2)
		require.Equal(t, "everyone", string(ds[0].Body))
		require.Equal(t, pythonMessage, string(ds[1].Body))
		require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}, {DeliveryID: ds[1].ID, Kind: sdk.SettleNack}}))
	}
}

func testPubSubRejectsDelay(t *testing.T, e *testEnv) {
	b := e.broker(t, fast(map[string]any{"mode": "pubsub", "queue": e.queue("q")}))
	err := b.Kick(ctxT(t), []sdk.Outgoing{{Body: []byte("x"), Delay: time.Second}})
	require.ErrorIs(t, err, sdk.ErrUnsupported)
}

func testPubSubDeadLetter(t *testing.T, e *testEnv) {
	q := e.queue("q")
	b := e.broker(t, fast(map[string]any{"mode": "pubsub", "queue": q}))
	s := listen(t, b, sdk.ListenRequest{})
	kick(t, b, out("x"))
	ds := recvN(t, s, 1)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleDeadLetter, Reason: "r"}}))
	dead, err := e.rdb.XRange(ctxT(t), q+":dead", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "x", dead[0].Values["data"])
}

// TestReconnect stops Redis under a listener and a kicker and brings it back
// on the same address (miniredis only: the real server is not ours to stop).
func TestReconnect(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"stream", "list"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			mr := miniredis.RunT(t)
			mr.RequireAuth("s3cret-pass")
			e := &testEnv{url: "redis://" + mr.Addr() + "/0", mr: mr}
			b := e.broker(t, fast(map[string]any{"mode": mode, "queue": "q", "password": "s3cret-pass"}))
			s := listen(t, b, sdk.ListenRequest{})
			kick(t, b, out("before"))
			require.Equal(t, "before", string(recvN(t, s, 1)[0].Body))

			addr := mr.Addr()
			recvd := make(chan sdk.Delivery, 1)
			go func() {
				ds, err := s.Recv(context.Background(), 1)
				if err == nil {
					recvd <- ds[0]
				}
			}()
			mr.Close()
			err := b.Kick(ctxT(t), []sdk.Outgoing{out("x")})
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			require.Contains(t, err.Error(), addr, "the error names the address")
			require.NotContains(t, err.Error(), "s3cret-pass", "and never the password")

			// A fresh server on the same address (miniredis's Restart keeps
			// its context cancelled, so blocking commands would never
			// answer). It starts empty, like Redis without persistence: the
			// stream listener must re-create its group and resume.
			mr2 := miniredis.NewMiniRedis()
			mr2.RequireAuth("s3cret-pass")
			require.NoError(t, mr2.StartAddr(addr))
			t.Cleanup(mr2.Close)
			require.Eventually(t, func() bool {
				return b.Kick(ctxT(t), []sdk.Outgoing{out("after")}) == nil
			}, 10*time.Second, 20*time.Millisecond)
			select {
			case d := <-recvd:
				require.Equal(t, "after", string(d.Body))
			case <-time.After(15 * time.Second):
				t.Fatal("listener did not resume after Redis came back")
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	bad := func(raw string) []*sdk.ConfigError {
		_, err := newBroker(context.Background(), sdk.Config{Raw: []byte(raw)})
		require.Error(t, err)
		return sdk.ConfigErrors(err)
	}
	attrs := func(ces []*sdk.ConfigError) []string {
		var out []string
		for _, c := range ces {
			out = append(out, c.Attribute)
		}
		return out
	}
	require.ElementsMatch(t, []string{"mode", "lease", "count", "max_attempts", "unavailable_after"},
		attrs(bad(`{"mode":"kafka","lease":"soon","count":0,"max_attempts":1.5,"unavailable_after":"500ms"}`)))
	require.Contains(t, bad(`{"unavailable_after":"0s"}`)[0].Error(), "at least 1s")
	require.Equal(t, []string{"sentinel_addrs"}, attrs(bad(`{"sentinel_master":"m"}`)))
	ces := bad(`{"url":"http://user:hunter2@host:1/0"}`)
	require.Equal(t, "url", ces[0].Attribute)
	require.NotContains(t, ces[0].Error(), "hunter2")

	_, err := newResultBackend(context.Background(), sdk.Config{Raw: []byte(`{"result_ttl":"x","poll_fallback":"0s"}`)})
	require.ElementsMatch(t, []string{"result_ttl", "poll_fallback"}, attrs(sdk.ConfigErrors(err)))

	b, err := newBroker(context.Background(), sdk.Config{Raw: []byte(`{}`)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	require.Equal(t, "taskiq", b.streamKey(""))
	require.Equal(t, "taskiq:delayed", b.delayedKey(""))
	require.Equal(t, "taskiq:dead", b.deadKey(""))
	require.Equal(t, "taskiq", b.groupName(""))
	require.Equal(t, 30*time.Second, b.opts.lease)
	require.Equal(t, 2*time.Second, b.opts.block)
	require.Equal(t, 100, b.opts.count)
	require.Equal(t, 10, b.opts.maxAttempts)
	require.Equal(t, 10*time.Second, b.opts.unavailableAfter)
	require.True(t, strings.Count(b.opts.consumer, "-") >= 2, "hostname-pid-random: %s", b.opts.consumer)

	c, err := newBroker(context.Background(), sdk.Config{Raw: []byte(`{"cluster_addrs":["127.0.0.1:7000"],"queue":"jobs"}`)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	require.Equal(t, "{jobs}", c.streamKey(""))
	require.Equal(t, "{jobs}:delayed", c.delayedKey(""))
	require.Equal(t, "{jobs}:dead", c.deadKey(""))
	require.Equal(t, "taskiq", c.groupName(""), "the group is taskiq whatever the queue, as in taskiq-redis")
	require.Equal(t, "x{t}", c.streamKey("x{t}"), "a name with its own hash tag is kept")

	// The schema documents every attribute, with defaults.
	for _, s := range []sdk.Schema{brokerSchema(), resultSchema()} {
		for _, a := range s.Attributes {
			require.NotEmpty(t, a.Description, a.Name)
			require.NotNil(t, a.Default, a.Name)
		}
		pw, ok := s.Attribute("password")
		require.True(t, ok)
		require.True(t, pw.Sensitive)
	}
	require.False(t, errors.Is(err, sdk.ErrUnavailable))
}
