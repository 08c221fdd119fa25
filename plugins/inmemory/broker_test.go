package inmemory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func TestKickRecvAck(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})

	tb.kick(t, msg("t1"))
	require.Equal(t, 1, tb.b.Len(""))
	require.Equal(t, 1, tb.b.Len(DefaultQueue))

	ds := recv(t, s, 10)
	require.Len(t, ds, 1)
	d := ds[0]
	require.NotEmpty(t, d.ID)
	require.Equal(t, "t1", string(d.Body))
	require.Equal(t, DefaultQueue, d.Queue)
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, tb.clk.Now().Add(DefaultLease), d.LeaseDeadline)
	require.Equal(t, 0, tb.b.Len(""))
	require.Equal(t, 1, tb.b.InFlight())

	settle(t, s, sdk.SettleAck, d)
	require.Equal(t, 0, tb.b.InFlight())
	requireNothingReady(t, s)

	// An acked message is gone for good, even after its lease would expire.
	tb.advance(time.Hour)
	requireNothingReady(t, s)
	require.Empty(t, tb.b.DeadLetters())
}

func TestRecvBlocksUntilKick(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})

	got := make(chan []sdk.Delivery, 1)
	go func() {
		ds, err := s.Recv(context.Background(), 10)
		if err != nil {
			close(got)
			return
		}
		got <- ds
	}()
	tb.kick(t, msg("late"))
	select {
	case ds, ok := <-got:
		require.True(t, ok, "Recv failed")
		require.Equal(t, []string{"late"}, bodies(ds))
	case <-time.After(5 * time.Second):
		t.Fatal("Recv did not return after a kick")
	}
}

func TestRecvRespectsMax(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	tb.kick(t, msgs("m", 250)...)

	seen := map[string]bool{}
	var sizes []int
	for len(seen) < 250 {
		ds := recv(t, s, 100)
		sizes = append(sizes, len(ds))
		for _, d := range ds {
			require.False(t, seen[d.ID], "delivery id %s reused", d.ID)
			seen[d.ID] = true
		}
	}
	require.Equal(t, []int{100, 100, 50}, sizes)

	// A max below 1 still makes progress, one at a time.
	tb.kick(t, msgs("x", 2)...)
	require.Len(t, recv(t, s, 0), 1)
}

func TestKickKeepsFIFOOrder(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	tb.kick(t, msgs("m", 5)...)
	tb.kick(t, msgs("n", 2)...)
	require.Equal(t, []string{"m0", "m1", "m2", "m3", "m4", "n0", "n1"}, bodies(recv(t, s, 10)))
}

func TestRoutingByQueue(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{Queue: "main"})
	a := tb.listen(t, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "a"}}})
	def := tb.listen(t, sdk.ListenRequest{})

	tb.kick(t,
		sdk.Outgoing{TaskID: "1", Body: []byte("to-a"), Queue: "a"},
		sdk.Outgoing{TaskID: "2", Body: []byte("to-default")},
		sdk.Outgoing{TaskID: "3", Body: []byte("to-b"), Queue: "b"},
	)
	require.Equal(t, 1, tb.b.Len("a"))
	require.Equal(t, 1, tb.b.Len("b"))
	require.Equal(t, 1, tb.b.Len("main"))
	require.Equal(t, 1, tb.b.Len(""))

	da := recv(t, a, 10)
	require.Equal(t, []string{"to-a"}, bodies(da))
	require.Equal(t, "a", da[0].Queue)
	requireNothingReady(t, a)

	dd := recv(t, def, 10)
	require.Equal(t, []string{"to-default"}, bodies(dd))
	require.Equal(t, "main", dd[0].Queue)

	// Nobody listens to b: its message waits.
	require.Equal(t, 1, tb.b.Len("b"))
	b := tb.listen(t, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "b"}}})
	require.Equal(t, []string{"to-b"}, bodies(recv(t, b, 10)))
}

func countQueues(ds []sdk.Delivery) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		out[d.Queue]++
	}
	return out
}

func kickTo(t *testing.T, tb *brokerBundle, queue string, n int) {
	t.Helper()
	ms := msgs(queue, n)
	for i := range ms {
		ms[i].Queue = queue
	}
	tb.kick(t, ms...)
}

func TestWeightedRouting(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	kickTo(t, tb, "heavy", 100)
	kickTo(t, tb, "light", 100)
	s := tb.listen(t, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "heavy", Weight: 3}, {Name: "light", Weight: 1}}})

	require.Equal(t, map[string]int{"heavy": 30, "light": 10}, countQueues(recv(t, s, 40)))
	// Small batches stay fair over time: the round robin state persists.
	got := map[string]int{}
	for range 20 {
		for q, n := range countQueues(recv(t, s, 2)) {
			got[q] += n
		}
	}
	require.Equal(t, map[string]int{"heavy": 30, "light": 10}, got)

	// Once a queue runs dry, the other gets everything.
	kickTo(t, tb, "light", 10)
	got = map[string]int{}
	for len(got) == 0 || got["heavy"]+got["light"] < 130 {
		for q, n := range countQueues(recv(t, s, 100)) {
			got[q] += n
		}
	}
	require.Equal(t, map[string]int{"heavy": 40, "light": 90}, got)
}

func TestWeightZeroCountsAsOne(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	kickTo(t, tb, "a", 50)
	kickTo(t, tb, "b", 50)
	s := tb.listen(t, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "a", Weight: 0}, {Name: "b", Weight: -5}}})
	require.Equal(t, map[string]int{"a": 20, "b": 20}, countQueues(recv(t, s, 40)))
}

func TestStrictPriorityRouting(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	kickTo(t, tb, "lo", 5)
	kickTo(t, tb, "hi", 3)
	s := tb.listen(t, sdk.ListenRequest{
		Queues:         []sdk.Queue{{Name: "hi"}, {Name: "lo"}},
		StrictPriority: true,
	})
	require.Equal(t, []string{"hi0", "hi1", "hi2", "lo0", "lo1", "lo2"}, bodies(recv(t, s, 6)))
	kickTo(t, tb, "hi", 1)
	require.Equal(t, []string{"hi0", "lo3"}, bodies(recv(t, s, 2)))
}

func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	for i, p := range []int{0, 5, 1, 5, 0, -2, 1} {
		tb.kick(t, sdk.Outgoing{TaskID: fmt.Sprint(i), Body: []byte(fmt.Sprintf("p%d-%d", p, i)), Priority: p})
	}
	require.Equal(t,
		[]string{"p5-1", "p5-3", "p1-2", "p1-6", "p0-0", "p0-4", "p-2-5"},
		bodies(recv(t, s, 100)))
}

func TestManyPriorityLevels(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	// More distinct priorities than a queue keeps idle levels for, kicked
	// and drained twice, still come out highest first.
	for round := range 2 {
		for p := range 10 {
			tb.kick(t, sdk.Outgoing{Body: []byte(fmt.Sprint(p)), Priority: p})
		}
		var got []string
		for len(got) < 10 {
			got = append(got, bodies(recv(t, s, 3))...)
		}
		require.Equal(t, []string{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}, got, "round %d", round)
	}
}

func TestDelayedDelivery(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})

	later := msg("later")
	later.Delay = 10 * time.Second
	sooner := msg("sooner")
	sooner.Delay = 5 * time.Second
	tb.kick(t, later, sooner, msg("now"))

	require.Equal(t, []string{"now"}, bodies(recv(t, s, 10)))
	require.Equal(t, 2, tb.b.Delayed())
	require.Equal(t, 0, tb.b.Len(""))

	tb.advance(5*time.Second - time.Nanosecond)
	requireNothingReady(t, s)
	tb.advance(time.Nanosecond)
	require.Equal(t, []string{"sooner"}, bodies(recv(t, s, 10)))
	tb.advance(4 * time.Second)
	requireNothingReady(t, s)
	tb.advance(time.Second)
	require.Equal(t, []string{"later"}, bodies(recv(t, s, 10)))
	require.Equal(t, 0, tb.b.Delayed())
}

func TestDelayedDeliveryWakesBlockedRecv(t *testing.T) {
	t.Parallel()
	// Real clock: the timekeeper goroutine must release the message by itself
	// and wake the blocked Recv.
	b := NewBroker(BrokerOptions{})
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	s, err := b.Listen(context.Background(), sdk.ListenRequest{})
	require.NoError(t, err)
	m := msg("delayed")
	m.Delay = 20 * time.Millisecond
	start := time.Now()
	require.NoError(t, b.Kick(context.Background(), []sdk.Outgoing{m}))
	ds := recv(t, s, 1)
	require.Equal(t, []string{"delayed"}, bodies(ds))
	require.GreaterOrEqual(t, time.Since(start), m.Delay)
}

func TestNackRedelivers(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	tb.kick(t, msg("n"))

	first := recv(t, s, 1)[0]
	settle(t, s, sdk.SettleNack, first)
	second := recv(t, s, 1)[0]
	require.Equal(t, "n", string(second.Body))
	require.Equal(t, 2, second.Attempt)
	require.NotEqual(t, first.ID, second.ID)

	// The first delivery is over: settling it again is an error.
	err := s.Settle(context.Background(), []sdk.Settlement{{DeliveryID: first.ID, Kind: sdk.SettleAck}})
	require.ErrorIs(t, err, ErrUnknownDelivery)

	// A delayed nack waits out its delay.
	require.NoError(t, s.Settle(context.Background(), []sdk.Settlement{{DeliveryID: second.ID, Kind: sdk.SettleNack, Delay: 5 * time.Second}}))
	requireNothingReady(t, s)
	require.Equal(t, 1, tb.b.Delayed())
	tb.advance(4 * time.Second)
	requireNothingReady(t, s)
	tb.advance(time.Second)
	third := recv(t, s, 1)[0]
	require.Equal(t, 3, third.Attempt)
	settle(t, s, sdk.SettleAck, third)
	require.Equal(t, 0, tb.b.InFlight())
}

func TestLeaseExpiryRedelivers(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s1 := tb.listen(t, sdk.ListenRequest{Lease: 10 * time.Second})
	tb.kick(t, msg("slow"))
	d1 := recv(t, s1, 1)[0]
	require.Equal(t, tb.clk.Now().Add(10*time.Second), d1.LeaseDeadline)

	tb.advance(10*time.Second - time.Nanosecond)
	s2 := tb.listen(t, sdk.ListenRequest{Lease: time.Minute})
	requireNothingReady(t, s2)

	tb.advance(time.Nanosecond)
	d2 := recv(t, s2, 1)[0]
	require.Equal(t, "slow", string(d2.Body))
	require.Equal(t, 2, d2.Attempt)
	require.Equal(t, tb.clk.Now().Add(time.Minute), d2.LeaseDeadline, "the new stream's lease applies")

	err := s1.Settle(context.Background(), []sdk.Settlement{{DeliveryID: d1.ID, Kind: sdk.SettleAck}})
	require.ErrorIs(t, err, ErrUnknownDelivery)
	settle(t, s2, sdk.SettleAck, d2)
	require.Equal(t, 0, tb.b.InFlight())
}

func TestExtendPreventsRedelivery(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{Lease: 10 * time.Second})
	s := tb.listen(t, sdk.ListenRequest{})
	tb.kick(t, msg("long"))
	d := recv(t, s, 1)[0]

	tb.advance(8 * time.Second)
	require.NoError(t, s.Settle(context.Background(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleExtend, Delay: 10 * time.Second}}))
	tb.advance(9 * time.Second) // 17s after delivery, 9s after the extension
	requireNothingReady(t, s)
	require.Equal(t, 1, tb.b.InFlight())

	// An extension with no Delay renews the stream's lease.
	require.NoError(t, s.Settle(context.Background(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleExtend}}))
	tb.advance(10*time.Second - time.Nanosecond)
	requireNothingReady(t, s)
	tb.advance(time.Nanosecond)
	again := recv(t, s, 1)[0]
	require.Equal(t, 2, again.Attempt)
}

func TestLeaseExpiryWakesBlockedRecv(t *testing.T) {
	t.Parallel()
	b := NewBroker(BrokerOptions{})
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ctx := context.Background()
	s1, err := b.Listen(ctx, sdk.ListenRequest{Lease: 20 * time.Millisecond})
	require.NoError(t, err)
	s2, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	require.NoError(t, b.Kick(ctx, []sdk.Outgoing{msg("crashy")}))
	require.Equal(t, 1, recv(t, s1, 1)[0].Attempt)
	// s1's worker "crashes": it never settles. s2 gets the message once the
	// lease runs out, driven by the timekeeper goroutine alone.
	d := recv(t, s2, 1)[0]
	require.Equal(t, "crashy", string(d.Body))
	require.Equal(t, 2, d.Attempt)
}

func TestStreamCloseReturnsUnsettled(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s1, err := tb.b.Listen(context.Background(), sdk.ListenRequest{})
	require.NoError(t, err)
	tb.kick(t, msgs("c", 4)...)
	ds := recv(t, s1, 4)
	require.Len(t, ds, 4)
	settle(t, s1, sdk.SettleAck, ds[1])

	require.NoError(t, s1.Close())
	require.NoError(t, s1.Close(), "Close is idempotent")
	require.Equal(t, 3, tb.b.Len(""))
	require.Equal(t, 0, tb.b.InFlight())

	_, err = s1.Recv(context.Background(), 1)
	require.ErrorIs(t, err, sdk.ErrClosed)
	err = s1.Settle(context.Background(), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}})
	require.ErrorIs(t, err, sdk.ErrClosed)

	s2 := tb.listen(t, sdk.ListenRequest{})
	back := recv(t, s2, 10)
	require.Equal(t, []string{"c0", "c2", "c3"}, bodies(back), "returned in delivery order")
	for _, d := range back {
		require.Equal(t, 2, d.Attempt)
	}
}

func TestStreamCloseWakesItsRecv(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s, err := tb.b.Listen(context.Background(), sdk.ListenRequest{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background(), 1)
		errc <- err
	}()
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, sdk.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Recv not woken by Close")
	}
}

func TestDeadLetterSettlement(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "jobs"}}})
	kicked := tb.clk.Now()
	tb.kick(t, sdk.Outgoing{TaskID: "bad-1", TaskName: "no.such.task", Body: []byte(`{"task_id":"bad-1"}`), Queue: "jobs"})
	d := recv(t, s, 1)[0]
	tb.advance(time.Second)
	require.NoError(t, s.Settle(context.Background(), []sdk.Settlement{{DeliveryID: d.ID, Kind: sdk.SettleDeadLetter, Reason: "unknown task name"}}))

	require.Equal(t, []DeadLetter{{
		TaskID:     "bad-1",
		TaskName:   "no.such.task",
		Body:       []byte(`{"task_id":"bad-1"}`),
		Reason:     "unknown task name",
		Queue:      "jobs",
		Attempt:    1,
		EnqueuedAt: kicked,
		FailedAt:   kicked.Add(time.Second),
	}}, tb.b.DeadLetters())
	require.Equal(t, 0, tb.b.InFlight())
	tb.advance(time.Hour)
	requireNothingReady(t, s)
}

func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{MaxAttempts: 3, Lease: time.Second})
	s := tb.listen(t, sdk.ListenRequest{})
	tb.kick(t, msg("poison"))

	// Attempt 1 nacked, attempt 2 lease expired, attempt 3 stream closed.
	settle(t, s, sdk.SettleNack, recv(t, s, 1)[0])
	require.Equal(t, 2, recv(t, s, 1)[0].Attempt)
	tb.advance(time.Second)
	require.Equal(t, 3, recv(t, s, 1)[0].Attempt)
	require.Empty(t, tb.b.DeadLetters())
	require.NoError(t, s.Close())

	dl := tb.b.DeadLetters()
	require.Len(t, dl, 1)
	require.Equal(t, ReasonMaxAttempts, dl[0].Reason)
	require.Equal(t, "poison", string(dl[0].Body))
	require.Equal(t, 3, dl[0].Attempt)
	require.Equal(t, 0, tb.b.Len(""))
	require.Equal(t, 0, tb.b.InFlight())
}

func TestUnknownDelivery(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	other := setupBroker(t, BrokerOptions{})
	s1 := tb.listen(t, sdk.ListenRequest{})
	s2 := tb.listen(t, sdk.ListenRequest{})
	os := other.listen(t, sdk.ListenRequest{})
	tb.kick(t, msg("a"), msg("b"))
	other.kick(t, msg("x"))
	ds := recv(t, s1, 2)
	foreign := recv(t, os, 1)[0]

	for _, id := range []string{"", "nope", "123", foreign.ID, ds[0].ID + "0"} {
		for _, kind := range []sdk.SettleKind{sdk.SettleAck, sdk.SettleNack, sdk.SettleExtend, sdk.SettleDeadLetter} {
			err := s1.Settle(context.Background(), []sdk.Settlement{{DeliveryID: id, Kind: kind}})
			require.ErrorIs(t, err, ErrUnknownDelivery, "id %q kind %s", id, kind)
		}
	}
	// Another stream of the same broker cannot settle s1's deliveries.
	err := s2.Settle(context.Background(), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}})
	require.ErrorIs(t, err, ErrUnknownDelivery)

	// In a mixed batch the known settlements still apply.
	err = s1.Settle(context.Background(), []sdk.Settlement{
		{DeliveryID: "gone", Kind: sdk.SettleAck},
		{DeliveryID: ds[0].ID, Kind: sdk.SettleAck},
		{DeliveryID: ds[1].ID, Kind: sdk.SettleKind(99)},
	})
	require.ErrorIs(t, err, ErrUnknownDelivery)
	require.ErrorContains(t, err, "unknown settlement kind")
	require.Equal(t, 1, tb.b.InFlight(), "ds[0] acked, ds[1] untouched")
	settle(t, s1, sdk.SettleAck, ds[1])
	require.Equal(t, 0, tb.b.InFlight())
}

func TestRecvContextCancel(t *testing.T) {
	t.Parallel()
	tb := setupBroker(t, BrokerOptions{})
	s := tb.listen(t, sdk.ListenRequest{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv(ctx, 1)
		errc <- err
	}()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	// The stream still works afterwards.
	tb.kick(t, msg("after"))
	require.Equal(t, []string{"after"}, bodies(recv(t, s, 1)))
}

func TestBrokerCloseWakesRecv(t *testing.T) {
	t.Parallel()
	b := newBroker(BrokerOptions{}, newFakeClock().Now)
	s, err := b.Listen(context.Background(), sdk.ListenRequest{})
	require.NoError(t, err)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.Recv(context.Background(), 1)
			errc <- err
		}()
	}
	require.NoError(t, b.Close(context.Background()))
	for range 2 {
		select {
		case err := <-errc:
			require.ErrorIs(t, err, sdk.ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Recv not woken by broker Close")
		}
	}
	require.NoError(t, b.Close(context.Background()), "Close is idempotent")
	require.ErrorIs(t, b.Kick(context.Background(), []sdk.Outgoing{msg("x")}), sdk.ErrClosed)
	_, err = b.Listen(context.Background(), sdk.ListenRequest{})
	require.ErrorIs(t, err, sdk.ErrClosed)
	require.ErrorIs(t, s.Settle(context.Background(), nil), sdk.ErrClosed)
}

// TestConcurrentExactlyOnceAck runs producers and consumers at once, with
// consumers nacking some first attempts and one consumer closing its stream
// midway, and checks that every task is acked exactly once.
func TestConcurrentExactlyOnceAck(t *testing.T) {
	t.Parallel()
	const (
		producers = 4
		consumers = 6
		perProd   = 5000
		total     = producers * perProd
	)
	b := NewBroker(BrokerOptions{})
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ctx := context.Background()

	acks := make([]atomic.Int32, total)
	var acked atomic.Int64
	allAcked := make(chan struct{})

	var wg sync.WaitGroup
	errc := make(chan error, producers+consumers)
	for c := range consumers {
		s, err := b.Listen(ctx, sdk.ListenRequest{Queues: []sdk.Queue{{Name: "q0", Weight: 2}, {Name: "q1"}}})
		require.NoError(t, err)
		wg.Go(func() {
			received := 0
			for {
				ds, err := s.Recv(ctx, 64)
				if err != nil {
					return // broker closed
				}
				received += len(ds)
				// Consumer 0 walks away with its last batch unsettled: those
				// deliveries must come back to the others.
				if c == 0 && received > total/consumers/2 {
					_ = s.Close()
					return
				}
				st := make([]sdk.Settlement, 0, len(ds))
				var ackedIDs []int
				for _, d := range ds {
					var id int
					if _, err := fmt.Sscanf(string(d.Body), "%d", &id); err != nil {
						errc <- err
						return
					}
					if d.Attempt == 1 && id%7 == 0 {
						st = append(st, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleNack})
						continue
					}
					st = append(st, sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
					ackedIDs = append(ackedIDs, id)
				}
				if err := s.Settle(ctx, st); err != nil {
					errc <- err
					return
				}
				for _, id := range ackedIDs {
					acks[id].Add(1)
				}
				if acked.Add(int64(len(ackedIDs))) == total {
					close(allAcked)
				}
			}
		})
	}
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProd; i += 50 {
				batch := make([]sdk.Outgoing, 50)
				for j := range batch {
					id := p*perProd + i + j
					batch[j] = sdk.Outgoing{TaskID: fmt.Sprint(id), Body: []byte(fmt.Sprint(id)), Queue: fmt.Sprintf("q%d", id%2)}
				}
				if err := b.Kick(ctx, batch); err != nil {
					errc <- err
					return
				}
			}
		})
	}

	select {
	case <-allAcked:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d tasks acked", acked.Load(), total)
	}
	require.NoError(t, b.Close(ctx))
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	for id := range acks {
		require.Equal(t, int32(1), acks[id].Load(), "task %d", id)
	}
	require.Equal(t, 0, b.Len("q0")+b.Len("q1"))
	require.Equal(t, 0, b.InFlight())
	require.Empty(t, b.DeadLetters())
}

// Dedup windows expire: a task id kicked again after its window is
// enqueued again, and expired entries are swept as the map grows.
func TestDedupWindowExpires(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := newBroker(BrokerOptions{}, clock)
	defer b.Close(context.Background())
	ctx := context.Background()
	kick := func(id string) {
		require.NoError(t, b.Kick(ctx, []sdk.Outgoing{{TaskID: id, Body: []byte(id), DedupWindow: time.Minute}}))
	}
	kick("a")
	kick("a")
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	kick("a")
	for i := range 2000 {
		kick(fmt.Sprint("fill-", i))
	}
	require.Equal(t, 2+2000, b.Len(""), "one copy within the window, another after it")
	mu.Lock()
	now = now.Add(2 * time.Minute) // every window so far has ended
	mu.Unlock()
	for i := range 100 {
		kick(fmt.Sprint("late-", i))
	}
	b.mu.Lock()
	tracked := len(b.dedup)
	b.mu.Unlock()
	require.LessOrEqual(t, tracked, 100, "expired windows are swept once the map reaches its sweep size")
}
