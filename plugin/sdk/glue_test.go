package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testExe(t testing.TB) string {
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

// readStats reads the fake broker's counters from its stats file.
func readStats(t *testing.T, path string) brokerStats {
	t.Helper()
	var s brokerStats
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &s))
	return s
}

func eventuallyStats(t *testing.T, path string, cond func(brokerStats) bool) brokerStats {
	t.Helper()
	var last brokerStats
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(data, &last) != nil {
			return false
		}
		return cond(last)
	}, 10*time.Second, 5*time.Millisecond, "stats never matched")
	return last
}

// recvN receives exactly n deliveries.
func recvN(t *testing.T, ctx context.Context, s sdk.Stream, n int) []sdk.Delivery {
	t.Helper()
	var out []sdk.Delivery
	for len(out) < n {
		ds, err := s.Recv(ctx, n-len(out))
		require.NoError(t, err)
		require.NotEmpty(t, ds)
		require.LessOrEqual(t, len(ds), n-len(out), "Recv returned more than max")
		out = append(out, ds...)
	}
	return out
}

func outgoing(n int, prefix string) []sdk.Outgoing {
	msgs := make([]sdk.Outgoing, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = sdk.Outgoing{TaskID: id, TaskName: "t", Body: []byte(`{"task_id":"` + id + `"}`)}
	}
	return msgs
}

func acks(ds []sdk.Delivery) []sdk.Settlement {
	ss := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		ss[i] = sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck}
	}
	return ss
}

func TestInfo(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, "", "")
	info, err := c.Info(testCtx(t))
	require.NoError(t, err)

	require.Equal(t, "taskiq-fake", info.Name)
	require.Equal(t, "1.2.3", info.Version)
	require.Equal(t, sdk.ProtocolVersion, info.ProtocolVersion)
	var kinds []sdk.Kind
	for _, r := range info.Roles {
		kinds = append(kinds, r.Kind)
	}
	require.Equal(t, []sdk.Kind{sdk.KindBroker, sdk.KindResultBackend, sdk.KindMiddleware}, kinds)

	br, ok := info.Role(sdk.KindBroker)
	require.True(t, ok)
	require.Equal(t, []string{sdk.CapAckable, sdk.CapDeadLetter}, br.Capabilities)
	require.Empty(t, br.Hooks)
	q, ok := br.Schema.Attribute("queue")
	require.True(t, ok)
	require.Equal(t, sdk.Attribute{Name: "queue", Type: sdk.TypeString, Required: true, Description: "queue to use"}, q)
	pw, _ := br.Schema.Attribute("password")
	require.True(t, pw.Sensitive)
	mo, _ := br.Schema.Attribute("max_outstanding")
	require.Equal(t, float64(0), mo.Default, "numbers come back as float64")

	rb, ok := info.Role(sdk.KindResultBackend)
	require.True(t, ok)
	require.Equal(t, []string{sdk.CapWait, sdk.CapProgress}, rb.Capabilities)
	ttl, _ := rb.Schema.Attribute("ttl")
	require.Equal(t, sdk.TypeDuration, ttl.Type)
	require.Equal(t, "1h", ttl.Default)
	tags, _ := rb.Schema.Attribute("tags")
	require.Equal(t, []string{"a", "b"}, tags.Default)
	nw, _ := rb.Schema.Attribute("no_wait")
	require.Equal(t, false, nw.Default)

	mw, ok := info.Role(sdk.KindMiddleware)
	require.True(t, ok)
	require.Equal(t, []sdk.Hook{sdk.HookPreSend, sdk.HookOnError, sdk.HookPostExecute}, mw.Hooks, "hooks detected from the value New builds")
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, "", "")

	t.Run("calls before configure fail", func(t *testing.T) {
		err := c.Broker().Kick(ctx, outgoing(1, "x"))
		require.ErrorContains(t, err, "plugin not configured")
		_, err = c.ResultBackend().GetResult(ctx, "x")
		require.ErrorContains(t, err, "plugin not configured")
		_, err = c.Broker().Listen(ctx, sdk.ListenRequest{})
		require.ErrorContains(t, err, "plugin not configured")
	})

	t.Run("diagnostics name attributes", func(t *testing.T) {
		diags, err := c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue": "q", "max_outstanding": -2}`))
		require.NoError(t, err)
		require.Len(t, diags, 1)
		require.Equal(t, "max_outstanding", diags[0].Attribute)
		require.Contains(t, diags[0].Message, "got -2")
	})

	t.Run("the schema is checked in the plugin before New", func(t *testing.T) {
		diags, err := c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`{"max_outstanding": -2}`))
		require.NoError(t, err)
		require.Len(t, diags, 1, "New does not run on a config its schema refuses")
		require.Equal(t, "queue", diags[0].Attribute)
		require.Contains(t, diags[0].Message, "is required")

		diags, err = c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue": 5}`))
		require.NoError(t, err)
		require.Len(t, diags, 1)
		require.Equal(t, "queue", diags[0].Attribute)
		require.Contains(t, diags[0].Message, "must be a string, got 5")
	})

	t.Run("malformed config is a block-level diagnostic", func(t *testing.T) {
		diags, err := c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`[1]`))
		require.NoError(t, err)
		require.Len(t, diags, 1)
		require.Empty(t, diags[0].Attribute)
		require.Contains(t, diags[0].Message, "not a JSON object")
	})

	t.Run("unknown role", func(t *testing.T) {
		diags, err := c.Configure(ctx, sdk.Kind("scheduler"), "default", nil)
		require.NoError(t, err)
		require.Len(t, diags, 1)
		require.Contains(t, diags[0].Message, `does not serve the "scheduler" role; it serves: broker, result_backend, middleware`)
	})

	t.Run("configure, then reconfigure as another role", func(t *testing.T) {
		diags, err := c.Configure(ctx, sdk.KindBroker, "default", json.RawMessage(`{"queue":"q"}`))
		require.NoError(t, err)
		require.Empty(t, diags)
		require.NoError(t, c.Broker().Kick(ctx, outgoing(1, "x")))
		_, err = c.ResultBackend().GetResult(ctx, "x")
		require.ErrorContains(t, err, "configured as broker, not result_backend")

		diags, err = c.Configure(ctx, sdk.KindResultBackend, "default", nil)
		require.NoError(t, err)
		require.Empty(t, diags)
		_, err = c.ResultBackend().GetResult(ctx, "x")
		require.ErrorIs(t, err, sdk.ErrNotFound)
		require.ErrorContains(t, c.Broker().Kick(ctx, outgoing(1, "x")), "configured as result_backend")
	})
}

func TestKickThenListenReceivesAll(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stats := filepath.Join(t.TempDir(), "stats.json")
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q","stats_file":"`+stats+`"}`)
	b := c.Broker()

	want := map[string]bool{}
	for batch := range 3 {
		msgs := outgoing(100, fmt.Sprintf("b%d", batch))
		for _, m := range msgs {
			want[string(m.Body)] = true
		}
		require.NoError(t, b.Kick(ctx, msgs))
	}
	s, err := b.Listen(ctx, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "q", Weight: 1}}})
	require.NoError(t, err)
	defer s.Close()

	got := map[string]bool{}
	for len(got) < len(want) {
		ds, err := s.Recv(ctx, 64)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ds), 64)
		for _, d := range ds {
			require.False(t, got[string(d.Body)], "delivered twice: %s", d.Body)
			got[string(d.Body)] = true
			require.Equal(t, 1, d.Attempt)
		}
		require.NoError(t, s.Settle(ctx, acks(ds)))
	}
	require.Equal(t, want, got)
	eventuallyStats(t, stats, func(s brokerStats) bool { return s.Acked == 300 && s.Outstanding == 0 })
}

// The plugin never has more than the prefetch window of unsettled
// deliveries outstanding: the fake broker fails any Recv that could exceed
// max_outstanding (which would end the stream), and records the maximum.
func TestCreditWindowBoundsInFlight(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const window = 5
	stats := filepath.Join(t.TempDir(), "stats.json")
	c := sdktest.Launch(t, sdk.KindBroker,
		fmt.Sprintf(`{"queue":"q","stats_file":%q,"max_outstanding":%d}`, stats, window),
		sdktest.WithPrefetch(window))
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(4*window, "m")))

	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer s.Close()

	for round := range 4 {
		ds := recvN(t, ctx, s, window)
		// The window is used up: nothing more arrives until something is
		// settled.
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		more, err := s.Recv(short, 10)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "round %d: got %d deliveries beyond the window", round, len(more))
		st := readStats(t, stats)
		require.Equal(t, window, st.Outstanding, "round %d", round)

		// Extending a lease does not return credit.
		require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleExtend, Delay: time.Second}}))
		require.NoError(t, s.Settle(ctx, acks(ds)))
	}
	st := eventuallyStats(t, stats, func(s brokerStats) bool { return s.Acked == 4*window })
	require.Equal(t, window, st.MaxOutstanding)
	require.Equal(t, 4*window, st.Handed)
	require.Equal(t, 4, st.Extended)
}

func TestSettlementsReachPlugin(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stats := filepath.Join(t.TempDir(), "stats.json")
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q","stats_file":"`+stats+`"}`)
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(4, "m")))
	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)

	ds := recvN(t, ctx, s, 4)
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{
		{DeliveryID: ds[0].ID, Kind: sdk.SettleAck},
		{DeliveryID: ds[1].ID, Kind: sdk.SettleNack},
		{DeliveryID: ds[2].ID, Kind: sdk.SettleDeadLetter, Reason: "unknown task"},
		{DeliveryID: ds[3].ID, Kind: sdk.SettleExtend, Delay: time.Minute},
	}))
	again := recvN(t, ctx, s, 1)[0]
	require.Equal(t, ds[1].ID, again.ID)
	require.Equal(t, 2, again.Attempt, "a nacked message comes back with the next attempt")
	require.Equal(t, ds[1].Body, again.Body)

	// A settlement the broker rejects is reported back; the stream goes on.
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: "no-such-id", Kind: sdk.SettleAck}}))
	require.Eventually(t, func() bool {
		err := s.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[3].ID, Kind: sdk.SettleExtend, Delay: time.Minute}})
		return err != nil && strings.Contains(err.Error(), `unknown delivery "no-such-id"`)
	}, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[3].ID, Kind: sdk.SettleAck}, {DeliveryID: again.ID, Kind: sdk.SettleAck}}))
	st := eventuallyStats(t, stats, func(s brokerStats) bool { return s.Acked == 3 })
	require.Equal(t, 1, st.Nacked)
	require.Equal(t, 1, st.DeadLettered)
	require.Equal(t, []string{"unknown task"}, st.Reasons)
	require.GreaterOrEqual(t, st.Extended, 2)
	require.Equal(t, 0, st.Outstanding)

	// Close ends the stream on both sides.
	require.NoError(t, s.Close())
	_, err = s.Recv(ctx, 1)
	require.ErrorIs(t, err, sdk.ErrClosed)
	require.ErrorIs(t, s.Settle(ctx, acks(ds[:1])), sdk.ErrClosed)
	eventuallyStats(t, stats, func(s brokerStats) bool { return s.StreamsClosed == 1 })
}

func TestClosingStreamRequeuesUnsettled(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(3, "m")))
	s1, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	first := recvN(t, ctx, s1, 3)
	require.NoError(t, s1.Settle(ctx, acks(first[:1])))
	require.NoError(t, s1.Close())

	s2, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer s2.Close()
	second := recvN(t, ctx, s2, 2)
	require.ElementsMatch(t, []string{first[1].ID, first[2].ID}, []string{second[0].ID, second[1].ID})
}

func TestListenRefusedSynchronously(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
	_, err := c.Broker().Listen(ctx, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "forbidden"}}})
	require.ErrorIs(t, err, sdk.ErrUnsupported)
	require.ErrorContains(t, err, `queue "forbidden"`)
}

func TestPluginDeathEndsStream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(1, "m")))
	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	ds := recvN(t, ctx, s, 1)

	c.Kill()
	require.True(t, c.Exited())
	_, err = s.Recv(ctx, 1)
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Error(t, s.Settle(ctx, acks(ds)), "settling on a dead stream fails instead of blocking")
	require.ErrorIs(t, b.Kick(ctx, outgoing(1, "m")), sdk.ErrUnavailable)
	require.NoError(t, s.Close())
}

func TestResultBackend(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindResultBackend, `{}`)
	rb := c.ResultBackend()

	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{
		{TaskID: "a", Body: []byte(`{"return_value":1}`)},
		{TaskID: "b", Body: []byte(`{"return_value":2}`)},
	}))
	got, err := rb.GetResult(ctx, "b")
	require.NoError(t, err)
	require.JSONEq(t, `{"return_value":2}`, string(got))
	_, err = rb.GetResult(ctx, "missing")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.ErrorContains(t, err, "missing")

	ready, err := rb.IsReady(ctx, "a")
	require.NoError(t, err)
	require.True(t, ready)
	ready, err = rb.IsReady(ctx, "missing")
	require.NoError(t, err)
	require.False(t, ready)

	_, err = rb.GetProgress(ctx, "a")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.NoError(t, rb.SetProgress(ctx, "a", []byte(`{"state":"STARTED"}`)))
	p, err := rb.GetProgress(ctx, "a")
	require.NoError(t, err)
	require.JSONEq(t, `{"state":"STARTED"}`, string(p))

	w, ok := rb.(sdk.ResultWaiter)
	require.True(t, ok)
	waited := make(chan []byte, 1)
	waitErr := make(chan error, 1)
	go func() {
		b, err := w.WaitResult(ctx, "later")
		waitErr <- err
		waited <- b
	}()
	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "later", Body: []byte(`"done"`)}}))
	require.NoError(t, <-waitErr)
	require.Equal(t, `"done"`, string(<-waited))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = w.WaitResult(short, "never")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// Every waiter of a host shares one WatchResults stream: many task ids,
// two waiters of one id, and a waiter that gave up followed by a new one
// for the same id (its cancel must not undo the new watch) all get their
// result.
func TestWaitResultsShareOneStream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindResultBackend, `{}`)
	rb := c.ResultBackend()
	w := rb.(sdk.ResultWaiter)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := w.WaitResult(short, "gone")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ids := []string{"dup", "dup", "gone"}
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("t%d", i))
	}
	type answer struct {
		id   string
		body string
		err  error
	}
	answers := make(chan answer, len(ids))
	for _, id := range ids {
		go func() {
			b, err := w.WaitResult(ctx, id)
			answers <- answer{id, string(b), err}
		}()
	}
	var results []sdk.StoredResult
	for _, id := range ids[1:] {
		results = append(results, sdk.StoredResult{TaskID: id, Body: []byte(`"` + id + `"`)})
	}
	require.NoError(t, rb.SetResults(ctx, results))
	for range ids {
		a := <-answers
		require.NoError(t, a.err, a.id)
		require.Equal(t, `"`+a.id+`"`, a.body)
	}
}

// A waiter on the shared stream learns that the plugin died.
func TestWaitResultPluginDeath(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindResultBackend, `{}`)
	w := c.ResultBackend().(sdk.ResultWaiter)
	done := make(chan error, 1)
	go func() {
		_, err := w.WaitResult(ctx, "never")
		done <- err
	}()
	// Whether the waiter's watch was sent before the kill or not, it ends
	// with ErrUnavailable, not by its context.
	c.Kill()
	require.ErrorIs(t, <-done, sdk.ErrUnavailable)
}

func TestWaitResultUnsupported(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindResultBackend, `{"no_wait":true}`)
	_, err := c.ResultBackend().(sdk.ResultWaiter).WaitResult(ctx, "a")
	require.ErrorIs(t, err, sdk.ErrUnsupported)
}

// TestMiddlewareHooks runs every hook over the batched Hooks stream (the
// plugin declares hook_stream) and over the unary Hook, which a host uses
// for a plugin built before the stream existed.
func TestMiddlewareHooks(t *testing.T) {
	t.Parallel()
	for _, unary := range []bool{false, true} {
		t.Run(map[bool]string{false: "stream", true: "unary"}[unary], func(t *testing.T) {
			t.Parallel()
			checkMiddlewareHooks(t, unary)
		})
	}
}

// TestLaunchedMiddlewareUsesTheHookStream: a client from sdktest.Launch
// calls hooks the way the host's does, over the stream, without the test
// asking for Info first.
func TestLaunchedMiddlewareUsesTheHookStream(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`)
	mw := c.Middleware([]sdk.Hook{sdk.HookPreSend})
	require.True(t, sdk.UsesHookStream(mw))
	msg := &wire.Message{TaskID: "1", TaskName: "t"}
	require.NoError(t, mw.(sdk.PreSender).PreSend(testCtx(t), msg))
	require.Equal(t, "fake-mw", msg.Labels["seen_by"])
}

func checkMiddlewareHooks(t *testing.T, unary bool) {
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	role, _ := info.Role(sdk.KindMiddleware)
	require.Contains(t, role.Capabilities, sdk.CapHookStream, "Serve declares the hook stream")
	if unary {
		sdk.ForgetHookStream(c)
	}
	mw := c.Middleware(role.Hooks)
	require.Equal(t, !unary, sdk.UsesHookStream(mw))
	require.Equal(t, role.Hooks, sdk.HooksOf(mw), "the shim lists the plugin's hooks, not every method it has")

	msg := &wire.Message{TaskID: "1", TaskName: "t", Labels: map[string]any{"keep": int64(7)}, Args: []json.RawMessage{json.RawMessage(`1`)}}
	require.NoError(t, mw.(sdk.PreSender).PreSend(ctx, msg))
	require.Equal(t, "fake-mw", msg.Labels["seen_by"], "the message is changed in place")
	require.Equal(t, int64(7), msg.Labels["keep"])
	require.Equal(t, []json.RawMessage{json.RawMessage(`1`)}, msg.Args)

	res := &wire.Result{ReturnValue: json.RawMessage(`1`)}
	require.NoError(t, mw.(sdk.PostExecuter).PostExecute(ctx, msg, res))
	require.Equal(t, `"changed by plugin"`, string(res.ReturnValue))

	onError := func(taskErr error) (*wire.Result, error) {
		res := &wire.Result{IsErr: true, Error: wire.FromError(taskErr)}
		return res, mw.(sdk.ErrorHandler).OnError(ctx, msg, res, taskErr)
	}
	_, err = onError(errors.New("please retry"))
	require.ErrorIs(t, err, sdk.ErrNoResult)

	_, err = onError(errors.New("fatal failure"))
	require.ErrorIs(t, err, sdk.ErrDeadLetter)
	reason, ok := sdk.DeadLetterReason(err)
	require.True(t, ok)
	require.Equal(t, "gave up: Error: fatal failure", reason)

	_, err = onError(errors.New("complain"))
	require.EqualError(t, err, "on_error complaint")

	res, err = onError(errors.New("boom"))
	require.NoError(t, err)
	require.Equal(t, "Error: boom", res.Labels["seen_error"], "on_error gets res.Error as its err")

	// A result without an error gets the err argument as its error.
	res = &wire.Result{IsErr: true}
	require.NoError(t, mw.(sdk.ErrorHandler).OnError(ctx, msg, res, errors.New("bare")))
	require.Equal(t, "Error: bare", res.Labels["seen_error"])

	err = mw.(sdk.PostSender).PostSend(ctx, msg)
	require.ErrorIs(t, err, sdk.ErrUnsupported, "a hook the plugin does not implement")
}

func TestHostCallback(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	host := &fakeHost{kicks: make(chan kickCall, 4)}
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`, sdktest.WithHost(host))
	mw := c.Middleware([]sdk.Hook{sdk.HookPreSend}).(sdk.PreSender)

	for i := range 2 { // the second call reuses the connection set up once
		msg := &wire.Message{TaskID: fmt.Sprintf("t%d", i), TaskName: "callback"}
		require.NoError(t, mw.PreSend(ctx, msg))
		require.Equal(t, "42", msg.Labels["host_result"])
		require.Equal(t, "delay,priority", msg.Labels["host_caps"])
		select {
		case k := <-host.kicks:
			require.Equal(t, "default", k.broker)
			require.Len(t, k.msgs, 1)
			require.Equal(t, msg.TaskID+"-cb", k.msgs[0].TaskID)
			require.Equal(t, "from-plugin", k.msgs[0].TaskName)
			require.Equal(t, "plugin", k.msgs[0].Labels["origin"])
		case <-ctx.Done():
			t.Fatal("the plugin's Host.Kick never reached the host")
		}
	}

	// Reconfiguring keeps the host connection usable.
	diags, err := c.Configure(ctx, sdk.KindMiddleware, "again", json.RawMessage(`{}`))
	require.NoError(t, err)
	require.Empty(t, diags)
	require.NoError(t, mw.PreSend(ctx, &wire.Message{TaskID: "t3", TaskName: "callback"}))
	require.Equal(t, "t3-cb", (<-host.kicks).msgs[0].TaskID)
}

func TestHostCallbackWithoutHost(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`)
	err := c.Middleware(nil).(sdk.PreSender).PreSend(ctx, &wire.Message{TaskID: "1", TaskName: "callback"})
	require.EqualError(t, err, "no host to call back")
}

func TestMessageTooLarge(t *testing.T) {
	t.Parallel()

	t.Run("host side", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`, sdktest.WithMaxMessageSize(1024))
		err := c.Broker().Kick(ctx, []sdk.Outgoing{{TaskID: "big", TaskName: "t", Body: make([]byte, 2000)}})
		require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
		require.ErrorContains(t, err, "2000 bytes, over the limit of 1024 bytes; raise max_message_size in taskiq.hcl")
	})

	t.Run("plugin side", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		// The plugin gets a smaller limit than the host: it must refuse too.
		c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`,
			sdktest.WithMaxMessageSize(1<<20), sdktest.WithEnv(sdk.EnvMaxMessageSize+"=1000"))
		err := c.Broker().Kick(ctx, []sdk.Outgoing{{TaskID: "big", TaskName: "t", Body: make([]byte, 1500)}})
		require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
		require.ErrorContains(t, err, "message big (task t) is 1500 bytes, over the limit of 1000 bytes")
	})

	t.Run("results", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		c := sdktest.Launch(t, sdk.KindResultBackend, `{}`, sdktest.WithMaxMessageSize(1024))
		err := c.ResultBackend().SetResults(ctx, []sdk.StoredResult{{TaskID: "big", Body: make([]byte, 1025)}})
		require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
		require.ErrorContains(t, err, "the result of task big")
	})

	t.Run("a batch over the limit is split, not refused", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`, sdktest.WithMaxMessageSize(4096))
		msgs := make([]sdk.Outgoing, 20)
		for i := range msgs {
			msgs[i] = sdk.Outgoing{TaskID: fmt.Sprint(i), TaskName: "t", Body: bytes.Repeat([]byte{'x'}, 4000)}
		}
		require.NoError(t, c.Broker().Kick(ctx, msgs))
		s, err := c.Broker().Listen(ctx, sdk.ListenRequest{})
		require.NoError(t, err)
		defer s.Close()
		ds := recvN(t, ctx, s, 20)
		for _, d := range ds {
			require.Len(t, d.Body, 4000)
		}
		require.NoError(t, s.Settle(ctx, acks(ds)))
	})
}

// syncBuffer is a log sink read while the plugin's logs are still arriving.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func logLineWith(out, level string, texts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, level) && all(texts, func(t string) bool { return strings.Contains(line, t) }) {
			return true
		}
	}
	return false
}

func all(texts []string, ok func(string) bool) bool {
	for _, t := range texts {
		if !ok(t) {
			return false
		}
	}
	return true
}

func TestPluginLogsReachHostLogger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level     hclog.Level
		wantDebug bool
	}{{hclog.Info, false}, {hclog.Debug, true}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			t.Parallel()
			buf := &syncBuffer{}
			logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: buf, Level: tc.level})
			sdktest.Launch(t, sdk.KindMiddleware, `{}`, sdktest.WithLogger(logger), sdktest.WithInstanceName("audit"))

			// Info builds the middleware once from its schema's defaults to
			// find its hooks, without an instance name: wait for the lines of
			// the configured one, whose logger carries the instance name.
			require.Eventually(t, func() bool {
				out := buf.String()
				return logLineWith(out, "[INFO]", "mw info line", "instance=audit") && logLineWith(out, "[WARN]", "mw warn line")
			}, 10*time.Second, 5*time.Millisecond, "the configured role's logs, with instance=audit, never arrived:\n%s", buf.String())
			out := buf.String()
			require.True(t, logLineWith(out, "host."+filepath.Base(testExe(t)), "mw warn line"), "plugin lines are named after the binary:\n%s", out)
			// The debug line is written before the info line, so by now it
			// is here if the plugin logged it at all.
			require.Equal(t, tc.wantDebug, logLineWith(out, "[DEBUG]", "mw debug line"), "\n%s", out)
		})
	}
}

func TestLaunchErrors(t *testing.T) {
	t.Parallel()
	exe := testExe(t)

	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		path := filepath.Join(t.TempDir(), "taskiq-nope")
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path})
		require.ErrorIs(t, err, os.ErrNotExist)
		require.ErrorContains(t, err, path)
	})

	t.Run("not executable", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		path := filepath.Join(t.TempDir(), "taskiq-plain")
		require.NoError(t, os.WriteFile(path, []byte("data"), 0o644))
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path})
		require.ErrorContains(t, err, "is not executable; run chmod +x "+path)
	})

	t.Run("checksum mismatch", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		pin := strings.Repeat("ab", 32)
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: exe, SHA256: pin, Env: []string{sdktest.EnvPlugin + "=1"}})
		require.ErrorIs(t, err, sdk.ErrChecksumMismatch)
		require.ErrorContains(t, err, exe)
		require.ErrorContains(t, err, pin)
		require.ErrorContains(t, err, sha256Hex(t, exe))
	})

	t.Run("checksum match", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		c := sdktest.LaunchBinary(t, exe, sdk.KindBroker, `{"queue":"q"}`,
			sdktest.WithEnv(sdktest.EnvPlugin+"=1"),
			sdktest.WithLaunchConfig(func(cfg *sdk.LaunchConfig) { cfg.SHA256 = strings.ToUpper(sha256Hex(t, exe)) }))
		require.NoError(t, c.Broker().Kick(ctx, outgoing(1, "m")))
	})

	t.Run("malformed pin", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: exe, SHA256: "xyz"})
		require.ErrorContains(t, err, "is not a SHA-256 in hex")
	})

	t.Run("not a plugin", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		path := filepath.Join(t.TempDir(), "taskiq-script")
		require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\necho hello\n"), 0o755))
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: path})
		require.ErrorIs(t, err, sdk.ErrIncompatiblePlugin)
		require.ErrorContains(t, err, "is not a taskiq-go plugin")
	})

	t.Run("other protocol version", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: exe, Env: []string{envFakeMode + "=v2"}})
		require.ErrorIs(t, err, sdk.ErrIncompatiblePlugin)
		require.ErrorContains(t, err, "this host speaks taskiq plugin protocol 1: rebuild the plugin")
		require.ErrorContains(t, err, "Plugin version: 2")
	})

	t.Run("crash at start", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t) // its own: a parallel subtest may wait long for its turn
		_, err := sdk.Launch(ctx, sdk.LaunchConfig{Path: exe, Env: []string{envFakeMode + "=crash"}})
		require.ErrorContains(t, err, "exited during start-up")
		require.ErrorContains(t, err, "boom at start", "the plugin's stderr is quoted")
	})
}

func sha256Hex(t *testing.T, path string) string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(testExe(t))
	cmd.Env = append(os.Environ(), sdktest.EnvPlugin+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Equal(t, "taskiq-fake: this is a taskiq-go plugin; point a broker/result_backend/middleware block of taskiq.hcl at it\n", stderr.String())
}

func TestCloseStopsProcess(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
	require.NoError(t, c.Close(ctx))
	require.True(t, c.Exited())
	require.ErrorIs(t, c.Broker().Kick(ctx, outgoing(1, "m")), sdk.ErrUnavailable)
}
