package taskiqredis

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// TestPluginProcess runs the plugin as a real child process (the test
// binary re-executed through sdktest) and drives it over gRPC against a
// miniredis in this process.
func TestPluginProcess(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	cfg, err := json.Marshal(map[string]any{"url": "redis://" + mr.Addr() + "/0", "queue": "proc", "block": "100ms"})
	require.NoError(t, err)

	c := sdktest.Launch(t, sdk.KindBroker, string(cfg))
	info, err := c.Info(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, "taskiq-redis", info.Name)
	role, ok := info.Role(sdk.KindBroker)
	require.True(t, ok)
	require.True(t, sdk.Has(role.Capabilities, sdk.CapAckable))
	pw, ok := role.Schema.Attribute("password")
	require.True(t, ok)
	require.True(t, pw.Sensitive)

	b := c.Broker()
	s, err := b.Listen(ctxT(t), sdk.ListenRequest{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, b.Kick(ctxT(t), []sdk.Outgoing{{TaskID: "1", Body: []byte(pythonMessage)}, {TaskID: "2", Body: []byte("two")}}))
	ds := recvN(t, s, 2)
	require.Equal(t, pythonMessage, string(ds[0].Body))
	require.Equal(t, "two", string(ds[1].Body))
	require.Equal(t, 1, ds[0].Attempt)
	require.NoError(t, s.Settle(ctxT(t), []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}, {DeliveryID: ds[1].ID, Kind: sdk.SettleAck}}))
	require.Eventually(t, func() bool {
		entries, err := mr.Stream("proc")
		return err == nil && len(entries) == 0
	}, 10*time.Second, 10*time.Millisecond, "acks travel through the stream and delete the entries")

	rc := sdktest.Launch(t, sdk.KindResultBackend, `{"url":"redis://`+mr.Addr()+`/0","prefix":"r"}`)
	rb := rc.ResultBackend()
	require.NoError(t, rb.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: "1", Body: []byte(errorResult)}}))
	got, err := rb.GetResult(ctxT(t), "1")
	require.NoError(t, err)
	require.Equal(t, errorResult, string(got))
	v, err := mr.Get("r:1")
	require.NoError(t, err)
	require.Equal(t, errorResult, v)
	w, ok := rb.(sdk.ResultWaiter)
	require.True(t, ok, "the remote result backend offers WaitResult")
	got, err = w.WaitResult(ctxT(t), "1")
	require.NoError(t, err)
	require.Equal(t, errorResult, string(got))
}

// Check (what `taskiq config validate` runs) refuses what New refuses
// without connecting: the URL points at a port nothing listens on.
func TestCheckDoesNotConnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := Plugin()
	ok := map[string]any{"url": "redis://127.0.0.1:1/0", "lease": "5s"}
	require.NoError(t, p.Broker.Check(ctx, rawTestConfig(t, ok)))
	require.NoError(t, p.ResultBackend.Check(ctx, rawTestConfig(t, map[string]any{"url": "redis://127.0.0.1:1/0"})))

	for _, tc := range []struct {
		cfg  map[string]any
		attr string
	}{
		{map[string]any{"url": "http://127.0.0.1:1"}, "url"},
		{map[string]any{"url": "redis://127.0.0.1:1/0", "lease": "5ms"}, "lease"},
		{map[string]any{"url": "redis://127.0.0.1:1/0", "count": 0}, "count"},
		{map[string]any{"url": "redis://127.0.0.1:1/0", "sentinel_master": "m"}, "sentinel_addrs"},
	} {
		err := p.Broker.Check(ctx, rawTestConfig(t, tc.cfg))
		ces := sdk.ConfigErrors(err)
		require.Len(t, ces, 1, "%v: %v", tc.cfg, err)
		require.Equal(t, tc.attr, ces[0].Attribute, "%v", tc.cfg)
	}
	_, err := p.Broker.Schema.Prepare(json.RawMessage(`{"mode": "disk"}`))
	require.ErrorContains(t, err, `mode: must be one of "stream", "list", "pubsub", got "disk"`)
}
