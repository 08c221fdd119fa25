package sdk_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// TestUnappliedSettlementsOfADeadPlugin: for a broker declaring
// stable_ids, the host's side of a delivery stream knows which settlements
// the plugin confirmed as applied; those it sent that the plugin never
// applied (the process died first) are what Unapplied returns once the
// stream has ended, for the host to send to the restarted process.
func TestUnappliedSettlementsOfADeadPlugin(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c, st, ds := launchAndReceive(t, `{"queue":"q","stable_ids":true,"hang_reason":"dies before applying"}`, 2)
	require.Contains(t, c.Capabilities(), sdk.CapStableIDs)

	require.NoError(t, st.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	require.Eventually(t, func() bool { return sdk.SettlesInFlight(st) == 0 }, 10*time.Second, time.Millisecond,
		"the plugin confirms the settlements it applied")
	lost := sdk.Settlement{DeliveryID: ds[1].ID, Kind: sdk.SettleNack, Reason: "dies before applying"}
	require.NoError(t, st.Settle(ctx, []sdk.Settlement{lost}))
	require.Equal(t, 1, sdk.SettlesInFlight(st))
	require.Nil(t, st.(sdk.UnappliedReporter).Unapplied(), "nothing is reported while the stream is open")

	c.Kill()
	_, err := st.Recv(ctx, 1)
	require.Error(t, err)
	require.Equal(t, []sdk.Settlement{lost}, st.(sdk.UnappliedReporter).Unapplied())
	require.Nil(t, st.(sdk.UnappliedReporter).Unapplied(), "reported once")
}

// TestWithoutStableIDsNothingIsTracked: a broker without the capability
// gets no numbered settlements and the host keeps none.
func TestWithoutStableIDsNothingIsTracked(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c, st, ds := launchAndReceive(t, `{"queue":"q"}`, 1)
	require.NoError(t, st.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
	require.Zero(t, sdk.SettlesInFlight(st))
	c.Kill()
	_, _ = st.Recv(ctx, 1)
	require.Empty(t, st.(sdk.UnappliedReporter).Unapplied())
}

// launchAndReceive launches the fake broker with cfg, kicks n messages and
// receives them on a new stream.
func launchAndReceive(t *testing.T, cfg string, n int) (*sdk.Client, sdk.Stream, []sdk.Delivery) {
	t.Helper()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, cfg)
	b := c.Broker()
	require.NoError(t, b.Kick(ctx, outgoing(n, "m")))
	st, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	return c, st, recvN(t, ctx, st, n)
}
