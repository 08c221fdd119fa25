//go:build linux

package taskiqredis

// Topology tests: the broker and the result backend against real Sentinel,
// Cluster, TLS and ACL servers that each test starts itself (see
// topology_helpers_test.go). They run only with TASKIQ_REDIS_TOPOLOGY=1.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/testcerts"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/conformance"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// deadURL is the url of topologies where the url's host must be ignored
// (Sentinel, Cluster): nothing listens on port 1, so a client that used it
// would fail instead of quietly talking to some other Redis.
const deadURL = "redis://127.0.0.1:1/0"

// exercise proves the basic contract on one topology. Broker: kick, listen,
// receive, nack (redelivered as attempt 2), delay, ack, and nothing left in
// flight. Results: set/get, progress, and WaitResult ended by the pub/sub
// notification (poll_fallback is far longer than the bound). subs are admin
// clients to every server that may hold the waiter's subscription.
func exercise(t *testing.T, conn map[string]any, subs ...*redis.Client) {
	t.Helper()
	ctx := ctxT(t)
	q := "topo-" + randomHex(4)
	b, err := newBroker(ctx, rawConfig(t, merged(conn, map[string]any{
		"queue": q, "block": "200ms", "delay_poll": "50ms", "lease": "1s"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	s := listen(t, b, sdk.ListenRequest{})

	kick(t, b, out("a"), out("b"), out("c"))
	kick(t, b, sdk.Outgoing{TaskID: "t", TaskName: "n", Body: []byte("later"), Delay: 300 * time.Millisecond})
	byBody := map[string]sdk.Delivery{}
	for _, d := range recvN(t, s, 4) {
		require.Equal(t, 1, d.Attempt, "first delivery of %s", d.Body)
		require.Equal(t, q, d.Queue)
		byBody[string(d.Body)] = d
	}
	require.Len(t, byBody, 4, "each message exactly once")
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: byBody["a"].ID, Kind: sdk.SettleNack}}))
	again := recvN(t, s, 1)[0]
	require.Equal(t, "a", string(again.Body))
	require.Equal(t, 2, again.Attempt)
	var acks []sdk.Settlement
	for _, d := range []sdk.Delivery{again, byBody["b"], byBody["c"], byBody["later"]} {
		acks = append(acks, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
	}
	require.NoError(t, s.Settle(ctx, acks))
	// Acked work is gone: nothing pending, nothing left in the stream (asked
	// through the plugin's own client, which speaks the topology).
	pending, err := b.client.XPending(ctx, b.streamKey(q), b.groupName(q)).Result()
	require.NoError(t, err)
	require.Zero(t, pending.Count, "acked entries still pending")
	length, err := b.client.XLen(ctx, b.streamKey(q)).Result()
	require.NoError(t, err)
	require.Zero(t, length, "acked entries left in the stream")

	rb, err := newResultBackend(ctx, rawConfig(t, merged(conn, map[string]any{"prefix": q, "poll_fallback": "1m"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rb.Close(context.Background()) })
	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "r1", Body: []byte(`{"v":1}`)}}))
	got, err := rb.GetResult(ctx, "r1")
	require.NoError(t, err)
	require.JSONEq(t, `{"v":1}`, string(got))
	require.NoError(t, rb.SetProgress(ctx, "r1", []byte(`{"p":50}`)))
	got, err = rb.GetProgress(ctx, "r1")
	require.NoError(t, err)
	require.JSONEq(t, `{"p":50}`, string(got))

	waited := make(chan []byte, 1)
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		body, _ := rb.WaitResult(wctx, "r2")
		waited <- body
	}()
	channel := resultChannel(rb.key("r2"))
	require.Eventually(t, func() bool { return subscribers(ctx, subs, channel) > 0 },
		10*time.Second, 5*time.Millisecond, "WaitResult never subscribed to %s", channel)
	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "r2", Body: []byte(`{"v":2}`)}}))
	select {
	case body := <-waited:
		require.JSONEq(t, `{"v":2}`, string(body))
	case <-time.After(10 * time.Second):
		t.Fatal("WaitResult did not return within 10s of the result (poll_fallback is 1m, so the notification was lost)")
	}
}

// subscribers counts the subscribers of channel on the given servers.
func subscribers(ctx context.Context, servers []*redis.Client, channel string) int64 {
	var n int64
	for _, c := range servers {
		m, err := c.PubSubNumSub(ctx, channel).Result()
		if err == nil {
			n += m[channel]
		}
	}
	return n
}

// --- Sentinel ---

// TestTopologySentinel runs the broker and result backend through Redis
// Sentinel (master + replica + one sentinel), then fails the master over,
// once with SENTINEL FAILOVER and once by killing the master, while a
// producer kicks and a consumer acks without pause.
func TestTopologySentinel(t *testing.T) {
	requireTopology(t)
	t.Parallel()
	for _, trigger := range []string{"SentinelFailover", "MasterKilled"} {
		t.Run(trigger, func(t *testing.T) {
			t.Parallel()
			st := startSentinel(t)
			conn := map[string]any{"url": deadURL, "sentinel_master": sentinelMasterName,
				"sentinel_addrs": []string{st.sentinel.addr()}}
			exercise(t, conn, adminClient(t, st.master.addr(), nil))
			failover(t, st, conn, trigger == "MasterKilled")
		})
	}
}

// kickRecord is one message of the failover producer.
type kickRecord struct {
	body     string
	start    time.Time // first attempt
	attempts int
}

// kickFailure is one failed Kick attempt.
type kickFailure struct {
	at  time.Time
	err error
}

// failover drives a failover under load and checks what survives it:
//   - entries received before the failover and acked after it are acked
//     (the pending list was replicated);
//   - results stored before are readable after; a WaitResult that began
//     before ends when the result is stored after;
//   - Kick fails only with sdk.ErrUnavailable (or the caller's deadline),
//     for a bounded window, and every message kicked once the old master is
//     out of the way is delivered and acked; the stream ends empty.
//
// Redis replicates asynchronously, so a message the old master accepted in
// the last moments before it was demoted or died can be lost; those are
// counted and reported, not asserted.
func failover(t *testing.T, st *sentinelSetup, conn map[string]any, kill bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := "failover-" + randomHex(4)
	b, err := newBroker(ctx, rawConfig(t, merged(conn, map[string]any{"queue": q, "block": "200ms", "lease": "1m"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	rb, err := newResultBackend(ctx, rawConfig(t, merged(conn, map[string]any{"prefix": q, "poll_fallback": "500ms"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rb.Close(context.Background()) })
	s := listen(t, b, sdk.ListenRequest{})

	// Before: 20 kicked and received, 10 acked, 10 held across the failover.
	var pre []sdk.Outgoing
	for i := range 20 {
		pre = append(pre, out("pre-"+strconv.Itoa(i)))
	}
	kick(t, b, pre...)
	ds := recvN(t, s, 20)
	require.NoError(t, s.Settle(ctx, settlements(sdk.SettleAck, ds[:10])))
	held := ds[10:]
	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "before", Body: []byte(`"before"`)}}))
	st.waitReplicated(t)

	across := make(chan error, 1)
	go func() {
		body, err := rb.WaitResult(ctx, "across")
		if err == nil && string(body) != `"across"` {
			err = fmt.Errorf("WaitResult returned %s", body)
		}
		across <- err
	}()

	// Producer: one message at a time; each is retried until Kick succeeds,
	// as a caller that sees sdk.ErrUnavailable should do.
	var (
		mu       sync.Mutex
		kicked   []kickRecord
		failures []kickFailure
	)
	stopProducer := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i := 0; ; i++ {
			rec := kickRecord{body: "f-" + strconv.Itoa(i), start: time.Now()}
			for {
				select {
				case <-stopProducer:
					return
				default:
				}
				rec.attempts++
				kctx, kcancel := context.WithTimeout(ctx, time.Second)
				err := b.Kick(kctx, []sdk.Outgoing{out(rec.body)})
				kcancel()
				if err == nil {
					break
				}
				mu.Lock()
				failures = append(failures, kickFailure{at: time.Now(), err: err})
				mu.Unlock()
				select {
				case <-stopProducer:
					return
				case <-time.After(50 * time.Millisecond): // the caller's retry pace
				}
			}
			mu.Lock()
			kicked = append(kicked, rec)
			mu.Unlock()
			select {
			case <-stopProducer:
				return
			case <-time.After(10 * time.Millisecond): // a steady trickle, not a flood
			}
		}
	}()

	// Consumer: receives and acks everything; a Recv or Settle error is
	// what a worker would see and is reported.
	received := map[string]int{}
	var consumerErrs []error
	stopConsumer := make(chan struct{})
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			select {
			case <-stopConsumer:
				return
			default:
			}
			rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			ds, err := s.Recv(rctx, 50)
			rcancel()
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					mu.Lock()
					consumerErrs = append(consumerErrs, err)
					mu.Unlock()
				}
				continue
			}
			mu.Lock()
			for _, d := range ds {
				received[string(d.Body)]++
			}
			mu.Unlock()
			if err := s.Settle(ctx, settlements(sdk.SettleAck, ds)); err != nil {
				mu.Lock()
				consumerErrs = append(consumerErrs, fmt.Errorf("settle: %w", err))
				mu.Unlock()
			}
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(stopProducer)
			close(stopConsumer)
			<-producerDone
			<-consumerDone
		}
	}
	defer stop()

	// Let the producer run against the healthy master first.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(kicked) >= 5 },
		10*time.Second, 5*time.Millisecond, "the producer made no progress before the failover")

	oldMaster, newMaster := st.master.addr(), st.replica.addr()
	t0 := time.Now()
	if kill {
		st.master.kill(t)
	} else {
		require.NoError(t, st.sentinelClient.Failover(ctx, sentinelMasterName).Err())
	}
	require.Eventually(t, func() bool { return st.masterAddr(ctx) == newMaster },
		30*time.Second, 10*time.Millisecond, "the sentinel did not promote the replica:\n%s", st.sentinel.logTail())
	switched := time.Since(t0)
	// cutoff: from here on, the old master accepts no writes (dead, or a
	// replica that answers READONLY), so nothing kicked later can be lost.
	cutoff := t0
	if !kill {
		oc := adminClient(t, oldMaster, nil)
		require.Eventually(t, func() bool { return infoField(ctx, oc, "replication", "role") == "slave" },
			30*time.Second, 10*time.Millisecond, "the old master was not turned into a replica")
		cutoff = time.Now()
	}
	demoted := cutoff.Sub(t0)

	// Kicks succeed again: 20 messages whose first attempt came after the
	// cutoff went through.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range kicked {
			if r.start.After(cutoff) {
				n++
			}
		}
		return n >= 20
	}, 30*time.Second, 10*time.Millisecond, "kicks did not succeed again after the failover")

	// Entries delivered before the failover are acked after it.
	require.NoError(t, s.Settle(ctx, settlements(sdk.SettleAck, held)))

	// Results: stored before, read after; a wait spanning the failover ends.
	got, err := rb.GetResult(ctx, "before")
	require.NoError(t, err)
	require.Equal(t, `"before"`, string(got))
	require.NoError(t, rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "across", Body: []byte(`"across"`)}}))
	select {
	case err := <-across:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("a WaitResult begun before the failover did not end within 15s of the result being stored after it")
	}

	// Everything kicked after the cutoff is delivered and acked; the
	// stream on the new master ends empty.
	mu.Lock()
	var must []string
	for _, r := range kicked {
		if r.start.After(cutoff) {
			must = append(must, r.body)
		}
	}
	mu.Unlock()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, body := range must {
			if received[body] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "messages kicked after the failover were not delivered")
	stop()
	nc := adminClient(t, newMaster, nil)
	pending, err := nc.XPending(ctx, q, defaultGroup).Result()
	require.NoError(t, err)
	require.Zero(t, pending.Count, "entries left pending on the new master")
	length, err := nc.XLen(ctx, q).Result()
	require.NoError(t, err)
	require.Zero(t, length, "acked entries left in the stream")

	// Every Kick failure is one a caller can recognise as "retry later".
	var lastFailure time.Time
	kinds := map[string]int{}
	for _, f := range failures {
		require.True(t, errors.Is(f.err, sdk.ErrUnavailable) || errors.Is(f.err, context.DeadlineExceeded),
			"Kick failed during the failover with an error that is not sdk.ErrUnavailable: %v", f.err)
		lastFailure = f.at
		kinds[errorKind(f.err)]++
	}
	var lost, duplicated int
	for _, r := range kicked {
		switch n := received[r.body]; {
		case n == 0:
			lost++
		case n > 1:
			duplicated++
		}
	}
	for _, d := range pre[:10] {
		require.Zero(t, received[string(d.Body)], "an entry acked before the failover came back")
	}
	outage := time.Duration(0)
	if !lastFailure.IsZero() {
		outage = lastFailure.Sub(t0)
	}
	t.Logf("failover (%s): sentinel switched master after %v; old master out of the way after %v; "+
		"%d Kick attempts failed, the last %v after the trigger; %d messages kicked, %d of them "+
		"(all accepted by the old master before the cutoff) lost, %d delivered twice; consumer errors: %v; "+
		"kick errors by kind: %v",
		map[bool]string{true: "master killed", false: "SENTINEL FAILOVER"}[kill],
		switched.Round(time.Millisecond), demoted.Round(time.Millisecond), len(failures),
		outage.Round(time.Millisecond), len(kicked), lost, duplicated, consumerErrs, kinds)
	for _, r := range kicked {
		if received[r.body] == 0 {
			require.False(t, r.start.After(cutoff), "%s was kicked after the cutoff and lost", r.body)
		}
	}
}

// errorKind shortens an error to its gist for the report: the text after
// the last "): " or the whole message, without addresses.
func errorKind(err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, sdk.ErrUnavailable) {
		return "caller deadline: " + msg
	}
	if i := strings.LastIndex(msg, "reachable? "); i >= 0 {
		msg = msg[i+len("reachable? "):]
	}
	if len(msg) > 90 {
		msg = msg[:90]
	}
	return msg
}

// --- Cluster ---

// TestTopologyCluster runs the broker (stream mode: kick/listen/ack, delay,
// dead letter, several queues on different nodes) and the result backend
// against a 3-master Redis Cluster, plus the SDK conformance suites.
func TestTopologyCluster(t *testing.T) {
	requireTopology(t)
	t.Parallel()
	nodes := startCluster(t, 3, nil)
	var addrs []string
	var admins []*redis.Client
	for _, n := range nodes {
		addrs = append(addrs, n.addr())
		admins = append(admins, adminClient(t, n.addr(), nil))
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = cc.Close() })
	conn := map[string]any{"url": deadURL, "cluster_addrs": addrs}

	t.Run("Basics", func(t *testing.T) {
		t.Parallel()
		exercise(t, conn, admins...)
	})
	t.Run("KeysShareASlot", func(t *testing.T) { t.Parallel(); clusterKeys(t, cc, conn) })
	t.Run("QueuesOnDifferentNodes", func(t *testing.T) { t.Parallel(); clusterQueues(t, cc, conn) })
	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		conformanceOn(t, conn)
	})
}

// clusterKeys checks the hash-tagged layout on a real cluster: the stream,
// its delayed set and its dead letters share a slot, so the delay mover (a
// Lua script touching two keys) runs, a delayed message arrives, and dead
// letters (explicit and by max_attempts) land in {queue}:dead.
func clusterKeys(t *testing.T, cc *redis.ClusterClient, conn map[string]any) {
	ctx := ctxT(t)
	q := "layout-" + randomHex(4)
	b, err := newBroker(ctx, rawConfig(t, merged(conn, map[string]any{
		"queue": q, "block": "200ms", "delay_poll": "50ms", "max_attempts": 1})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	require.Equal(t, "{"+q+"}", b.streamKey(q))
	slot, err := cc.ClusterKeySlot(ctx, b.streamKey(q)).Result()
	require.NoError(t, err)
	for _, k := range []string{b.delayedKey(q), b.deadKey(q)} {
		s, err := cc.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		require.Equal(t, slot, s, "%s is not in the slot of %s", k, b.streamKey(q))
	}

	// Delay: nobody listens yet, so the message waits in the delayed set.
	kick(t, b, sdk.Outgoing{TaskID: "t", TaskName: "n", Body: []byte("delayed"), Delay: 300 * time.Millisecond})
	n, err := cc.ZCard(ctx, b.delayedKey(q)).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the delayed message is not in %s", b.delayedKey(q))
	s := listen(t, b, sdk.ListenRequest{})
	d := recvN(t, s, 1)[0]
	require.Equal(t, "delayed", string(d.Body))
	n, err = cc.ZCard(ctx, b.delayedKey(q)).Result()
	require.NoError(t, err)
	require.Zero(t, n)

	// Dead letter, explicit.
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "boom"}}))
	// Dead letter by max_attempts (1): the nacked message's second delivery
	// goes to dead letter instead.
	kick(t, b, out("twice"))
	d = recvN(t, s, 1)[0]
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack}}))
	var (
		dead      []redis.XMessage
		delivered []sdk.Delivery
	)
	require.Eventually(t, func() bool {
		// The listener dead-letters while it fetches: keep it fetching.
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		ds, _ := s.Recv(rctx, 1)
		cancel()
		delivered = append(delivered, ds...)
		dead, err = cc.XRange(ctx, b.deadKey(q), "-", "+").Result()
		return err == nil && len(dead) == 2
	}, 10*time.Second, 10*time.Millisecond, "two dead letters expected in %s", b.deadKey(q))
	require.Empty(t, delivered, "a message over max_attempts was delivered")
	require.Equal(t, "delayed", dead[0].Values["data"])
	require.Equal(t, "boom", dead[0].Values["reason"])
	require.Equal(t, q, dead[0].Values["queue"])
	require.Equal(t, "twice", dead[1].Values["data"])
	require.Contains(t, dead[1].Values["reason"], "max_attempts")
	length, err := cc.XLen(ctx, b.streamKey(q)).Result()
	require.NoError(t, err)
	require.Zero(t, length, "dead-lettered entries left in the stream")
}

// clusterQueues listens on two queues whose slots live on different nodes:
// the reads go to each node in turn (a single XREADGROUP over both would
// be refused with CROSSSLOT), kicks to both land, and a listener idle on
// both queues wakes for a kick to the second one.
func clusterQueues(t *testing.T, cc *redis.ClusterClient, conn map[string]any) {
	ctx := ctxT(t)
	b, err := newBroker(ctx, rawConfig(t, merged(conn, map[string]any{"block": "200ms"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	node := func(q string) string {
		c, err := cc.MasterForKey(ctx, b.streamKey(q))
		require.NoError(t, err)
		return c.Options().Addr
	}
	qa := "multi-a-" + randomHex(4)
	qb := ""
	for range 100 {
		c := "multi-b-" + randomHex(4)
		if node(c) != node(qa) {
			qb = c
			break
		}
	}
	require.NotEmpty(t, qb, "found no queue name on another node")

	for _, strict := range []bool{false, true} {
		s := listen(t, b, sdk.ListenRequest{Queues: []sdk.Queue{{Name: qa}, {Name: qb, Weight: 2}}, StrictPriority: strict})
		var msgs []sdk.Outgoing
		for i := range 4 {
			msgs = append(msgs,
				sdk.Outgoing{TaskID: "t", TaskName: "n", Queue: qa, Body: []byte(fmt.Sprintf("a%d", i))},
				sdk.Outgoing{TaskID: "t", TaskName: "n", Queue: qb, Body: []byte(fmt.Sprintf("b%d", i))})
		}
		kick(t, b, msgs...)
		ds := recvN(t, s, 8)
		var bodies []string
		for _, d := range ds {
			require.Equal(t, map[byte]string{'a': qa, 'b': qb}[d.Body[0]], d.Queue, "queue of %s", d.Body)
			bodies = append(bodies, string(d.Body))
		}
		sort.Strings(bodies)
		require.Equal(t, []string{"a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"}, bodies)
		require.NoError(t, s.Settle(ctx, settlements(sdk.SettleAck, ds)))

		// Idle on both; a kick to the second queue only wakes it.
		got := make(chan []sdk.Delivery, 1)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ds, _ := s.Recv(rctx, 1)
			got <- ds
		}()
		kick(t, b, sdk.Outgoing{TaskID: "t", TaskName: "n", Queue: qb, Body: []byte("wake")})
		ds = <-got
		require.Len(t, ds, 1)
		require.Equal(t, "wake", string(ds[0].Body))
		require.NoError(t, s.Settle(ctx, settlements(sdk.SettleAck, ds)))
		require.NoError(t, s.Close())
	}
	for _, q := range []string{qa, qb} {
		n, err := cc.XLen(ctx, b.streamKey(q)).Result()
		require.NoError(t, err)
		require.Zero(t, n, "acked entries left in %s", b.streamKey(q))
	}
}

// conformanceOn runs the SDK's broker (stream mode) and result backend
// suites through plugin processes configured with conn.
func conformanceOn(t *testing.T, conn map[string]any) {
	t.Run("Broker", func(t *testing.T) {
		t.Parallel()
		conformance.TestBroker(t, func(t *testing.T) sdk.Broker {
			cfg := conformanceConfig(t, merged(conn, map[string]any{
				"queue": "conf-" + randomHex(6), "lease": "1500ms", "block": "100ms"}))
			return sdktest.Launch(t, sdk.KindBroker, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).Broker()
		}, capabilitiesFor(modeStream),
			conformance.WithMaxMessageSize(conformanceMaxSize),
			conformance.WithLease(time.Second),
			conformance.WithDefaultLease(1500*time.Millisecond))
	})
	t.Run("ResultBackend", func(t *testing.T) {
		t.Parallel()
		conformance.TestResultBackend(t, func(t *testing.T) sdk.ResultBackend {
			cfg := conformanceConfig(t, merged(conn, map[string]any{
				"prefix": "conf-" + randomHex(6), "poll_fallback": "200ms", "result_ttl": "2s"}))
			return sdktest.Launch(t, sdk.KindResultBackend, cfg, sdktest.WithMaxMessageSize(conformanceMaxSize)).ResultBackend()
		}, []string{sdk.CapWait, sdk.CapProgress},
			conformance.WithMaxMessageSize(conformanceMaxSize), conformance.WithResultTTL(2*time.Second))
	})
}

// settlements builds one settlement of kind per delivery.
func settlements(kind sdk.SettleKind, ds []sdk.Delivery) []sdk.Settlement {
	out := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		out[i] = sdk.Settlement{DeliveryID: d.ID, Kind: kind}
	}
	return out
}

// --- TLS ---

// redisTLSSupport reports whether redis-server was built with TLS: a build
// without it rejects the tls-port directive, one with it only complains
// that it was told to listen nowhere.
func redisTLSSupport(t *testing.T) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "redis-server", "--port", "0", "--tls-port", "0").CombinedOutput()
	return strings.Contains(string(out), "not listen anywhere"), tail(string(out), 400)
}

// TestTopologyTLS runs the plugin over TLS (rediss://) against servers using
// a CA the test generated: with tls_ca_file, with tls_insecure_skip_verify,
// with a client certificate on a server that requires one, and a TLS
// cluster; and shows the failures a user gets for an untrusted server,
// a missing client certificate and a plain URL.
func TestTopologyTLS(t *testing.T) {
	requireTopology(t)
	if ok, out := redisTLSSupport(t); !ok {
		// Also in CI: it is the redis-server build of this machine that
		// lacks TLS, not a service that CI forgot to start.
		t.Skipf("SKIPPED, NOT TESTED: this redis-server was built without TLS support (tls-port is rejected), "+
			"so the TLS topology cannot run here; install a redis-server built with BUILD_TLS=yes. Probe output:\n%s", out)
	}
	t.Parallel()
	tf := testcerts.New(t)
	srv := startTopoServer(t, "tls", serverConf{tls: true, lines: serverLines(tf, false)})
	mtls := startTopoServer(t, "mtls", serverConf{tls: true, lines: serverLines(tf, true)})
	admin := adminClient(t, srv.addr(), func(o *redis.Options) { o.TLSConfig = tf.ClientTLS(t) })
	mAdmin := adminClient(t, mtls.addr(), func(o *redis.Options) { o.TLSConfig = tf.ClientTLS(t) })
	url := "rediss://" + srv.addr() + "/0"
	mURL := "rediss://" + mtls.addr() + "/0"
	withCA := map[string]any{"url": url, "tls_ca_file": tf.CA}

	t.Run("CAFile", func(t *testing.T) { t.Parallel(); exercise(t, withCA, admin) })
	t.Run("Conformance", func(t *testing.T) { t.Parallel(); conformanceOn(t, withCA) })
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		t.Parallel()
		exercise(t, map[string]any{"url": url, "tls_insecure_skip_verify": true}, admin)
	})
	t.Run("ClientCertificate", func(t *testing.T) {
		t.Parallel()
		exercise(t, map[string]any{"url": mURL, "tls_ca_file": tf.CA,
			"tls_cert_file": tf.ClientCert, "tls_key_file": tf.ClientKey}, mAdmin)
	})
	t.Run("UntrustedServer", func(t *testing.T) {
		t.Parallel()
		err := kickOnce(t, map[string]any{"url": url})
		require.ErrorIs(t, err, sdk.ErrUnavailable)
		require.ErrorContains(t, err, "certificate signed by unknown authority")
		t.Logf("a server certificate from an unknown CA gives: %v", err)
	})
	t.Run("ClientCertificateMissing", func(t *testing.T) {
		t.Parallel()
		err := kickOnce(t, map[string]any{"url": mURL, "tls_ca_file": tf.CA})
		require.Error(t, err)
		t.Logf("a server requiring a client certificate, none given, gives: %v", err)
	})
	t.Run("PlainURLOnTLSPort", func(t *testing.T) {
		t.Parallel()
		err := kickOnce(t, map[string]any{"url": "redis://" + srv.addr() + "/0"})
		require.Error(t, err)
		t.Logf("redis:// against a TLS port gives: %v", err)
	})
	t.Run("Cluster", func(t *testing.T) {
		t.Parallel()
		nodes := startCluster(t, 3, tf)
		var addrs []string
		var admins []*redis.Client
		for _, n := range nodes {
			addrs = append(addrs, n.addr())
			admins = append(admins, adminClient(t, n.addr(), func(o *redis.Options) { o.TLSConfig = tf.ClientTLS(t) }))
		}
		// The url's host is not a node: each node must be verified under
		// its own address, not under "redis.invalid".
		exercise(t, map[string]any{"url": "rediss://redis.invalid:6379/0", "tls_ca_file": tf.CA,
			"cluster_addrs": addrs}, admins...)
	})
}

// kickOnce configures a broker with conn and returns the error of one Kick
// (bounded by 10s).
func kickOnce(t *testing.T, conn map[string]any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := newBroker(ctx, rawConfig(t, merged(conn, map[string]any{"queue": "never-" + randomHex(4)})))
	require.NoError(t, err)
	defer b.Close(context.Background())
	return b.Kick(ctx, []sdk.Outgoing{out("x")})
}

// --- ACL ---

// TestTopologyACL runs against a server whose default user is off and whose
// only user is "taskiq": the username/password attributes (and the same
// credentials in the URL) work; a wrong password or none gives an error
// that says so and never contains the password, neither in errors nor in
// the plugin's log.
func TestTopologyACL(t *testing.T) {
	requireTopology(t)
	t.Parallel()
	const password = "s3cret-Pa55-7f1d"
	srv := startTopoServer(t, "acl", serverConf{lines: []string{
		"user default off", "user taskiq on >" + password + " ~* &* +@all"}})
	admin := adminClient(t, srv.addr(), func(o *redis.Options) { o.Username, o.Password = "taskiq", password })
	url := "redis://" + srv.addr() + "/0"

	t.Run("UsernamePassword", func(t *testing.T) {
		t.Parallel()
		exercise(t, map[string]any{"url": url, "username": "taskiq", "password": password}, admin)
	})
	t.Run("CredentialsInURL", func(t *testing.T) {
		t.Parallel()
		exercise(t, map[string]any{"url": "redis://taskiq:" + password + "@" + srv.addr() + "/0"}, admin)
	})
	const wrong = "wr0ng-Pa55-c0ffee"
	for name, conn := range map[string]map[string]any{
		"WrongPassword":      {"url": url, "username": "taskiq", "password": wrong},
		"WrongPasswordInURL": {"url": "redis://taskiq:" + wrong + "@" + srv.addr() + "/0"},
		"UnknownUser":        {"url": url, "username": "nobody", "password": wrong},
		"NoCredentials":      {"url": url},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireAuthFailure(t, conn, wrong)
		})
	}
}

// requireAuthFailure checks that every entry point fails with an error
// naming the authentication problem, and that neither the errors nor the
// plugin's log contain secret.
func requireAuthFailure(t *testing.T, conn map[string]any, secret string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	cfg := rawConfig(t, merged(conn, map[string]any{"queue": "acl-" + randomHex(4), "poll_fallback": "100ms"}))
	cfg.Logger = logger
	b, err := newBroker(ctx, cfg)
	require.NoError(t, err)
	defer b.Close(context.Background())
	rb, err := newResultBackend(ctx, cfg)
	require.NoError(t, err)
	defer rb.Close(context.Background())

	errs := map[string]error{}
	errs["kick"] = b.Kick(ctx, []sdk.Outgoing{out("x")})
	_, errs["listen"] = b.Listen(ctx, sdk.ListenRequest{})
	errs["set results"] = rb.SetResults(ctx, []sdk.StoredResult{{TaskID: "t", Body: []byte("1")}})
	_, errs["get result"] = rb.GetResult(ctx, "t")
	// WaitResult retries (and logs) until its context ends.
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, errs["wait result"] = rb.WaitResult(wctx, "t")
	wcancel()
	for op, err := range errs {
		require.Error(t, err, op)
		require.NotContains(t, err.Error(), secret, "%s: the error shows the password", op)
		if op != "wait result" {
			require.Regexp(t, "WRONGPASS|NOAUTH", err.Error(), "%s: the error does not say that authentication failed", op)
		}
	}
	require.NotContains(t, logs.String(), secret, "the plugin logged the password")
	require.NotContains(t, fmt.Sprint(b.addr, rb.addr), secret)
	t.Logf("what the user sees: kick: %v", errs["kick"])
}
