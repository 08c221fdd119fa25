package taskiqredis

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// outageEnv is a password-protected miniredis the test can stop and start
// again with its data, and a broker on it whose clock the test moves, so
// that unavailable_after passes without waiting for it.
type outageEnv struct {
	*testEnv
	b    *broker
	logs *logBuffer
	addr string // the server's, also while it is stopped

	mu    sync.Mutex
	clock time.Time
}

const outagePassword = "outage-pass-7f3a"

func newOutageEnv(t *testing.T, kv map[string]any) *outageEnv {
	mr := miniredis.RunT(t)
	mr.RequireAuth(outagePassword)
	e := &outageEnv{testEnv: &testEnv{url: "redis://" + mr.Addr() + "/0", mr: mr}, logs: &logBuffer{}, clock: time.Now()}
	e.addr = mr.Addr()
	e.rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), Password: outagePassword})
	t.Cleanup(func() { _ = e.rdb.Close() })
	// The broker-wide delayed mover is off: these tests count the
	// listener's own calls and retries during an outage, and the mover's
	// failing dials would add to go-redis's dial-error count.
	cfg := fast(map[string]any{"queue": "q", "password": outagePassword, "move_delayed": false})
	for k, v := range kv {
		cfg[k] = v
	}
	e.b = e.broker(t, cfg)
	e.b.log = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: e.logs})
	e.b.now = func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.clock }
	return e
}

// pass moves the broker's clock.
func (e *outageEnv) pass(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
}

// stop takes Redis away (its data is kept for start) and waits until the
// listener has seen a failed call (it logs its retry), so that the clock
// moves while the outage is under way: an outage counts from the first
// failed call.
func (e *outageEnv) stop(t *testing.T) {
	before := strings.Count(e.logs.String(), "failed; retrying")
	e.mr.Close()
	require.Eventually(t, func() bool { return strings.Count(e.logs.String(), "failed; retrying") > before },
		10*time.Second, 5*time.Millisecond, "the listener did not notice the outage")
}

// start brings the same server back on the same address. Close cancels
// miniredis's context, which would end every blocking command at once,
// so it gets a new one.
func (e *outageEnv) start(t *testing.T) {
	e.mr.Lock()
	e.mr.Ctx, e.mr.CtxCancel = context.WithCancel(context.Background())
	e.mr.Unlock()
	require.NoError(t, e.mr.Restart())
}

// recvAsync starts a Recv and returns where its outcome arrives.
func recvAsync(s sdk.Stream) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background(), 10)
		done <- err
	}()
	return done
}

func requireEnded(t *testing.T, e *outageEnv, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		require.Error(t, err)
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("the delivery stream stayed open through the outage; logs:\n%s", e.logs.String())
		return nil
	}
}

func requireOpen(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the delivery stream ended before unavailable_after: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestOutageEndsStream: a listener keeps its stream open through an outage
// shorter than unavailable_after (the bound counts from the first failed
// call; a call that succeeds ends the count, so two short outages do not
// add up), and ends it with an error
// wrapping sdk.ErrUnavailable, logged once at error level with the address
// and the duration, once Redis has been unreachable for unavailable_after.
// Regression: the listeners retried forever, so to the host an outage
// looked like an idle queue and /readyz stayed 200.
func TestOutageEndsStream(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeStream, modeList, modePubSub} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newOutageEnv(t, map[string]any{"mode": mode, "unavailable_after": "10s"})
			s := listen(t, e.b, sdk.ListenRequest{})
			done := recvAsync(s)

			// A short outage, then Redis answers again: the bound starts over.
			e.stop(t)
			e.pass(6 * time.Second)
			e.start(t)
			require.Eventually(t, func() bool { return e.b.Kick(ctxT(t), []sdk.Outgoing{out("between")}) == nil },
				10*time.Second, 10*time.Millisecond)
			if mode == modePubSub {
				// Nothing is stored: what was published before the
				// listener resubscribed is gone. Wait for a message that
				// arrives, which proves a successful read.
				require.Eventually(t, func() bool {
					_ = e.b.Kick(ctxT(t), []sdk.Outgoing{out("between")})
					select {
					case err := <-done:
						require.NoError(t, err)
						return true
					case <-time.After(20 * time.Millisecond):
						return false
					}
				}, 10*time.Second, time.Millisecond)
				// Take the other copies, so that the next Recv waits.
				for len(recvNone(s)) > 0 {
				}
			} else {
				select {
				case err := <-done:
					require.NoError(t, err, "the stream did not ride out a short outage")
				case <-time.After(10 * time.Second):
					t.Fatal("no delivery after Redis came back")
				}
			}

			done = recvAsync(s)
			e.stop(t)
			e.pass(6 * time.Second)
			requireOpen(t, done) // 6s of this outage, 12s of both: not yet
			e.pass(5 * time.Second)
			err := requireEnded(t, e, done)
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			require.NotErrorIs(t, err, ErrAuthFailed)
			require.NotErrorIs(t, err, sdk.ErrClosed)
			require.Contains(t, err.Error(), e.addr)
			require.Contains(t, err.Error(), "unreachable for 11s")
			require.NotContains(t, err.Error(), outagePassword)
			_, again := s.Recv(ctxT(t), 1)
			require.Equal(t, err, again, "an ended stream stays ended")

			logs := e.logs.String()
			require.Equal(t, 1, strings.Count(logs, "[ERROR]"), logs)
			require.Contains(t, logs, "redis unreachable; the delivery stream ends")
			require.Contains(t, logs, "addr="+e.addr)
			require.Contains(t, logs, "unreachable_for=11s")
			require.NotContains(t, logs, outagePassword)

			// What the host does next: close it, and reopen. Listen fails
			// while Redis is down, so the worker becomes not ready, in
			// every mode.
			require.NoError(t, s.Close())
			_, err = e.b.Listen(ctxT(t), sdk.ListenRequest{})
			require.ErrorIs(t, err, sdk.ErrUnavailable, "Listen without Redis succeeded: the host would take it for the end of the outage")
		})
	}
}

// TestOutageEndLosesNothing: the entries a stream-mode listener held when
// its stream ended for an outage (delivered, not settled) stay pending in
// the consumer group; the stream the host opens next runs under another
// consumer name and reclaims them once their lease expired. Acked entries
// are not redelivered; nothing is lost.
func TestOutageEndLosesNothing(t *testing.T) {
	t.Parallel()
	e := newOutageEnv(t, map[string]any{"lease": "1m", "unavailable_after": "10s"})
	old := listen(t, e.b, sdk.ListenRequest{})
	kick(t, e.b, out("acked"), out("held-1"), out("held-2"))
	ds := recvN(t, old, 3)
	require.NoError(t, old.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	oldConsumer := old.(*streamListener).consumer

	done := recvAsync(old)
	e.stop(t)
	e.pass(11 * time.Second)
	require.ErrorIs(t, requireEnded(t, e, done), sdk.ErrUnavailable)
	require.NoError(t, old.Close())

	e.start(t)
	var next sdk.Stream
	require.Eventually(t, func() bool {
		s, err := e.b.Listen(ctxT(t), sdk.ListenRequest{})
		if err != nil {
			return false
		}
		next = s
		return true
	}, 10*time.Second, 20*time.Millisecond)
	t.Cleanup(func() { _ = next.Close() })
	require.NotEqual(t, oldConsumer, next.(*streamListener).consumer, "the new stream is a new consumer")

	// Within the lease the held entries are still the old consumer's.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	got, _ := next.Recv(ctx, 10)
	cancel()
	require.Empty(t, got, "entries came back before their lease expired")

	e.advance(2 * time.Minute) // Redis's idle times pass the lease
	e.pass(2 * time.Minute)    // and the listener's reclaim is due
	got = recvN(t, next, 2)
	bodies := []string{string(got[0].Body), string(got[1].Body)}
	require.ElementsMatch(t, []string{"held-1", "held-2"}, bodies)
	for _, d := range got {
		require.Equal(t, 2, d.Attempt)
	}
	require.NoError(t, next.Settle(ctxT(t), []sdk.Settlement{
		{DeliveryID: got[0].ID, Kind: sdk.SettleAck}, {DeliveryID: got[1].ID, Kind: sdk.SettleAck}}))
	require.Zero(t, e.rdb.XPending(ctxT(t), "q", defaultGroup).Val().Count, "all settled: 0 lost")
	require.Zero(t, e.rdb.XLen(ctxT(t), "q").Val(), "acked entries are deleted, the acked one was not redelivered")
}
