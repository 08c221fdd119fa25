package inmemory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// fakeClock is the broker's and result backend's clock in tests: time moves
// only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type brokerBundle struct {
	b   *Broker
	clk *fakeClock
}

// setupBroker returns a broker on a fake clock, closed when the test ends.
func setupBroker(t testing.TB, opts BrokerOptions) *brokerBundle {
	t.Helper()
	clk := newFakeClock()
	b := newBroker(opts, clk.Now)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	return &brokerBundle{b: b, clk: clk}
}

// advance moves the clock and runs the timekeeper's work at the new time, as
// the timekeeper goroutine would once its timer fired.
func (tb *brokerBundle) advance(d time.Duration) {
	tb.clk.Advance(d)
	tb.b.tick()
}

func (tb *brokerBundle) kick(t testing.TB, msgs ...sdk.Outgoing) {
	t.Helper()
	require.NoError(t, tb.b.Kick(context.Background(), msgs))
}

func (tb *brokerBundle) listen(t testing.TB, req sdk.ListenRequest) sdk.Stream {
	t.Helper()
	s, err := tb.b.Listen(context.Background(), req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// msg is an outgoing message whose body is its task id.
func msg(id string) sdk.Outgoing {
	return sdk.Outgoing{TaskID: id, TaskName: "test.task", Body: []byte(id)}
}

func msgs(prefix string, n int) []sdk.Outgoing {
	out := make([]sdk.Outgoing, n)
	for i := range out {
		out[i] = msg(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// recv receives up to max deliveries, failing the test if none come soon.
func recv(t testing.TB, s sdk.Stream, max int) []sdk.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := s.Recv(ctx, max)
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	return ds
}

// requireNothingReady checks that nothing is ready for s right now: Recv
// with a cancelled context returns what is ready, or the context's error.
func requireNothingReady(t testing.TB, s sdk.Stream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ds, err := s.Recv(ctx, 100)
	require.ErrorIs(t, err, context.Canceled, "unexpected deliveries: %v", bodies(ds))
}

func bodies(ds []sdk.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

func settle(t testing.TB, s sdk.Stream, kind sdk.SettleKind, ds ...sdk.Delivery) {
	t.Helper()
	st := make([]sdk.Settlement, len(ds))
	for i, d := range ds {
		st[i] = sdk.Settlement{DeliveryID: d.ID, Kind: kind}
	}
	require.NoError(t, s.Settle(context.Background(), st))
}
