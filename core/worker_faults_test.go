package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// syncLog collects log output from many goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Debug})
}

// scriptedBroker hands the worker the streams its listen function returns
// and records the requests.
type scriptedBroker struct {
	listen func(req sdk.ListenRequest) (sdk.Stream, error)
	mu     sync.Mutex
	reqs   []sdk.ListenRequest
}

func (b *scriptedBroker) Kick(context.Context, []sdk.Outgoing) error { return sdk.ErrUnsupported }
func (b *scriptedBroker) Close(context.Context) error                { return nil }
func (b *scriptedBroker) Listen(_ context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	b.mu.Lock()
	b.reqs = append(b.reqs, req)
	b.mu.Unlock()
	return b.listen(req)
}

// scriptedStream delivers what the test sends on deliveries, breaks with
// what it sends on broken, and records settlements; refuse, when set, fails
// the settlements it returns an error for.
type scriptedStream struct {
	deliveries chan sdk.Delivery
	broken     chan error
	refuse     func(sdk.Settlement) error
	onRecv     func() // called as Recv starts, when set
	mu         sync.Mutex
	settled    []sdk.Settlement
}

func newScriptedStream() *scriptedStream {
	return &scriptedStream{deliveries: make(chan sdk.Delivery, 16), broken: make(chan error, 1)}
}

func (s *scriptedStream) Recv(ctx context.Context, _ int) ([]sdk.Delivery, error) {
	if s.onRecv != nil {
		s.onRecv()
	}
	select { // deliveries queued before a break come first
	case d := <-s.deliveries:
		return []sdk.Delivery{d}, nil
	default:
	}
	select {
	case d := <-s.deliveries:
		return []sdk.Delivery{d}, nil
	case err := <-s.broken:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptedStream) Settle(_ context.Context, ss []sdk.Settlement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, st := range ss {
		if s.refuse != nil {
			if err := s.refuse(st); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		s.settled = append(s.settled, st)
	}
	return errors.Join(errs...)
}

func (s *scriptedStream) Close() error { return nil }

// kinds lists the settlements applied to a delivery, in order.
func (s *scriptedStream) kinds(id string) []sdk.SettleKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sdk.SettleKind
	for _, st := range s.settled {
		if st.DeliveryID == id {
			out = append(out, st.Kind)
		}
	}
	return out
}

// settledOf lists the settlements applied to a delivery, in order.
func (s *scriptedStream) settledOf(id string) []sdk.Settlement {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sdk.Settlement
	for _, st := range s.settled {
		if st.DeliveryID == id {
			out = append(out, st)
		}
	}
	return out
}

// scriptedApp is an App whose default broker is a scriptedBroker handing out
// one stream, with an in-memory result backend.
func scriptedApp(t *testing.T, st *scriptedStream, opts ...core.Option) (*core.App, *scriptedBroker, *syncLog) {
	t.Helper()
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return st, nil }}
	app, logs := scriptedBrokerApp(t, b, []string{sdk.CapAckable, sdk.CapLease, sdk.CapDeadLetter}, opts...)
	return app, b, logs
}

// scriptedBrokerApp is an App whose default broker is b, with caps.
func scriptedBrokerApp(t *testing.T, b *scriptedBroker, caps []string, opts ...core.Option) (*core.App, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	base := []core.Option{
		core.WithBroker("default", b, caps...),
		core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{})),
		core.WithLogger(logs.logger()),
	}
	app, err := core.New(append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	return app, logs
}

// delivery returns a delivery of a message of the named task.
func delivery(t *testing.T, id, task string, attempt int, deadline time.Time) sdk.Delivery {
	t.Helper()
	body, err := (&wire.Message{TaskID: "task-" + id, TaskName: task, Labels: map[string]any{}}).AppendJSON(nil)
	require.NoError(t, err)
	return sdk.Delivery{ID: id, Body: body, Attempt: attempt, LeaseDeadline: deadline}
}

// TestCopyOfARunningDeliveryIsDropped: a broker that hands out again a
// delivery the worker is running (same id) must not get it run a second time
// beside the first, nor settled twice.
func TestCopyOfARunningDeliveryIsDropped(t *testing.T) {
	t.Parallel()
	st := newScriptedStream()
	app, _, logs := scriptedApp(t, st)
	var runs atomic.Int32
	started, release := make(chan struct{}, 4), make(chan struct{})
	core.MustTask[int32](app, "slow", func() (int32, error) {
		n := runs.Add(1)
		started <- struct{}{}
		<-release
		return n, nil
	})
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{MaxAsyncTasks: 4})
	deadline := time.Now().Add(time.Hour)
	st.deliveries <- delivery(t, "1-0", "slow", 1, deadline)
	<-started
	st.deliveries <- delivery(t, "1-0", "slow", 2, deadline)
	st.deliveries <- delivery(t, "1-0", "slow", 3, deadline)
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "[WARN]  the broker delivered again a message this worker is running; dropping the copy") == 2
	}, 10*time.Second, time.Millisecond)
	require.Contains(t, logs.String(), "running_attempt=1")
	require.EqualValues(t, 1, runs.Load())
	require.Empty(t, st.kinds("1-0"), "a dropped copy settled the running delivery")
	close(release)
	require.Eventually(t, func() bool { return len(st.kinds("1-0")) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []sdk.SettleKind{sdk.SettleAck}, st.kinds("1-0"))
	require.EqualValues(t, 1, runs.Load())
}

// frozenWorker runs one delivery of a task that blocks until released, with
// a 5s lease, then moves the fake clock 20s on as if the process had been
// stopped (SIGSTOP) that long, until the extender has acted on it.
func frozenWorker(t *testing.T, st *scriptedStream, outcome func(ctx context.Context) (int, error)) (logs *syncLog, release func()) {
	t.Helper()
	clk := core.NewFakeClock()
	app, _, logs := scriptedApp(t, st, core.WithClock(clk))
	started, released := make(chan struct{}), make(chan struct{})
	core.MustTask[int](app, "slow", func(ctx context.Context) (int, error) {
		close(started)
		<-released
		return outcome(ctx)
	})
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	st.deliveries <- delivery(t, "7-0", "slow", 1, clk.Now().Add(5*time.Second))
	<-started
	clk.Advance(20 * time.Second)
	// The extender may have been between two waits when the clock moved;
	// nudging it on finds it waiting.
	require.Eventually(t, func() bool {
		if strings.Contains(logs.String(), "lease expired before the worker extended it") {
			return true
		}
		clk.Advance(100 * time.Millisecond)
		return false
	}, 10*time.Second, time.Millisecond)
	return logs, func() { close(released) }
}

// TestLeaseExpiredWhileFrozenIsExtendedAtOnce: the extender notices a lease
// whose deadline passed while the process could not run, says how late it
// is, and extends it at once.
func TestLeaseExpiredWhileFrozenIsExtendedAtOnce(t *testing.T) {
	t.Parallel()
	st := newScriptedStream()
	logs, release := frozenWorker(t, st, func(context.Context) (int, error) { return 1, nil })
	require.Eventually(t, func() bool { return len(st.kinds("7-0")) > 0 }, 10*time.Second, time.Millisecond)
	require.Equal(t, sdk.SettleExtend, st.kinds("7-0")[0])
	require.Regexp(t, `\[WARN\]  lease expired before the worker extended it .* delivery=7-0 overdue=15(\.\d+)?s`, logs.String())
	require.NotContains(t, logs.String(), "lease lost")
	release()
	require.Eventually(t, func() bool {
		k := st.kinds("7-0")
		return k[len(k)-1] == sdk.SettleAck
	}, 10*time.Second, time.Millisecond)
}

// TestLeaseLostRunOnlyAcks: when the broker refuses to extend an expired
// lease (another worker reclaimed the message), the worker says "lease lost";
// the run goes on, but it never sends the message back or to the dead-letter
// store (the new owner decides that), while a completed run still acks.
func TestLeaseLostRunOnlyAcks(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		outcome func(ctx context.Context) (int, error)
		want    []sdk.SettleKind
	}{
		"completed": {func(context.Context) (int, error) { return 1, nil }, []sdk.SettleKind{sdk.SettleAck}},
		"rejected":  {func(ctx context.Context) (int, error) { return 0, core.ContextFrom(ctx).Reject() }, nil},
		"requeued":  {func(ctx context.Context) (int, error) { return 0, core.ContextFrom(ctx).Requeue() }, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newScriptedStream()
			st.refuse = func(s sdk.Settlement) error {
				if s.Kind == sdk.SettleExtend {
					return fmt.Errorf("extend %s: %w", s.DeliveryID, inmemory.ErrUnknownDelivery)
				}
				return nil
			}
			logs, release := frozenWorker(t, st, tc.outcome)
			require.Eventually(t, func() bool {
				return strings.Contains(logs.String(), "[WARN]  lease lost: the broker did not extend the expired lease")
			}, 10*time.Second, time.Millisecond)
			release()
			require.Eventually(t, func() bool {
				if tc.want == nil {
					return strings.Contains(logs.String(), "[WARN]  lease lost: this run does not send its")
				}
				return len(st.kinds("7-0")) > 0
			}, 10*time.Second, time.Millisecond)
			require.Equal(t, tc.want, st.kinds("7-0"))
		})
	}
}

// TestWorkerWithoutLeaseTakesTheBrokers: with no lease in the worker block,
// a delivery carries the lease of the broker's config block (5s in
// loadProc), not a worker default.
func TestWorkerWithoutLeaseTakesTheBrokers(t *testing.T) {
	t.Parallel()
	b := loadProc(t, "")
	require.Zero(t, b.app.WorkerDefaults().Lease)
	task := core.MustTask[float64](b.app, "lease.left", func(ctx context.Context) (float64, error) {
		return time.Until(core.ContextFrom(ctx).Delivery.LeaseDeadline).Seconds(), nil
	})
	b.runWorker(t, core.WorkerOptions{})
	at, err := task.Kiq(context.Background())
	require.NoError(t, err)
	left := wait(t, at).ReturnValue
	require.Greater(t, left, 0.0)
	require.LessOrEqual(t, left, 5.0, "the delivery's lease is not the broker's 5s")
}

// TestReconnectBackoffResetsAfterAHealthyStream: the wait before reopening a
// broken stream grows while streams fail at once, and starts again from the
// shortest after a stream that delivered or stayed open for a while.
func TestReconnectBackoffResetsAfterAHealthyStream(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	type plan struct {
		deliver bool
		openFor time.Duration
	}
	// 8 streams that deliver and break (each would double the wait before
	// the fix: 50ms ... 5s), 3 that break at once, 1 that stays open a
	// minute, and a last one that stays open.
	var plans []plan
	for range 8 {
		plans = append(plans, plan{deliver: true})
	}
	plans = append(plans, plan{}, plan{}, plan{}, plan{openFor: time.Minute})
	var mu sync.Mutex
	opened := 0
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) {
		mu.Lock()
		defer mu.Unlock()
		st := newScriptedStream()
		if opened < len(plans) {
			p := plans[opened]
			if p.deliver {
				st.deliveries <- delivery(t, fmt.Sprint(opened), "quick", 1, time.Time{})
			}
			if p.openFor > 0 {
				st.onRecv = func() { clk.Advance(p.openFor) } // open while the clock moves
			}
			st.broken <- fmt.Errorf("stream %d: %w", opened, sdk.ErrUnavailable)
		}
		opened++
		return st, nil
	}}
	app, _ := scriptedBrokerApp(t, b, []string{sdk.CapAckable}, core.WithClock(clk))
	core.MustTask[int](app, "quick", func() (int, error) { return 1, nil })
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	require.Eventually(t, func() bool {
		mu.Lock()
		done := opened > len(plans)
		mu.Unlock()
		if !done {
			clk.Advance(10 * time.Millisecond)
		}
		return done
	}, 20*time.Second, time.Millisecond)
	var waits []time.Duration
	for _, d := range clk.Afters() {
		if d >= 50*time.Millisecond && d <= 5*time.Second {
			waits = append(waits, d)
		}
	}
	ms := time.Millisecond
	want := []time.Duration{50 * ms, 50 * ms, 50 * ms, 50 * ms, 50 * ms, 50 * ms, 50 * ms, 50 * ms, // after delivering
		100 * ms, 200 * ms, 400 * ms, // broke at once: backing off
		50 * ms} // stayed open a minute
	require.Equal(t, want, waits)
}

// halfKicker enqueues the first half of every batch, then fails, as a
// broker connection lost part way through a pipeline does.
type halfKicker struct{ *inmemory.Broker }

func (h halfKicker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	if err := h.Broker.Kick(ctx, msgs[:(len(msgs)+1)/2]); err != nil {
		return err
	}
	return fmt.Errorf("connection reset: %w", sdk.ErrUnavailable)
}

// TestFailedKickSaysTheMessageMayHaveLanded: a kick whose batch failed
// after the broker had taken its message reports an error that says so
// (ErrMaybeSent, wrapping the broker's error), and the task runs; an error
// found before sending does not say so.
func TestFailedKickSaysTheMessageMayHaveLanded(t *testing.T) {
	t.Parallel()
	inner := inmemory.NewBroker(inmemory.BrokerOptions{})
	app, err := core.New(core.WithBroker("default", halfKicker{inner}, brokerCaps()...),
		core.WithResultBackend(inmemory.NewResultBackend(inmemory.ResultOptions{})),
		core.WithLogger(hclog.NewNullLogger()), core.WithMaxMessageSize(1024))
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	ran := make(chan string, 1)
	task := core.MustTask[int](app, "landed", func(ctx context.Context) (int, error) {
		ran <- core.ContextFrom(ctx).Message.TaskID
		return 1, nil
	})
	(&testBundle{app: app, broker: inner}).runWorker(t, core.WorkerOptions{})
	_, err = task.Kicker().WithTaskID("kicked-once").Kiq(context.Background())
	require.ErrorIs(t, err, core.ErrMaybeSent)
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Equal(t, "kicked-once", <-ran, "the message whose kick failed was not enqueued")

	big := core.MustTask[int](app, "big", func(string) (int, error) { return 0, nil })
	_, err = big.Kiq(context.Background(), strings.Repeat("x", 2048))
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge)
	require.NotErrorIs(t, err, core.ErrMaybeSent)
}

// TestReadinessFollowsTheBrokerStream: a worker is ready once its stream is
// open, stays ready through a short failure, is not ready once its broker
// has failed (stream broken, reopening refused) for UnreadyAfter, and is
// ready again when a stream opens.
func TestReadinessFollowsTheBrokerStream(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	first := newScriptedStream()
	var mu sync.Mutex
	listens, refuse := 0, false
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) {
		mu.Lock()
		defer mu.Unlock()
		listens++
		switch {
		case listens == 1:
			return first, nil
		case refuse:
			return nil, fmt.Errorf("dial tcp 127.0.0.1:6379: connection refused: %w", sdk.ErrUnavailable)
		}
		return newScriptedStream(), nil
	}}
	app, logs := scriptedBrokerApp(t, b, []string{sdk.CapAckable}, core.WithClock(clk))
	type change struct {
		ready  bool
		reason string
		at     time.Duration
	}
	start := clk.Now()
	changes := make(chan change, 8)
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{
		UnreadyAfter: 10 * time.Second,
		Readiness: func(ready bool, reason string) {
			changes <- change{ready, reason, clk.Now().Sub(start)}
		},
	})
	require.Equal(t, change{true, "", 0}, <-changes)

	// The stream breaks and reopening fails for 9.5s: still ready.
	mu.Lock()
	refuse = true
	mu.Unlock()
	first.broken <- fmt.Errorf("broker stream: %w", sdk.ErrUnavailable)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "delivery stream broke") }, 10*time.Second, time.Millisecond)
	for clk.Now().Sub(start) < 9500*time.Millisecond {
		clk.Advance(50 * time.Millisecond)
	}
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "cannot open delivery stream") }, 10*time.Second, time.Millisecond)
	require.Empty(t, changes, "not ready after a failure shorter than UnreadyAfter")

	// next moves the clock on until the readiness changes.
	next := func() (c change) {
		require.Eventually(t, func() bool {
			select {
			case c = <-changes:
				return true
			default:
				clk.Advance(50 * time.Millisecond)
				return false
			}
		}, 10*time.Second, time.Millisecond)
		return c
	}

	// Past 10s: not ready, with the broker's error.
	down := next()
	require.False(t, down.ready)
	require.GreaterOrEqual(t, down.at, 10*time.Second)
	require.Regexp(t, `^broker "default" unavailable for 1\ds: .*connection refused`, down.reason)

	// The broker is back: the next stream that opens makes it ready.
	mu.Lock()
	refuse = false
	mu.Unlock()
	require.True(t, next().ready)
}

// A broker that refuses the plugin's credentials is retried once a minute,
// with an error that says so, instead of on the reconnect backoff: the
// refusal lasts until the configuration changes.
func TestRefusedCredentialsRetrySlowly(t *testing.T) {
	t.Parallel()
	clk := core.NewFakeClock()
	var mu sync.Mutex
	opened := 0
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) {
		mu.Lock()
		defer mu.Unlock()
		opened++
		st := newScriptedStream()
		if opened == 1 {
			st.broken <- fmt.Errorf("redis read: authentication failed: %w", sdk.ErrUnauthenticated)
		}
		return st, nil
	}}
	app, logs := scriptedBrokerApp(t, b, []string{sdk.CapAckable}, core.WithClock(clk))
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "refused its credentials") }, 10*time.Second, time.Millisecond)
	// The worker waits a minute (the reconnect backoff would wait 50ms).
	require.Eventually(t, func() bool { return slices.Contains(clk.Afters(), time.Minute) }, 10*time.Second, time.Millisecond)
	opens := func() int { mu.Lock(); defer mu.Unlock(); return opened }
	clk.Advance(59 * time.Second)
	require.Equal(t, 1, opens(), "reopened before the minute was up")
	clk.Advance(time.Second)
	require.Eventually(t, func() bool { return opens() == 2 }, 10*time.Second, time.Millisecond)
}
