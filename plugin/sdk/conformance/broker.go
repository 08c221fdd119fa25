package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// timeTolerance absorbs the millisecond rounding of delays and deadlines on
// their way through the plugin protocol and the backing service.
const timeTolerance = 50 * time.Millisecond

// TestBroker runs the broker conformance suite. launch must return a fresh
// broker, isolated from every other broker it returned (its own default
// queue), that goes through the plugin's real process boundary (use
// sdktest.Launch) and is closed when its test ends. caps are the
// capabilities the configured broker claims; subtests of capabilities it
// does not claim are skipped. The subtests run in parallel.
func TestBroker(t *testing.T, launch func(t *testing.T) sdk.Broker, caps []string, opts ...Option) {
	s := &brokerSuite{launch: launch, caps: caps, o: newOptions(opts)}
	if sdk.Has(caps, sdk.CapBroadcast) {
		t.Skip("the broker broadcasts every message to every listener (capability broadcast); this suite checks competing consumers")
	}
	s.run(t, "KickListenAck", nil, s.kickListenAck)
	s.run(t, "BatchKick", nil, s.batchKick)
	s.run(t, "RecvRespectsMax", nil, s.recvRespectsMax)
	s.run(t, "RecvRespectsContext", nil, s.recvRespectsContext)
	s.run(t, "NackRedelivers", nil, s.nackRedelivers)
	s.run(t, "AttemptCounting", nil, s.attemptCounting)
	s.run(t, "NackWithDelay", []string{sdk.CapDelay}, s.nackWithDelay)
	s.run(t, "LeaseExpiryRedelivers", []string{sdk.CapLease}, s.leaseExpiry)
	s.run(t, "DefaultLeaseExpiry", []string{sdk.CapLease}, s.defaultLeaseExpiry)
	s.run(t, "ExtendKeepsLease", []string{sdk.CapLease}, s.extendKeepsLease)
	s.run(t, "DelayedKick", []string{sdk.CapDelay}, s.delayedKick)
	s.run(t, "Priority", []string{sdk.CapPriority}, s.priority)
	s.run(t, "Routing", []string{sdk.CapRouting}, s.routing)
	s.run(t, "DeadLetter", []string{sdk.CapDeadLetter}, s.deadLetter)
	s.run(t, "Dedup", []string{sdk.CapDedup}, s.dedup)
	s.run(t, "MessageSizeLimit", nil, s.messageSizeLimit)
	s.run(t, "ConcurrentProducersConsumers", nil, s.concurrent)
	s.run(t, "CloseReturnsUnsettled", nil, s.closeReturnsUnsettled)
	s.run(t, "BrokerCloseEndsStreams", nil, s.brokerCloseEndsStreams)
	s.runMore(t)
}

type brokerSuite struct {
	launch func(t *testing.T) sdk.Broker
	caps   []string
	o      options
}

// run runs one parallel subtest, skipped when the broker lacks one of need
// or the caller skipped it by name.
func (s *brokerSuite) run(t *testing.T, name string, need []string, f func(t *testing.T, b *bundle)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		skipUnclaimed(t, s.o, s.caps, name, need, "broker")
		f(t, s.setup(t))
	})
}

// bundle is one subtest's broker and the messages it kicked.
type bundle struct {
	t      *testing.T
	b      sdk.Broker
	o      options
	caps   []string
	prefix string
	seq    atomic.Int64

	mu   sync.Mutex
	sent map[string][]byte // task id -> body
}

func (s *brokerSuite) setup(t *testing.T) *bundle {
	b := s.launch(t)
	require.NotNil(t, b, "the launch function returned no broker")
	return &bundle{t: t, b: b, o: s.o, caps: s.caps, prefix: "conf-" + randomHex(6), sent: map[string][]byte{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ctx returns a context bounded by the suite's timeout.
func (b *bundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout)
	b.t.Cleanup(cancel)
	return ctx
}

// queue returns a queue name unique to this subtest.
func (b *bundle) queue(suffix string) string { return b.prefix + "-" + suffix }

// msg builds a message for queue ("" = the default queue): a real wire
// message, so brokers that look into bodies are served what a host sends,
// with a task id unique to the subtest.
func (b *bundle) msg(queue string) sdk.Outgoing {
	n := b.seq.Add(1)
	id := fmt.Sprintf("%s-%d", b.prefix, n)
	m := &wire.Message{TaskID: id, TaskName: "conformance.check", Args: []json.RawMessage{json.RawMessage(fmt.Sprint(n))}}
	if queue != "" {
		m.SetLabel(wire.LabelQueueName, queue)
	}
	body, err := m.MarshalJSON()
	require.NoError(b.t, err)
	return sdk.Outgoing{TaskID: id, TaskName: m.TaskName, Body: body, Queue: queue}
}

func (b *bundle) msgs(queue string, n int) []sdk.Outgoing {
	out := make([]sdk.Outgoing, n)
	for i := range out {
		out[i] = b.msg(queue)
	}
	return out
}

// kick kicks msgs in one call and remembers their bodies.
func (b *bundle) kick(msgs ...sdk.Outgoing) {
	b.t.Helper()
	b.remember(msgs)
	require.NoError(b.t, b.b.Kick(b.ctx(), msgs), "kick a batch of %d", len(msgs))
}

func (b *bundle) remember(msgs []sdk.Outgoing) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		b.sent[m.TaskID] = m.Body
	}
}

// idOf returns the task id of a delivery, checking that its body is
// byte for byte the body kicked.
func (b *bundle) idOf(d sdk.Delivery) (string, error) {
	m, err := wire.DecodeMessage(d.Body)
	if err != nil {
		return "", fmt.Errorf("delivery %s: the body is not a message this suite kicked (%d bytes): %w", d.ID, len(d.Body), err)
	}
	b.mu.Lock()
	want, ok := b.sent[m.TaskID]
	b.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("delivery %s carries task %s, which this subtest never kicked (is the broker isolated per launch?)", d.ID, m.TaskID)
	}
	if string(want) != string(d.Body) {
		return "", fmt.Errorf("delivery %s of task %s: the body changed on its way through the broker:\nkicked:    %q\ndelivered: %q", d.ID, m.TaskID, want, d.Body)
	}
	return m.TaskID, nil
}

func (b *bundle) mustID(d sdk.Delivery) string {
	b.t.Helper()
	id, err := b.idOf(d)
	require.NoError(b.t, err)
	return id
}

// listen opens a stream that is closed when the subtest ends.
func (b *bundle) listen(req sdk.ListenRequest) sdk.Stream {
	b.t.Helper()
	// A stream lives as long as its context: not the per-call timeout.
	ctx, cancel := context.WithCancel(context.Background())
	s, err := b.b.Listen(ctx, req)
	if err != nil {
		cancel()
		require.NoError(b.t, err, "listen %+v", req)
	}
	b.t.Cleanup(func() {
		_ = s.Close()
		cancel()
	})
	return s
}

// recv receives exactly n deliveries, asking for at most max at a time and
// checking that Recv honours max.
func (b *bundle) recv(s sdk.Stream, n, max int) []sdk.Delivery {
	b.t.Helper()
	ctx := b.ctx()
	var out []sdk.Delivery
	for len(out) < n {
		ask := min(max, n-len(out))
		ds, err := s.Recv(ctx, ask)
		require.NoError(b.t, err, "waiting for delivery %d of %d", len(out)+1, n)
		require.NotEmpty(b.t, ds, "Recv returned no delivery and no error")
		require.LessOrEqual(b.t, len(ds), ask, "Recv(max=%d) returned %d deliveries", ask, len(ds))
		out = append(out, ds...)
	}
	return out
}

// recvSome makes one Recv call for up to max deliveries.
func (b *bundle) recvSome(s sdk.Stream, max int) []sdk.Delivery {
	b.t.Helper()
	ds, err := s.Recv(b.ctx(), max)
	require.NoError(b.t, err, "waiting for deliveries")
	require.NotEmpty(b.t, ds, "Recv returned no delivery and no error")
	require.LessOrEqual(b.t, len(ds), max, "Recv(max=%d) returned %d deliveries", max, len(ds))
	return ds
}

func (b *bundle) recvOne(s sdk.Stream) sdk.Delivery {
	b.t.Helper()
	return b.recv(s, 1, 1)[0]
}

func (b *bundle) settle(s sdk.Stream, kind sdk.SettleKind, ds ...sdk.Delivery) {
	b.t.Helper()
	ss := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		ss[i] = sdk.Settlement{DeliveryID: d.ID, Kind: kind}
	}
	require.NoError(b.t, s.Settle(b.ctx(), ss), "settle %d deliveries with %s", len(ss), kind)
}

// requireNothing checks that s delivers nothing within window: used only
// where a wrong broker would redeliver within a known bound (a lease).
func (b *bundle) requireNothing(s sdk.Stream, window time.Duration, why string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	ds, err := s.Recv(ctx, 100)
	if err == nil {
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i], _ = b.idOf(d)
			ids[i] = fmt.Sprintf("%s (attempt %d)", ids[i], d.Attempt)
		}
		b.t.Fatalf("%s, but it delivered %s", why, strings.Join(ids, ", "))
	}
	require.ErrorIs(b.t, err, context.DeadlineExceeded, "Recv on a quiet stream must wait for its context")
}

// barrier kicks a sentinel to queue and receives until it arrives: every
// delivery before it is a message that should not be there any more (the
// brokers we know are FIFO per queue, so a leftover is ahead of the
// sentinel). The sentinel is acked.
func (b *bundle) barrier(s sdk.Stream, queue string, why string) {
	b.t.Helper()
	sentinel := b.msg(queue)
	b.kick(sentinel)
	ctx := b.ctx()
	for {
		ds, err := s.Recv(ctx, 100)
		require.NoError(b.t, err, "waiting for the sentinel message")
		for _, d := range ds {
			id := b.mustID(d)
			if id == sentinel.TaskID {
				b.settle(s, sdk.SettleAck, d)
				return
			}
			b.t.Errorf("%s, but task %s was delivered again (attempt %d)", why, id, d.Attempt)
			b.settle(s, sdk.SettleAck, d)
		}
	}
}

// ---- subtests ----

// kickListenAck: messages kicked before and after a stream opens are
// delivered once, with their body intact and attempt 1, and an ack removes
// them for good.
func (s *brokerSuite) kickListenAck(t *testing.T, b *bundle) {
	start := time.Now()
	early := b.msgs("", 2)
	b.kick(early...)
	lease := time.Duration(0)
	if sdk.Has(b.caps, sdk.CapLease) {
		lease = b.o.lease
	}
	st := b.listen(sdk.ListenRequest{Lease: lease})
	late := b.msg("")
	b.kick(late)

	ds := b.recv(st, 3, 10)
	got := map[string]bool{}
	seenIDs := map[string]bool{}
	for _, d := range ds {
		id := b.mustID(d)
		require.False(t, got[id], "task %s delivered twice", id)
		got[id] = true
		require.NotEmpty(t, d.ID, "a delivery needs an id to be settled")
		require.False(t, seenIDs[d.ID], "delivery id %s used twice in one stream", d.ID)
		seenIDs[d.ID] = true
		require.Equal(t, 1, d.Attempt, "the first delivery of task %s has attempt 1", id)
		if lease > 0 {
			require.False(t, d.LeaseDeadline.IsZero(), "a broker with leases reports the lease deadline")
			require.WithinRange(t, d.LeaseDeadline, start.Add(lease-time.Second), time.Now().Add(lease+time.Second),
				"the lease deadline is about the requested lease (%s) after delivery", lease)
		}
	}
	require.True(t, got[early[0].TaskID] && got[early[1].TaskID] && got[late.TaskID])
	b.settle(st, sdk.SettleAck, ds...)
	if lease > 0 {
		b.requireNothing(st, 2*lease+timeTolerance, "acked messages must not come back when their lease would have expired")
	}
	b.barrier(st, "", "acked messages must not be delivered again")
}

// batchKick: 500 messages kicked in one call are all delivered, each once.
func (s *brokerSuite) batchKick(t *testing.T, b *bundle) {
	const n = 500
	batch := b.msgs("", n)
	b.kick(batch...)
	// A long lease: on a loaded machine a short one may expire while part
	// of the batch waits in the credit window, and the redelivery that
	// follows is right, not a fault this case looks for.
	req := sdk.ListenRequest{}
	if sdk.Has(b.caps, sdk.CapLease) {
		req.Lease = max(b.o.lease, 30*time.Second)
	}
	st := b.listen(req)
	// Ack as we go: the credit window (prefetch) holds back deliveries
	// beyond it until earlier ones are settled.
	count := map[string]int{}
	for received := 0; received < n; {
		ds := b.recvSome(st, min(100, n-received))
		for _, d := range ds {
			count[b.mustID(d)]++
		}
		b.settle(st, sdk.SettleAck, ds...)
		received += len(ds)
	}
	for _, m := range batch {
		require.Equal(t, 1, count[m.TaskID], "task %s of the batch", m.TaskID)
	}
	b.barrier(st, "", "every message of the batch was delivered and acked once")
}

// recvRespectsMax: Recv never returns more than max deliveries and returns
// as soon as it has one.
func (s *brokerSuite) recvRespectsMax(t *testing.T, b *bundle) {
	const n = 20
	b.kick(b.msgs("", n)...)
	st := b.listen(sdk.ListenRequest{})
	one := b.recv(st, 1, 1)
	rest := b.recv(st, n-1, 3) // recv checks len <= 3 on every call
	all := append(one, rest...)
	seen := map[string]bool{}
	for _, d := range all {
		id := b.mustID(d)
		require.False(t, seen[id], "task %s delivered twice", id)
		seen[id] = true
	}
	// Recv with max < 1 counts as 1.
	b.kick(b.msg(""))
	ds, err := st.Recv(b.ctx(), 0)
	require.NoError(t, err)
	require.Len(t, ds, 1, "Recv(max=0) returns one delivery")
	b.settle(st, sdk.SettleAck, append(all, ds...)...)
}

// recvRespectsContext: Recv on an empty queue returns the context's error
// when it is done.
func (s *brokerSuite) recvRespectsContext(t *testing.T, b *bundle) {
	st := b.listen(sdk.ListenRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := st.Recv(ctx, 10)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = st.Recv(ctx, 10)
	require.ErrorIs(t, err, context.Canceled)

	// The stream still works afterwards.
	m := b.msg("")
	b.kick(m)
	require.Equal(t, m.TaskID, b.mustID(b.recvOne(st)))
}

// nackRedelivers: a nacked message comes back with the same body.
func (s *brokerSuite) nackRedelivers(t *testing.T, b *bundle) {
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{})
	d := b.recvOne(st)
	require.Equal(t, m.TaskID, b.mustID(d))
	b.settle(st, sdk.SettleNack, d)
	again := b.recvOne(st)
	require.Equal(t, m.TaskID, b.mustID(again), "the nacked message is delivered again")
	b.settle(st, sdk.SettleAck, again)
	b.barrier(st, "", "the redelivered message was acked")
}

// attemptCounting: every redelivery after a nack counts one more attempt.
func (s *brokerSuite) attemptCounting(t *testing.T, b *bundle) {
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{})
	d := b.recvOne(st)
	require.Equal(t, 1, d.Attempt)
	for want := 2; want <= 3; want++ {
		b.settle(st, sdk.SettleNack, d)
		d = b.recvOne(st)
		require.Equal(t, m.TaskID, b.mustID(d))
		require.Equal(t, want, d.Attempt, "attempt after %d nacks", want-1)
	}
	b.settle(st, sdk.SettleAck, d)
}

// nackWithDelay: a message nacked with a delay is not redelivered before
// the delay, and is redelivered after it.
func (s *brokerSuite) nackWithDelay(t *testing.T, b *bundle) {
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{})
	d := b.recvOne(st)
	nackedAt := time.Now()
	require.NoError(t, st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleNack, Delay: b.o.delay}}))
	again := b.recvOne(st)
	elapsed := time.Since(nackedAt)
	require.Equal(t, m.TaskID, b.mustID(again))
	require.GreaterOrEqual(t, elapsed, b.o.delay-timeTolerance, "a message nacked with delay %s came back after %s", b.o.delay, elapsed)
	b.settle(st, sdk.SettleAck, again)
}

// leaseExpiry: a delivery neither settled nor extended comes back after its
// lease, not before, as a new attempt.
func (s *brokerSuite) leaseExpiry(t *testing.T, b *bundle) {
	b.checkLeaseExpiry(b.o.lease, b.o.lease)
}

// defaultLeaseExpiry: the same with the lease the launcher configured as
// the broker's default (WithDefaultLease).
func (s *brokerSuite) defaultLeaseExpiry(t *testing.T, b *bundle) {
	if b.o.defaultLease <= 0 {
		t.Skip("the launcher did not say which default lease it configured (conformance.WithDefaultLease)")
	}
	b.checkLeaseExpiry(0, b.o.defaultLease)
}

func (b *bundle) checkLeaseExpiry(ask, lease time.Duration) {
	t := b.t
	m := b.msg("")
	b.kick(m)
	st := b.listen(sdk.ListenRequest{Lease: ask})
	d := b.recvOne(st)
	require.Equal(t, m.TaskID, b.mustID(d))
	require.False(t, d.LeaseDeadline.IsZero(), "a broker with leases reports the lease deadline")

	// Any stream may get it back: the same one, or another listener.
	other := b.listen(sdk.ListenRequest{Lease: ask})
	type redelivery struct {
		d  sdk.Delivery
		st sdk.Stream
	}
	got := make(chan redelivery, 2)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout+lease)
	defer func() { cancel(); wg.Wait() }()
	for _, s := range []sdk.Stream{st, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ds, err := s.Recv(ctx, 1); err == nil {
				got <- redelivery{ds[0], s}
			}
		}()
	}
	var again redelivery
	select {
	case again = <-got:
	case <-ctx.Done():
		t.Fatalf("a delivery left unsettled was not redelivered within its lease (%s) plus %s", lease, b.o.timeout)
	}
	now := time.Now()
	require.Equal(t, m.TaskID, b.mustID(again.d))
	require.GreaterOrEqual(t, again.d.Attempt, 2, "a redelivery after lease expiry is a new attempt")
	require.False(t, now.Before(d.LeaseDeadline.Add(-timeTolerance)),
		"redelivered at %s, before the lease deadline %s of the first delivery",
		now.Format(time.StampMilli), d.LeaseDeadline.Format(time.StampMilli))
	b.settle(again.st, sdk.SettleAck, again.d)
}

// extendKeepsLease: extending a delivery's lease before it expires keeps
// the message from being redelivered for as long as the extensions go on.
func (s *brokerSuite) extendKeepsLease(t *testing.T, b *bundle) {
	lease := b.o.lease
	_, st, d := b.kickOneLeased(lease)

	// Watch both this stream and another listener for a redelivery while
	// the lease is extended every lease/4 for 3 leases.
	other := b.listen(sdk.ListenRequest{Lease: lease})
	watchCtx, stopWatch := context.WithCancel(context.Background())
	redelivered := make(chan sdk.Delivery, 4)
	var wg sync.WaitGroup
	for _, s := range []sdk.Stream{st, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := s.Recv(watchCtx, 10)
				if err != nil {
					return
				}
				for _, x := range ds {
					redelivered <- x
				}
			}
		}()
	}
	defer func() { stopWatch(); wg.Wait() }()

	tick := time.NewTicker(lease / 4)
	defer tick.Stop()
	until := time.Now().Add(3 * lease)
	for time.Now().Before(until) {
		require.NoError(t, st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleExtend, Delay: lease}}), "extend the lease")
		select {
		case x := <-redelivered:
			t.Fatalf("task %s was redelivered (attempt %d) while its lease was being extended", b.mustID(x), x.Attempt)
		case <-tick.C:
		}
	}
	b.settle(st, sdk.SettleAck, d)
	select {
	case x := <-redelivered:
		t.Fatalf("task %s was redelivered (attempt %d) while its lease was being extended", b.mustID(x), x.Attempt)
	default:
	}
}

// delayedKick: a message kicked with Delay is not delivered before it, a
// message kicked without one overtakes it, and the delayed one arrives.
func (s *brokerSuite) delayedKick(t *testing.T, b *bundle) {
	st := b.listen(sdk.ListenRequest{})
	delayed := b.msg("")
	delayed.Delay = b.o.delay
	now := b.msg("")
	kickedAt := time.Now()
	b.kick(delayed)
	b.kick(now)
	first := b.recvOne(st)
	require.Equal(t, now.TaskID, b.mustID(first), "the message without delay comes first")
	second := b.recvOne(st)
	elapsed := time.Since(kickedAt)
	require.Equal(t, delayed.TaskID, b.mustID(second))
	require.GreaterOrEqual(t, elapsed, b.o.delay-timeTolerance, "a message kicked with delay %s was delivered after %s", b.o.delay, elapsed)
	require.Equal(t, 1, second.Attempt, "waiting out a delay is not an attempt")
	b.settle(st, sdk.SettleAck, first, second)
}

// priority: a message of higher priority kicked after lower ones is
// delivered first.
func (s *brokerSuite) priority(t *testing.T, b *bundle) {
	low := b.msgs("", 3)
	high := b.msg("")
	high.Priority = 9
	b.kick(low[0], low[1])
	b.kick(high)
	b.kick(low[2])
	st := b.listen(sdk.ListenRequest{})
	ds := b.recv(st, 4, 4)
	require.Equal(t, high.TaskID, b.mustID(ds[0]), "the priority 9 message is delivered first")
	b.settle(st, sdk.SettleAck, ds...)
}

// routing: messages go to the queue their Outgoing.Queue names; a stream
// receives only from the queues it listens to, and reports the queue.
func (s *brokerSuite) routing(t *testing.T, b *bundle) {
	qa, qb := b.queue("a"), b.queue("b")
	toA, toB, toDefault := b.msgs(qa, 2), b.msgs(qb, 2), b.msg("")
	b.kick(append(append(toA, toB...), toDefault)...)

	sa := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: qa, Weight: 1}}})
	sb := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: qb, Weight: 1}}})
	sd := b.listen(sdk.ListenRequest{})
	check := func(st sdk.Stream, queue string, want []sdk.Outgoing) {
		t.Helper()
		ds := b.recv(st, len(want), 10)
		var ids, wantIDs []string
		for _, d := range ds {
			ids = append(ids, b.mustID(d))
			if queue != "" {
				require.Equal(t, queue, d.Queue, "the delivery reports the queue it came from")
			}
		}
		for _, m := range want {
			wantIDs = append(wantIDs, m.TaskID)
		}
		require.ElementsMatch(t, wantIDs, ids, "deliveries of queue %q", queue)
		b.settle(st, sdk.SettleAck, ds...)
	}
	check(sa, qa, toA)
	check(sb, qb, toB)
	check(sd, "", []sdk.Outgoing{toDefault})
	b.barrier(sa, qa, "a stream on queue "+qa+" received only that queue's messages")
	b.barrier(sb, qb, "a stream on queue "+qb+" received only that queue's messages")
	b.barrier(sd, "", "the default queue received only its own message")

	// One stream over both queues gets both. sa and sb would compete for
	// the messages (and may read ahead), so they go first.
	require.NoError(t, sa.Close())
	require.NoError(t, sb.Close())
	both := b.listen(sdk.ListenRequest{Queues: []sdk.Queue{{Name: qa, Weight: 1}, {Name: qb, Weight: 1}}})
	ma, mb := b.msg(qa), b.msg(qb)
	b.kick(ma, mb)
	check(both, "", []sdk.Outgoing{ma, mb})
}

// deadLetter: a dead-lettered delivery is accepted and never delivered
// again.
func (s *brokerSuite) deadLetter(t *testing.T, b *bundle) {
	m := b.msg("")
	b.kick(m)
	lease := time.Duration(0)
	if sdk.Has(b.caps, sdk.CapLease) {
		lease = b.o.lease
	}
	st := b.listen(sdk.ListenRequest{Lease: lease})
	d := b.recvOne(st)
	require.NoError(t, st.Settle(b.ctx(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "conformance: dead-lettered on purpose"}}))
	if lease > 0 {
		b.requireNothing(st, 2*lease+timeTolerance, "a dead-lettered message must not come back when its lease would have expired")
	}
	b.barrier(st, "", "a dead-lettered message must not be delivered again")
	// A settle failure the plugin reports asynchronously surfaces on the
	// next Settle call.
	b.settle(st, sdk.SettleAck)
}

// messageSizeLimit: a body of exactly the limit is delivered intact; one
// byte more is rejected with ErrMessageTooLarge.
func (s *brokerSuite) messageSizeLimit(t *testing.T, b *bundle) {
	limit := b.o.maxMessageSize
	st := b.listen(sdk.ListenRequest{})
	atLimit := b.msgOfSize(limit)
	b.kick(atLimit)
	d := b.recvOne(st)
	require.Equal(t, atLimit.TaskID, b.mustID(d), "a message of exactly the size limit is delivered intact")
	require.Len(t, d.Body, limit)
	b.settle(st, sdk.SettleAck, d)

	over := b.msgOfSize(limit + 1)
	b.remember([]sdk.Outgoing{over})
	err := b.b.Kick(b.ctx(), []sdk.Outgoing{over})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge, "a message one byte over the limit")
	require.Contains(t, err.Error(), "max_message_size", "the error says which setting to raise")

	small := b.msg("")
	b.remember([]sdk.Outgoing{small})
	err = b.b.Kick(b.ctx(), []sdk.Outgoing{small, b.msgOfSize(limit + 1)})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge, "a batch with one message over the limit")
	// Whether the small message of the failed batch went through is the
	// broker's business; drain it if it did.
	sentinel := b.msg("")
	b.kick(sentinel)
	for {
		d := b.recvOne(st)
		b.settle(st, sdk.SettleAck, d)
		id := b.mustID(d)
		if id == sentinel.TaskID {
			break
		}
		require.Equal(t, small.TaskID, id, "only the small message of the rejected batch may have gone through")
	}
}

// msgOfSize builds a message whose body is exactly size bytes: a wire
// message padded in a keyword argument.
func (b *bundle) msgOfSize(size int) sdk.Outgoing {
	b.t.Helper()
	m := b.msg("")
	base := &wire.Message{TaskID: m.TaskID, TaskName: m.TaskName, Kwargs: map[string]json.RawMessage{"pad": json.RawMessage(`""`)}}
	enc, err := base.MarshalJSON()
	require.NoError(b.t, err)
	pad := size - len(enc)
	require.GreaterOrEqual(b.t, pad, 0, "the size limit %d is too small for a message", size)
	base.Kwargs["pad"] = json.RawMessage(`"` + strings.Repeat("x", pad) + `"`)
	body, err := base.MarshalJSON()
	require.NoError(b.t, err)
	require.Len(b.t, body, size)
	m.Body = body
	return m
}

// concurrent: producers and consumers running at once; every message is
// delivered and acked exactly once.
func (s *brokerSuite) concurrent(t *testing.T, b *bundle) {
	const producers, perProducer, consumers = 4, 150, 3
	total := producers * perProducer
	// A lease far longer than the test: a redelivery here is a bug, not an
	// expired lease.
	lease := time.Duration(0)
	if sdk.Has(b.caps, sdk.CapLease) {
		lease = 10 * time.Minute
	}
	streams := make([]sdk.Stream, consumers)
	for i := range streams {
		streams[i] = b.listen(sdk.ListenRequest{Lease: lease})
	}

	var (
		mu       sync.Mutex
		count    = map[string]int{}
		acked    int
		problems []string
		allDone  = make(chan struct{})
	)
	ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := st.Recv(ctx, 16)
				if err != nil {
					return
				}
				mu.Lock()
				for _, d := range ds {
					id, err := b.idOf(d)
					if err != nil {
						problems = append(problems, err.Error())
						continue
					}
					count[id]++
				}
				mu.Unlock()
				if err := st.Settle(ctx, settlements(sdk.SettleAck, ds)); err != nil {
					mu.Lock()
					problems = append(problems, "ack: "+err.Error())
					mu.Unlock()
					return
				}
				mu.Lock()
				acked += len(ds)
				if acked == total {
					close(allDone)
				}
				mu.Unlock()
			}
		}()
	}
	var pwg sync.WaitGroup
	kickErrs := make(chan error, producers)
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			msgs := b.msgs("", perProducer)
			b.remember(msgs)
			// Batches of 1 to 10 messages, sizes varying per producer.
			for i := 0; i < len(msgs); {
				n := min(1+(i+p)%10, len(msgs)-i)
				if err := b.b.Kick(ctx, msgs[i:i+n]); err != nil {
					kickErrs <- err
					return
				}
				i += n
			}
		}()
	}
	pwg.Wait()
	close(kickErrs)
	for err := range kickErrs {
		require.NoError(t, err, "concurrent kick")
	}
	select {
	case <-allDone:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, problems)
	require.Len(t, count, total, "distinct messages delivered (of %d kicked, %d deliveries acked)", total, acked)
	for id, n := range count {
		require.Equal(t, 1, n, "task %s was delivered %d times", id, n)
	}
	// Close all but one stream; anything they still held unsettled (there
	// must be nothing) would reach the last one before the sentinel.
	for _, st := range streams[1:] {
		require.NoError(t, st.Close())
	}
	b.barrier(streams[0], "", "every message was acked once")
}

func settlements(kind sdk.SettleKind, ds []sdk.Delivery) []sdk.Settlement {
	out := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		out[i] = sdk.Settlement{DeliveryID: d.ID, Kind: kind}
	}
	return out
}

// closeReturnsUnsettled: deliveries a stream held unsettled when it closed
// are delivered to another stream, as new attempts.
func (s *brokerSuite) closeReturnsUnsettled(t *testing.T, b *bundle) {
	if !sdk.Has(b.caps, sdk.CapAckable) && !sdk.Has(b.caps, sdk.CapLease) {
		t.Skip("the broker claims neither ackable nor lease: a delivery is gone once handed out")
	}
	lease := time.Duration(0)
	if sdk.Has(b.caps, sdk.CapLease) {
		lease = b.o.lease // brokers that return them only at lease expiry
	}
	const n = 5
	kicked := b.msgs("", n)
	b.kick(kicked...)
	first := b.listen(sdk.ListenRequest{Lease: lease})
	held := b.recv(first, n, n)
	second := b.listen(sdk.ListenRequest{Lease: lease})
	require.NoError(t, first.Close())

	back := b.recv(second, n, n)
	var want, got []string
	for _, m := range kicked {
		want = append(want, m.TaskID)
	}
	for _, d := range back {
		got = append(got, b.mustID(d))
		require.GreaterOrEqual(t, d.Attempt, 2, "a message handed out before is a new attempt")
	}
	require.ElementsMatch(t, want, got)
	require.Len(t, held, n)
	b.settle(second, sdk.SettleAck, back...)
	b.barrier(second, "", "the returned messages were acked")
}

// brokerCloseEndsStreams: Close returns, and a stream blocked in Recv ends
// with an error instead of hanging.
func (s *brokerSuite) brokerCloseEndsStreams(t *testing.T, b *bundle) {
	st := b.listen(sdk.ListenRequest{})
	m := b.msg("")
	b.kick(m)
	d := b.recvOne(st)
	b.settle(st, sdk.SettleAck, d)

	recvErr := make(chan error, 1)
	go func() {
		_, err := st.Recv(context.Background(), 1)
		recvErr <- err
	}()
	require.NoError(t, b.b.Close(b.ctx()), "close the broker")
	select {
	case err := <-recvErr:
		require.Error(t, err)
		require.True(t, errors.Is(err, sdk.ErrClosed) || errors.Is(err, sdk.ErrUnavailable),
			"Recv on a stream of a closed broker returns ErrClosed (or ErrUnavailable), got %v", err)
	case <-time.After(b.o.timeout):
		t.Fatalf("Recv still blocked %s after the broker was closed", b.o.timeout)
	}
}
