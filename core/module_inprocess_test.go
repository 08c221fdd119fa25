package core_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

type point struct{ X, Y int }

// TestModuleTasksServeTheAppInProcess drives the task module a module
// binary serves (core.ModulePlugin) without a process in between: what it
// declares, how it runs tasks and how it reports control and failures.
func TestModuleTasksServeTheAppInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app := alphaModule()
	core.MustTask[any](app, "mod:types", func(string, bool, float64, []int, []byte, map[string]int, point, *int, any) error { return nil })
	p := core.ModulePlugin(app, "1.2.3")
	require.Equal(t, "alpha-tasks", p.Name)
	require.Equal(t, "1.2.3", p.Version)
	tm, err := p.Tasks.New(ctx, sdk.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tm.(interface{ Close(context.Context) error }).Close(ctx)) })

	infos := map[string]sdk.TaskInfo{}
	for _, ti := range tm.Tasks() {
		infos[ti.Name] = ti
	}
	require.Equal(t, sdk.TaskInfo{Name: "mod:add", Labels: map[string]any{"team": "math"},
		Params: []sdk.ParamInfo{{Name: "a", Type: "integer"}, {Name: "b", Type: "integer"}}, Result: "integer"}, infos["mod:add"])
	var types []string
	for _, pi := range infos["mod:types"].Params {
		types = append(types, pi.Type)
	}
	require.Equal(t, []string{"string", "boolean", "number", "array", "string", "object", "object", "integer", "any"}, types)
	require.Empty(t, infos["mod:types"].Result)

	exec := func(name string, args ...string) (json.RawMessage, error) {
		m := &wire.Message{TaskID: "t-" + name, TaskName: name, Labels: map[string]any{}}
		for _, a := range args {
			m.Args = append(m.Args, json.RawMessage(a))
		}
		return tm.Execute(ctx, m)
	}
	ret, err := exec("mod:add", "2", "40")
	require.NoError(t, err)
	require.JSONEq(t, "42", string(ret))
	ret, err = exec("mod:greet", `"module"`)
	require.NoError(t, err)
	require.JSONEq(t, `"hello module"`, string(ret), "configuring the module fired the worker startup event")

	_, err = exec("mod:requeue-once")
	require.ErrorIs(t, err, sdk.ErrRequeue)
	_, err = exec("mod:reject-then-value")
	require.ErrorIs(t, err, sdk.ErrReject, "Reject holds whatever the task returns")
	_, err = exec("mod:add", `"two"`, "2")
	require.ErrorIs(t, err, sdk.ErrBadArguments)
	var argErr *core.ArgumentError
	require.ErrorAs(t, err, &argErr)
	_, err = exec("mod:python-typeerror")
	require.NotErrorIs(t, err, sdk.ErrBadArguments, "a task's own TypeError is its failure")
	_, err = exec("mod:none")
	require.ErrorContains(t, err, `task module has no task "mod:none"`)

	call := &sdk.TaskCall{Broker: "default", DeliveryID: "9-0", Attempt: 2}
	ret, err = tm.Execute(sdk.WithTaskCall(ctx, call), &wire.Message{TaskID: "t-ack", TaskName: "mod:ack", Labels: map[string]any{}})
	require.NoError(t, err)
	require.JSONEq(t, `"acked"`, string(ret))
	require.True(t, call.Acked(), "Ack inside a module task is reported to the worker")
	ret, err = tm.Execute(sdk.WithTaskCall(ctx, call), &wire.Message{TaskID: "t-who", TaskName: "mod:whoami", Labels: map[string]any{}})
	require.NoError(t, err)
	require.JSONEq(t, `{"broker":"default","attempt":2,"task_id":"t-who"}`, string(ret))
}
