package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// restartingBroker stands for a broker plugin process that dies and is
// restarted: each Listen hands out the next stream once the test allows it
// (on open), and a broken stream refuses settlements as a dead process would.
type restartingBroker struct {
	scriptedBroker
	mu      sync.Mutex
	streams []*scriptedStream
	open    chan struct{}
}

func newRestartingBroker() *restartingBroker {
	b := &restartingBroker{open: make(chan struct{}, 4)}
	b.listen = func(sdk.ListenRequest) (sdk.Stream, error) {
		select {
		case <-b.open:
		default:
			return nil, fmt.Errorf("%w: broker plugin restarting", sdk.ErrUnavailable)
		}
		st := newScriptedStream()
		b.mu.Lock()
		b.streams = append(b.streams, st)
		b.mu.Unlock()
		return st, nil
	}
	b.open <- struct{}{}
	return b
}

func (b *restartingBroker) stream(i int) *scriptedStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i >= len(b.streams) {
		return nil
	}
	return b.streams[i]
}

// kill breaks stream i: its Recv fails and its settlements are refused.
func (b *restartingBroker) kill(i int) {
	st := b.stream(i)
	st.mu.Lock()
	st.refuse = func(sdk.Settlement) error { return fmt.Errorf("%w: broker plugin exited", sdk.ErrUnavailable) }
	st.mu.Unlock()
	st.broken <- fmt.Errorf("%w: broker plugin exited", sdk.ErrUnavailable)
}

// runAcrossRestart runs two deliveries of a blocking task, kills the
// stream, finishes the first task while no stream is open and the second
// once the next stream is open, and returns the broker.
func runAcrossRestart(t *testing.T, caps []string) (*restartingBroker, *syncLog) {
	t.Helper()
	b := newRestartingBroker()
	app, logs := scriptedBrokerApp(t, &b.scriptedBroker, caps)
	started := make(chan string, 2)
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	core.MustTask[int](app, "block", func(ctx context.Context, name string) (int, error) {
		started <- name
		<-release[name]
		return 1, nil
	})
	(&testBundle{app: app}).runWorker(t, core.WorkerOptions{Lease: time.Hour})
	deadline := time.Now().Add(time.Hour)
	first := b.stream(0)
	first.deliveries <- argDelivery(t, "1-0", "block", "a", deadline)
	first.deliveries <- argDelivery(t, "2-0", "block", "b", deadline)
	<-started
	<-started
	b.kill(0)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "delivery stream broke") }, 10*time.Second, time.Millisecond)
	close(release["a"]) // finishes while the broker is down
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "keeping them") || strings.Contains(logs.String(), "settling a delivery failed")
	}, 10*time.Second, time.Millisecond)
	b.open <- struct{}{}
	require.Eventually(t, func() bool { return b.stream(1) != nil }, 10*time.Second, time.Millisecond)
	close(release["b"]) // finishes once the broker is back
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "keeping them") && len(b.stream(1).kinds("2-0")) == 1 ||
			strings.Count(logs.String(), "settling a delivery failed") == 2
	}, 10*time.Second, time.Millisecond)
	return b, logs
}

// TestStableIDsSettlementsSurviveABrokerRestart: with sdk.CapStableIDs, the
// acks of tasks that finished while the broker's stream was down, or after
// a new stream opened, reach the new stream instead of being dropped.
func TestStableIDsSettlementsSurviveABrokerRestart(t *testing.T) {
	t.Parallel()
	b, logs := runAcrossRestart(t, []string{sdk.CapAckable, sdk.CapLease, sdk.CapStableIDs})
	next := b.stream(1)
	require.Eventually(t, func() bool { return len(next.kinds("1-0")) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []sdk.SettleKind{sdk.SettleAck}, next.kinds("1-0"), "kept ack")
	require.Equal(t, []sdk.SettleKind{sdk.SettleAck}, next.kinds("2-0"), "ack forwarded from the broken stream")
	require.NotContains(t, logs.String(), "settling a delivery failed")
	require.Contains(t, logs.String(), "sent the settlements kept from the broker's previous stream")
}

// TestWithoutStableIDsSettlementsAreDropped: a broker without the
// capability gets nothing of a dead stream's settlements on its next one;
// it redelivers those messages.
func TestWithoutStableIDsSettlementsAreDropped(t *testing.T) {
	t.Parallel()
	b, logs := runAcrossRestart(t, []string{sdk.CapAckable, sdk.CapLease})
	require.Empty(t, b.stream(1).kinds("1-0"))
	require.Empty(t, b.stream(1).kinds("2-0"))
	require.Equal(t, 2, strings.Count(logs.String(), "settling a delivery failed; the broker will redeliver it"))
}

// argDelivery returns a delivery of a message of the named task with one
// string argument.
func argDelivery(t *testing.T, id, task, arg string, deadline time.Time) sdk.Delivery {
	t.Helper()
	body, err := (&wire.Message{TaskID: "task-" + id, TaskName: task, Labels: map[string]any{},
		Args: []json.RawMessage{json.RawMessage(`"` + arg + `"`)}}).AppendJSON(nil)
	require.NoError(t, err)
	return sdk.Delivery{ID: id, Body: body, Attempt: 1, LeaseDeadline: deadline}
}
