package sdk

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

type labelingMiddleware struct{}

func (labelingMiddleware) PreSend(_ context.Context, msg *wire.Message) error {
	msg.SetLabel("added", int64(1))
	delete(msg.Labels, "gone")
	return nil
}

func (labelingMiddleware) PostExecute(_ context.Context, _ *wire.Message, res *wire.Result) error {
	res.Labels["seen"] = true
	return nil
}

// TestRunHookAnswersAnOlderHost checks the plugin side of
// CapHookLabelChanges: a host that does not ask for label changes (built
// before them) gets whole messages and results, as it always did; one that
// asks gets only the labels that changed.
func TestRunHookAnswersAnOlderHost(t *testing.T) {
	s := &middlewareServer{srv: &pluginServer{p: Plugin{Name: "labeling"}}}
	msg := &wire.Message{TaskID: "1", TaskName: "t", Labels: map[string]any{"gone": "x", "stay": "y"}}
	body, err := msg.AppendJSON(nil)
	require.NoError(t, err)
	result, err := wire.EncodeResult(&wire.Result{ReturnValue: json.RawMessage(`2`), Labels: map[string]any{}})
	require.NoError(t, err)

	for _, hook := range []Hook{HookPreSend, HookPostExecute} {
		req := &pluginv1.HookRequest{Hook: string(hook), Message: body}
		if hook == HookPostExecute {
			req.Result = result
		}
		old, err := s.runHook(context.Background(), labelingMiddleware{}, req)
		require.NoError(t, err)
		require.Empty(t, old.MessageLabels, "an older host is not sent label changes")
		require.Empty(t, old.ResultLabels, "an older host is not sent label changes")
		req.LabelChanges = true
		cur, err := s.runHook(context.Background(), labelingMiddleware{}, req)
		require.NoError(t, err)
		require.Empty(t, cur.Message, "label changes replace the whole message")
		require.Empty(t, cur.Result, "label changes replace the whole result")

		if hook == HookPreSend {
			require.NotEmpty(t, old.Message, "the changed message goes back whole")
			want, err := wire.DecodeMessage(old.Message)
			require.NoError(t, err)
			got := &wire.Message{TaskID: "1", TaskName: "t", Labels: map[string]any{"gone": "x", "stay": "y"}}
			applyMessageLabels(got, cur.MessageLabels)
			require.Equal(t, want.Labels, got.Labels, "label changes give the labels the whole message carries")
		} else {
			require.Empty(t, old.Message, "post_execute left the message as it was")
			require.Empty(t, cur.MessageLabels)
			require.NotEmpty(t, old.Result)
			want, err := wire.DecodeResult(old.Result)
			require.NoError(t, err)
			got := &wire.Result{ReturnValue: json.RawMessage(`2`), Labels: map[string]any{}}
			require.NoError(t, applyResultLabels(got, cur.ResultLabels))
			require.Equal(t, want, got)
		}
	}
}

// olderPlugin answers the unary Hook as a plugin built before
// CapHookLabelChanges does: whatever the request asks, the changed message
// comes back whole.
type olderPlugin struct{ pluginv1.MiddlewareClient }

func (olderPlugin) Hook(_ context.Context, req *pluginv1.HookRequest, _ ...grpc.CallOption) (*pluginv1.HookResponse, error) {
	msg, err := wire.DecodeMessage(req.Message)
	if err != nil {
		return nil, err
	}
	msg.SetLabel("old", "plugin")
	body, err := msg.AppendJSON(nil)
	return &pluginv1.HookResponse{Message: body}, err
}

// TestHostTakesWholeMessagesWhenAskingForChanges: a host asking for label
// changes still applies a whole message, which an older plugin sends.
func TestHostTakesWholeMessagesWhenAskingForChanges(t *testing.T) {
	m := &remoteMiddleware{rpc: olderPlugin{}, hooks: []Hook{HookPreSend}, labelChanges: true}
	msg := &wire.Message{TaskID: "1", TaskName: "t", Labels: map[string]any{"a": "b"}}
	require.NoError(t, m.PreSend(context.Background(), msg))
	require.Equal(t, map[string]any{"a": "b", "old": "plugin"}, msg.Labels)
}

// TestBadResultLabelChangesNothing: a label change whose value is not JSON
// is refused with a clear error before any label is applied.
func TestBadResultLabelChangesNothing(t *testing.T) {
	res := &wire.Result{Labels: map[string]any{"a": "b"}}
	err := applyResultLabels(res, []*pluginv1.LabelChange{
		{Key: "fine", Value: []byte(`1`)},
		{Key: "bad", Value: []byte(`{`)},
	})
	require.ErrorIs(t, err, wire.ErrMalformed)
	require.ErrorContains(t, err, `label "bad"`)
	require.Equal(t, map[string]any{"a": "b"}, res.Labels)
}
