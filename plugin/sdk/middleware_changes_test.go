package sdk_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TestHookLabelChanges runs the hooks of many concurrent tasks through one
// middleware plugin, in three ways a host can call it: over the Hooks
// stream asking for label changes (CapHookLabelChanges), over the stream
// taking whole messages (a plugin built before that capability), and with
// the unary Hook (a plugin built before the stream). Each task must see
// its own hooks in order, its own errors, and the same message and result
// in every mode; a hook that changes nothing must leave the message
// exactly as it was.
func TestHookLabelChanges(t *testing.T) {
	t.Parallel()
	modes := []string{"label changes", "whole messages", "unary"}
	var mu sync.Mutex
	final := map[string]map[string]*wire.Message{}
	results := map[string]map[string]*wire.Result{}
	for _, mode := range modes {
		ctx := testCtx(t)
		c := sdktest.Launch(t, sdk.KindMiddleware, `{"trail":true}`)
		info, err := c.Info(ctx)
		require.NoError(t, err)
		role, _ := info.Role(sdk.KindMiddleware)
		require.Contains(t, role.Capabilities, sdk.CapHookLabelChanges, "Serve declares label changes")
		switch mode {
		case "whole messages":
			sdk.ForgetLabelChanges(c)
		case "unary":
			sdk.ForgetHookStream(c)
		}
		mw := c.Middleware(role.Hooks)
		require.Equal(t, mode == "label changes", sdk.AsksLabelChanges(mw), mode)
		require.Equal(t, mode != "unary", sdk.UsesHookStream(mw), mode)
		final[mode], results[mode] = map[string]*wire.Message{}, map[string]*wire.Result{}

		const tasks = 64
		var wg sync.WaitGroup
		for i := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := []string{"t", "fail", "args", "drop"}[i%4]
				id := fmt.Sprintf("task-%d", i)
				msg := &wire.Message{TaskID: id, TaskName: name,
					Labels: map[string]any{"keep": int64(7), "drop": "x"}, Args: []json.RawMessage{json.RawMessage(`1`)}}
				wantErr := func(hook string, err error) {
					if name == "fail" {
						require.EqualError(t, err, hook+" failed for "+id, mode)
					} else {
						require.NoError(t, err, mode)
					}
				}
				wantErr("pre_send", mw.(sdk.PreSender).PreSend(ctx, msg))

				before, labels := msg.Clone(), msg.Labels
				wantErr("post_send", mw.(sdk.PostSender).PostSend(ctx, msg))
				require.Equal(t, before, msg, "%s: post_send changed nothing, so the message is as it was", mode)
				if mode == "label changes" {
					require.Equal(t, reflect.ValueOf(labels).Pointer(), reflect.ValueOf(msg.Labels).Pointer(),
						"an unchanged answer leaves the host's own labels map")
				}

				wantErr("pre_execute", mw.(sdk.PreExecuter).PreExecute(ctx, msg))
				res := &wire.Result{ReturnValue: json.RawMessage(`1`), ExecutionTime: 0.5, Labels: map[string]any{"was": "here"}}
				wantErr("post_execute", mw.(sdk.PostExecuter).PostExecute(ctx, msg, res))

				require.Equal(t, "/pre_send/pre_execute", msg.Labels["trail"], mode)
				require.Equal(t, "/pre_send/pre_execute/post_execute", res.Labels["trail"], mode)
				require.Equal(t, float64(3), res.Labels["calls"], mode)
				require.Equal(t, "here", res.Labels["was"], mode)
				require.Equal(t, `1`, string(res.ReturnValue), mode)
				require.Equal(t, 0.5, res.ExecutionTime, mode)
				require.Equal(t, int64(7), msg.Labels["keep"], mode)
				wantArgs := []json.RawMessage{json.RawMessage(`1`)}
				if name == "args" {
					wantArgs = append(wantArgs, json.RawMessage(`"added"`))
				}
				require.Equal(t, wantArgs, msg.Args, mode)
				_, kept := msg.Labels["drop"]
				require.Equal(t, name != "drop", kept, "%s: pre_execute deletes the label drop of task %s", mode, name)
				mu.Lock()
				final[mode][id], results[mode][id] = msg, res
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	for _, mode := range modes[1:] {
		// A whole message comes back with empty kwargs for none; label
		// changes leave the host's nil.
		for _, m := range final[modes[0]] {
			if m.Kwargs == nil {
				m.Kwargs = map[string]json.RawMessage{}
			}
		}
		require.Equal(t, final[modes[0]], final[mode], "messages with label changes and with %s", mode)
		require.Equal(t, results[modes[0]], results[mode], "results with label changes and with %s", mode)
	}
}
