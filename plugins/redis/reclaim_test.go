package taskiqredis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestReclaimDrainsInSmallBatches: a busy worker asks for one delivery at a
// time, yet every expired entry of a dead consumer comes back at once, not
// one per lease/2. (Regression: a reclaim pass used to end the reclaim for
// lease/2 even when it had filled its batch.) miniredis only: its clock
// expires the leases while real time stays far below lease/2.
func TestReclaimDrainsInSmallBatches(t *testing.T) {
	t.Parallel()
	e := newMiniEnv(t)
	const n = 5
	cfg := func(consumer string) map[string]any {
		return fast(map[string]any{"queue": "q", "consumer_name": consumer, "lease": "1h"})
	}
	a := e.broker(t, cfg("a"))
	sa := listen(t, a, sdk.ListenRequest{})
	msgs := make([]sdk.Outgoing, n)
	for i := range msgs {
		msgs[i] = out(strconv.Itoa(i))
	}
	kick(t, a, msgs...)
	recvN(t, sa, n) // a dies holding them all

	e.advance(2 * time.Hour)
	b := e.broker(t, cfg("b"))
	sb := listen(t, b, sdk.ListenRequest{})
	seen := map[string]bool{}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ds, err := sb.Recv(ctx, 1)
		cancel()
		require.NoError(t, err, "reclaimed delivery %d of %d did not come back", i+1, n)
		require.Len(t, ds, 1)
		require.Equal(t, 2, ds[0].Attempt)
		seen[string(ds[0].Body)] = true
	}
	require.Len(t, seen, n)
}
