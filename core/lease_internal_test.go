package core

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/coalesce"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// idleBroker is a broker the test never uses.
type idleBroker struct{}

func (idleBroker) Kick(context.Context, []sdk.Outgoing) error { return sdk.ErrUnsupported }
func (idleBroker) Listen(context.Context, sdk.ListenRequest) (sdk.Stream, error) {
	return nil, sdk.ErrUnsupported
}
func (idleBroker) Close(context.Context) error { return nil }

// extendRecorder is a stream that records extensions.
type extendRecorder struct {
	sdk.Stream
	mu       sync.Mutex
	extended []string
}

func (r *extendRecorder) Settle(_ context.Context, ss []sdk.Settlement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range ss {
		if s.Kind == sdk.SettleExtend {
			r.extended = append(r.extended, s.DeliveryID)
		}
	}
	return nil
}

func (r *extendRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.extended)
}

// TestExtenderRenewsAShortBrokerLeaseInTime: a delivery leased for 5s by
// the broker (the worker asked for none) is extended before the 5s are up,
// tick after tick as the extender schedules them.
func TestExtenderRenewsAShortBrokerLeaseInTime(t *testing.T) {
	clk := NewFakeClock()
	app, err := New(WithBroker("default", idleBroker{}, sdk.CapLease), WithLogger(hclog.NewNullLogger()))
	require.NoError(t, err)
	app.clock = clk
	rec := &extendRecorder{}
	w := &worker{app: app, broker: app.brokers["default"], taskCtx: context.Background()}
	s := &stream{Stream: rec, inflight: map[string]*Context{}, leaseWake: make(chan struct{}, 1)}
	s.settler = coalesce.New(16, rec.Settle)
	t.Cleanup(s.settler.Close)
	start := clk.Now()
	tc := &Context{Delivery: sdk.Delivery{ID: "1-0", LeaseDeadline: start.Add(5 * time.Second)}}
	w.setLease(s, tc)
	require.Nil(t, s.track(tc))
	for round := 0; round < 3; round++ {
		deadline := tc.leaseDeadline
		for n := rec.count(); rec.count() == n; {
			require.Less(t, clk.Now().Sub(deadline), time.Duration(0), "the lease ran out before the worker extended it")
			clk.Advance(w.extendDue(s))
		}
		require.False(t, tc.leaseDeadline.Before(clk.Now().Add(4*time.Second)), "an extension renews the broker's 5s")
	}
}
