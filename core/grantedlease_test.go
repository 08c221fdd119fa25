package core_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// grantingStream is a scripted stream whose broker says it grants every
// delivery and extension the same lease (sdk.LeaseGranter).
type grantingStream struct {
	*scriptedStream
	lease time.Duration
}

func (s grantingStream) GrantedLease() time.Duration { return s.lease }

// TestExtensionsFollowTheGrantedLease: a delivery arrives with 30s of lease
// left, but the broker grants 4s per extension: the worker extends by 4s
// once less than 2s of the delivery's deadline is left, then every 2s,
// instead of asking for 30s.
func TestExtensionsFollowTheGrantedLease(t *testing.T) {
	t.Parallel()
	st := newScriptedStream()
	clk := core.NewFakeClock()
	b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return grantingStream{st, 4 * time.Second}, nil }}
	app, _ := scriptedBrokerApp(t, b, []string{sdk.CapAckable, sdk.CapLease}, core.WithClock(clk))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(release) }) }
	core.MustTask[int](app, "slow", func() (int, error) { close(started); <-release; return 1, nil })
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})
	t.Cleanup(finish) // before the worker's stop, which waits for the task
	st.deliveries <- delivery(t, "9-0", "slow", 1, clk.Now().Add(30*time.Second))
	<-started

	extends := func() []sdk.Settlement {
		var out []sdk.Settlement
		for _, x := range st.settledOf("9-0") {
			if x.Kind == sdk.SettleExtend {
				out = append(out, x)
			}
		}
		return out
	}
	// Jump to 1.5s before the delivery's deadline (less than half the
	// granted lease left), nudging the extender until it has acted.
	clk.Advance(28500 * time.Millisecond)
	require.Eventually(t, func() bool {
		if len(extends()) > 0 {
			return true
		}
		clk.Advance(100 * time.Millisecond)
		return false
	}, 10*time.Second, time.Millisecond)
	first := extends()[0]
	require.Equal(t, 4*time.Second, first.Delay, "the extension asks for the granted lease")
	finish()
	require.Eventually(t, func() bool {
		k := st.kinds("9-0")
		return k[len(k)-1] == sdk.SettleAck
	}, 10*time.Second, time.Millisecond)
}
