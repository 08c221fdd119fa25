package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// TestUnknownTaskLeftToOtherConsumers: a broker that declares
// CapLeaveUnknownTasks (its queue is shared with other services) gets a
// message for a task this worker does not register back as a nack, and no
// result is stored; an unparseable message is still dead-lettered. Without
// the capability an unknown task is dead-lettered.
func TestUnknownTaskLeftToOtherConsumers(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		caps        []string
		wantUnknown sdk.SettleKind
	}{
		"leave":       {[]string{sdk.CapAckable, sdk.CapDeadLetter, sdk.CapDelay, sdk.CapLeaveUnknownTasks}, sdk.SettleNack},
		"dead_letter": {[]string{sdk.CapAckable, sdk.CapDeadLetter}, sdk.SettleDeadLetter},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newScriptedStream()
			b := &scriptedBroker{listen: func(sdk.ListenRequest) (sdk.Stream, error) { return st, nil }}
			app, _ := scriptedBrokerApp(t, b, tc.caps)
			core.MustTask[int](app, "go:known", func(context.Context) (int, error) { return 1, nil })
			(&testBundle{app: app}).runWorker(t, core.WorkerOptions{})

			st.deliveries <- delivery(t, "1-0", "python_app.tasks:resize", 1, time.Time{})
			st.deliveries <- sdk.Delivery{ID: "2-0", Body: []byte("not json"), Attempt: 1}
			st.deliveries <- delivery(t, "3-0", "go:known", 1, time.Time{})
			require.Eventually(t, func() bool {
				return len(st.kinds("1-0")) > 0 && len(st.kinds("2-0")) > 0 && len(st.kinds("3-0")) > 0
			}, 10*time.Second, time.Millisecond)

			require.Equal(t, []sdk.SettleKind{tc.wantUnknown}, st.kinds("1-0"))
			require.Contains(t, st.settledOf("1-0")[0].Reason, "python_app.tasks:resize")
			require.Equal(t, []sdk.SettleKind{sdk.SettleDeadLetter}, st.kinds("2-0"), "unparseable: dead letter either way")
			require.Equal(t, []sdk.SettleKind{sdk.SettleAck}, st.kinds("3-0"))
			if tc.wantUnknown == sdk.SettleNack {
				require.Equal(t, time.Second, st.settledOf("1-0")[0].Delay, "out of the queue for a moment, so another consumer takes it")
				ready, err := core.ResultOf[any](app, "task-1-0").IsReady(context.Background())
				require.NoError(t, err)
				require.False(t, ready, "the other service stores its result")
			}
		})
	}
}
