package inmemory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// TestMain lets sdktest re-execute this test binary as the plugin process.
func TestMain(m *testing.M) {
	sdktest.RunPluginIfRequested(Plugin())
	goleak.VerifyTestMain(m)
}

// requireRoleCaps checks the capabilities the plugin process reports for a
// role, as the host sees them.
func requireRoleCaps(ctx context.Context, t *testing.T, c *sdk.Client, kind sdk.Kind, want []string) {
	t.Helper()
	info, err := c.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, Name, info.Name)
	require.Equal(t, Version, info.Version)
	role, ok := info.Role(kind)
	require.True(t, ok, "plugin serves %s", kind)
	require.ElementsMatch(t, want, role.Capabilities)
}

// TestPluginProcessBroker drives the broker through a real plugin process:
// handshake, config, batched kick, the Listen stream and settlements.
func TestPluginProcessBroker(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"proc","lease":"30s","max_attempts":2}`)
	b := c.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	requireRoleCaps(ctx, t, c, sdk.KindBroker, BrokerCapabilities)

	s, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, b.Kick(ctx, msgs("p", 3)))

	var got []sdk.Delivery
	for len(got) < 3 {
		ds, err := s.Recv(ctx, 10)
		require.NoError(t, err)
		got = append(got, ds...)
	}
	require.Equal(t, []string{"p0", "p1", "p2"}, bodies(got))
	for _, d := range got {
		require.Equal(t, "proc", d.Queue)
		require.Equal(t, 1, d.Attempt)
		require.False(t, d.LeaseDeadline.IsZero())
	}
	// Ack two, nack one: the nacked one comes back as attempt 2.
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{
		{DeliveryID: got[0].ID, Kind: sdk.SettleAck},
		{DeliveryID: got[1].ID, Kind: sdk.SettleNack},
		{DeliveryID: got[2].ID, Kind: sdk.SettleAck},
	}))
	ds, err := s.Recv(ctx, 10)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "p1", string(ds[0].Body))
	require.Equal(t, 2, ds[0].Attempt)
	require.NoError(t, s.Settle(ctx, []sdk.Settlement{{DeliveryID: ds[0].ID, Kind: sdk.SettleAck}}))
}

// TestPluginProcessStreamCloseRedelivers checks that deliveries of a stream
// the host closes (as when a worker dies) go to the next stream.
func TestPluginProcessStreamCloseRedelivers(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, sdk.KindBroker, `{}`)
	b := c.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.Kick(ctx, []sdk.Outgoing{msg("orphan")}))

	s1, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	ds, err := s1.Recv(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 1, ds[0].Attempt)
	require.NoError(t, s1.Close())

	s2, err := b.Listen(ctx, sdk.ListenRequest{})
	require.NoError(t, err)
	defer s2.Close()
	ds, err = s2.Recv(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "orphan", string(ds[0].Body))
	require.Equal(t, 2, ds[0].Attempt)
}

// TestPluginProcessResults checks the result backend across the process
// boundary, including a WaitResult that a concurrent SetResults ends.
func TestPluginProcessResults(t *testing.T) {
	t.Parallel()
	c := sdktest.Launch(t, sdk.KindResultBackend, `{"result_ttl":"1h","keep_results":true}`)
	r := c.ResultBackend()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	requireRoleCaps(ctx, t, c, sdk.KindResultBackend, ResultCapabilities)

	_, err := r.GetResult(ctx, "missing")
	require.ErrorIs(t, err, sdk.ErrNotFound)

	w, ok := r.(sdk.ResultWaiter)
	require.True(t, ok, "the remote backend offers WaitResult")
	got := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		body, err := w.WaitResult(ctx, "later")
		if err != nil {
			errc <- err
			return
		}
		got <- body
	}()
	require.NoError(t, r.SetResults(ctx, []sdk.StoredResult{{TaskID: "later", Body: []byte(`{"return_value":42}`)}}))
	select {
	case body := <-got:
		require.Equal(t, `{"return_value":42}`, string(body))
	case err := <-errc:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("WaitResult did not return")
	}
	require.NoError(t, r.SetProgress(ctx, "later", []byte("100%")))
	p, err := r.GetProgress(ctx, "later")
	require.NoError(t, err)
	require.Equal(t, "100%", string(p))
}

// BenchmarkPluginProcessKickRecvAck measures the path the ≥150k tasks/s
// target is about: one producer and one consumer in the host, the broker in
// a plugin process, batches of 100 both ways.
func BenchmarkPluginProcessKickRecvAck(b *testing.B) {
	c := sdktest.Launch(b, sdk.KindBroker, `{}`)
	br := c.Broker()
	ctx := context.Background()
	s, err := br.Listen(ctx, sdk.ListenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := benchBatchOf(benchBatch)
	for i := range batch {
		batch[i].TaskID = strconv.Itoa(i)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	b.ReportAllocs()
	b.ResetTimer()
	wg.Go(func() {
		for done := 0; done < b.N; done += benchBatch {
			if err := br.Kick(ctx, batch[:min(benchBatch, b.N-done)]); err != nil {
				errc <- err
				return
			}
		}
	})
	recvAndAck(b, ctx, s, b.N, make([]sdk.Settlement, 0, benchBatch))
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(fmt.Errorf("kick: %w", err))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
