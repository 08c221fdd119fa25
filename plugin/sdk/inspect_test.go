package sdk_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// TestInspectorUnsupported: a broker that does not implement the
// inspection roles answers every call with ErrUnsupported, naming the
// capability, across the process boundary.
func TestInspectorUnsupported(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"q"}`)
	in := c.Inspector()
	_, err := in.Queues(ctx)
	require.ErrorIs(t, err, sdk.ErrUnsupported)
	require.ErrorContains(t, err, `"inspect"`)
	require.ErrorIs(t, in.Heartbeat(ctx, sdk.WorkerInfo{ID: "w"}, time.Second), sdk.ErrUnsupported)
	err = in.Cancel(ctx, "t1")
	require.ErrorIs(t, err, sdk.ErrUnsupported)
	require.ErrorContains(t, err, `"cancel"`)
	require.ErrorIs(t, in.WatchCancels(ctx, func([]string) {}), sdk.ErrUnsupported)
}

// TestMessageFilter: what a filter matches, as every inspector applies it.
func TestMessageFilter(t *testing.T) {
	t.Parallel()
	body := []byte(`{"task_id": "t1", "task_name": "billing.charge", "labels": {"tenant": "acme", "n": 3}, "args": ["inv-17", 42], "kwargs": {"note": "late fee"}}`)
	for _, c := range []struct {
		f      sdk.MessageFilter
		reason string
		want   bool
	}{
		{sdk.MessageFilter{}, "", true},
		{sdk.MessageFilter{TaskName: "billing.charge"}, "", true},
		{sdk.MessageFilter{TaskName: "billing"}, "", false},
		{sdk.MessageFilter{TaskID: "t1"}, "", true},
		{sdk.MessageFilter{Labels: map[string]string{"tenant": "acme", "n": "3"}}, "", true},
		{sdk.MessageFilter{Labels: map[string]string{"tenant": "globex"}}, "", false},
		{sdk.MessageFilter{Text: "inv-17"}, "", true},
		{sdk.MessageFilter{Text: "late fee"}, "", true},
		{sdk.MessageFilter{Text: "billing"}, "", false},
		{sdk.MessageFilter{Text: "timeout"}, "upstream timeout", true},
	} {
		require.Equal(t, c.want, c.f.MatchBody(body, c.reason), "%+v", c.f)
	}
	require.True(t, sdk.MessageFilter{Text: "garbage"}.MatchBody([]byte("not json garbage"), ""), "an unparseable body matches text on its bytes")
	require.False(t, sdk.MessageFilter{TaskName: "x"}.MatchBody([]byte("not json"), ""))
}

func TestActionValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, sdk.Action{Kind: sdk.ActionRequeue, State: sdk.StateDead}.Validate())
	require.Error(t, sdk.Action{Kind: sdk.ActionDelete, State: sdk.StateRunning}.Validate())
	require.Error(t, sdk.Action{Kind: sdk.ActionMove, State: sdk.StateDead}.Validate(), "a move needs a target")
	require.Error(t, sdk.Action{Kind: sdk.ActionRequeue, State: sdk.StateQueued}.Validate())
	require.Error(t, sdk.Action{Kind: "explode", State: sdk.StateDead}.Validate())
}
