package sdk_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TestStopEndsTheClientsGoroutines: Close and Kill return only once the
// receive loops of the streams left open (a delivery stream, the result
// watch, a task module's stream) have ended, not merely once the process
// is gone.
func TestStopEndsTheClientsGoroutines(t *testing.T) {
	t.Parallel()
	stops := map[string]func(*sdk.Client){
		"Close": func(c *sdk.Client) { require.NoError(t, c.Close(testCtx(t))) },
		"Kill":  (*sdk.Client).Kill,
	}
	for name, stop := range stops {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)

			bc := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
			s, err := bc.Broker().Listen(ctx, sdk.ListenRequest{})
			require.NoError(t, err)

			rc := sdktest.Launch(t, sdk.KindResultBackend, `{}`)
			waited := make(chan error, 1)
			go func() {
				_, err := rc.ResultBackend().(sdk.ResultWaiter).WaitResult(ctx, "never")
				waited <- err
			}()

			tc := launchModule(t)
			executed := make(chan error, 1)
			go func() {
				_, err := tc.Tasks(0).Execute(ctx, taskMsg("wait"))
				executed <- err
			}()
			require.Eventually(t, func() bool {
				return sdk.ClientGoroutines(bc) == 1 && sdk.ClientGoroutines(rc) == 1 && sdk.ClientGoroutines(tc) == 1
			}, 10*time.Second, time.Millisecond, "every client runs its receive loop")

			for _, c := range []*sdk.Client{bc, rc, tc} {
				stop(c)
				require.Zero(t, sdk.ClientGoroutines(c), "a goroutine of the client runs on after it stopped")
			}
			_, err = s.Recv(ctx, 1)
			require.Error(t, err)
			require.NoError(t, s.Close())
			require.Error(t, <-waited)
			require.Error(t, <-executed)

			// A stopped client starts nothing more.
			_, err = bc.Broker().Listen(ctx, sdk.ListenRequest{})
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			_, err = rc.ResultBackend().(sdk.ResultWaiter).WaitResult(ctx, "later")
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			_, err = tc.Tasks(0).Execute(ctx, taskMsg("wait"))
			require.ErrorIs(t, err, sdk.ErrUnavailable)
			require.False(t, bc.Alive())
			for _, c := range []*sdk.Client{bc, rc, tc} {
				require.Zero(t, sdk.ClientGoroutines(c))
			}
		})
	}
}

// slowHost is a Host whose Kick keeps running a while after its call was
// cancelled, as a host kicking into a slow broker would.
type slowHost struct {
	fakeHost
	entered chan struct{}
	ended   atomic.Bool
}

func (h *slowHost) Kick(ctx context.Context, _ string, _ []*wire.Message) error {
	close(h.entered)
	<-ctx.Done()
	time.Sleep(100 * time.Millisecond)
	h.ended.Store(true)
	return ctx.Err()
}

// TestKillWaitsForHostCalls: a plugin's call into the Host that is under way
// when the plugin is killed has returned by the time Kill returns, so the
// host never serves a plugin it has already let go.
func TestKillWaitsForHostCalls(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	host := &slowHost{entered: make(chan struct{})}
	c := sdktest.Launch(t, sdk.KindMiddleware, `{}`, sdktest.WithHost(host))
	mw := c.Middleware([]sdk.Hook{sdk.HookPreSend}).(sdk.PreSender)
	sent := make(chan error, 1)
	go func() { sent <- mw.PreSend(ctx, &wire.Message{TaskID: "t", TaskName: "callback"}) }()
	select {
	case <-host.entered:
	case <-ctx.Done():
		t.Fatal("the plugin's Host.Kick never reached the host")
	}
	c.Kill()
	require.True(t, host.ended.Load(), "Kill returned while the plugin's Host.Kick was still running")
	require.Zero(t, sdk.ClientGoroutines(c))
	require.Error(t, <-sent)
}
