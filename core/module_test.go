package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// The test binary is also a task module: started by a worker host (the
// handshake cookie is set) through a link whose name ends in "-tasks", it
// serves the module the link names. It is checked in init, before TestMain.
func init() {
	if os.Getenv(sdk.MagicCookieKey) == "" {
		return
	}
	switch filepath.Base(os.Args[0]) {
	case "alpha-tasks":
		core.ServeModule(alphaModule(), "0.0.1")
		os.Exit(0)
	case "beta-tasks":
		core.ServeModule(betaModule(), "0.0.1")
		os.Exit(0)
	}
}

type valueError struct{ msg string }

func (e *valueError) Error() string     { return e.msg }
func (e *valueError) ErrorType() string { return "ValueError" }

// alphaModule registers its tasks exactly as a library App would.
func alphaModule() *core.App {
	app := core.NewModule("alpha-tasks")
	app.OnEvent(core.EventWorkerStartup, func(_ context.Context, s *core.State) error {
		s.Set("greeting", "hello")
		return nil
	})
	core.MustTask[int](app, "mod:add", func(a, b int) (int, error) { return a + b, nil },
		core.WithParamNames("a", "b"), core.WithLabels(map[string]any{"team": "math"}))
	core.MustTask[string](app, "mod:greet", func(ctx context.Context, name string) (string, error) {
		g, _ := core.StateValue[string](core.ContextFrom(ctx).State(), "greeting")
		return g + " " + name, nil
	})
	core.MustTask[any](app, "mod:fail", func() error {
		return &valueError{"card declined"}
	})
	core.MustTask[map[string]any](app, "mod:whoami", func(ctx context.Context) (map[string]any, error) {
		tc := core.ContextFrom(ctx)
		return map[string]any{"broker": tc.BrokerName, "attempt": tc.Delivery.Attempt, "task_id": tc.Message.TaskID}, nil
	})
	core.MustTask[int64](app, "mod:requeue-once", func(ctx context.Context) (int64, error) {
		tc := core.ContextFrom(ctx)
		n, _ := tc.Message.LabelInt(wire.LabelRequeue)
		if n < 1 {
			return 0, tc.Requeue()
		}
		return n, nil
	})
	core.MustTask[any](app, "mod:reject", func(ctx context.Context) error {
		return core.ContextFrom(ctx).Reject()
	})
	core.MustTask[int](app, "mod:reject-then-value", func(ctx context.Context) (int, error) {
		_ = core.ContextFrom(ctx).Reject()
		return 7, nil
	})
	core.MustTask[any](app, "mod:python-typeerror", func() error {
		return &pyTypeError{"unsupported operand"}
	})
	core.MustTask[string](app, "mod:ack", func(ctx context.Context) (string, error) {
		return "acked", core.ContextFrom(ctx).Ack()
	})
	core.MustTask[map[string]any](app, "mod:body", func(ctx context.Context) (map[string]any, error) {
		tc := core.ContextFrom(ctx)
		return map[string]any{"body": string(sdk.TaskCallFrom(ctx).Body), "labels": tc.Message.Labels}, nil
	})
	core.MustTask[any](app, "mod:exit", func() error {
		os.Exit(3)
		return nil
	})
	core.MustTask[any](app, "mod:sleep", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}, core.WithTimeout(50*time.Millisecond))
	return app
}

// betaModule declares a task alphaModule declares too.
func betaModule() *core.App {
	app := core.NewModule("beta-tasks")
	core.MustTask[int](app, "mod:add", func(a, b int) (int, error) { return a - b, nil })
	core.MustTask[int](app, "beta:only", func() (int, error) { return 1, nil })
	return app
}

// moduleBinary links the test binary under a module's name.
func moduleBinary(t *testing.T, name string) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.Symlink(exe, path))
	return path
}

func loadModules(t *testing.T, b *testBundle, paths ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return core.LoadModules(ctx, b.app, paths, core.WithModuleWindow(8))
}

func kickRaw(t *testing.T, b *testBundle, name string, args ...any) *core.AsyncTask[json.RawMessage] {
	t.Helper()
	k := core.RawKick{TaskName: name}
	for _, a := range args {
		raw, err := json.Marshal(a)
		require.NoError(t, err)
		k.Args = append(k.Args, raw)
	}
	at, err := b.app.KickByName(context.Background(), k)
	require.NoError(t, err)
	return at
}

func TestModuleTasksRunInTheModuleProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{})

	t.Run("result", func(t *testing.T) {
		res := wait(t, kickRaw(t, b, "mod:add", 2, 40))
		require.False(t, res.IsErr, "%v", res.Error)
		require.JSONEq(t, "42", string(res.ReturnValue))
		require.Equal(t, "math", res.Labels["team"], "the module's default labels apply to kicks by name")
	})
	t.Run("kwargs", func(t *testing.T) {
		at, err := b.app.KickByName(context.Background(), core.RawKick{
			TaskName: "mod:add", Args: []json.RawMessage{json.RawMessage("1")},
			Kwargs: map[string]json.RawMessage{"b": json.RawMessage("2")},
		})
		require.NoError(t, err)
		require.JSONEq(t, "3", string(wait(t, at).ReturnValue))
	})
	t.Run("startup event state", func(t *testing.T) {
		require.JSONEq(t, `"hello module"`, string(wait(t, kickRaw(t, b, "mod:greet", "module")).ReturnValue))
	})
	t.Run("task context", func(t *testing.T) {
		at := kickRaw(t, b, "mod:whoami")
		var got map[string]any
		require.NoError(t, json.Unmarshal(wait(t, at).ReturnValue, &got))
		require.Equal(t, map[string]any{"broker": "default", "attempt": float64(1), "task_id": at.TaskID}, got)
	})
	t.Run("error keeps its type", func(t *testing.T) {
		res := wait(t, kickRaw(t, b, "mod:fail"))
		require.True(t, res.IsErr)
		require.Equal(t, "ValueError", res.Error.ExcType)
		require.Equal(t, "ValueError: card declined", res.Error.Error())
	})
	t.Run("task timeout is applied in the module", func(t *testing.T) {
		res := wait(t, kickRaw(t, b, "mod:sleep"))
		require.True(t, res.IsErr)
		require.Equal(t, "TaskiqResultTimeoutError", res.Error.ExcType)
	})
	t.Run("requeue", func(t *testing.T) {
		res := wait(t, kickRaw(t, b, "mod:requeue-once"))
		require.False(t, res.IsErr, "%v", res.Error)
		require.JSONEq(t, "1", string(res.ReturnValue))
	})
	t.Run("bad arguments dead-letter the message", func(t *testing.T) {
		at := kickRaw(t, b, "mod:add", "two", 2)
		require.Eventually(t, func() bool {
			for _, dl := range b.broker.DeadLetters() {
				if dl.TaskID == at.TaskID {
					require.Contains(t, dl.Reason, `task "mod:add": argument 0`)
					require.NotContains(t, dl.Reason, `task "mod:add": task "mod:add"`)
					return true
				}
			}
			return false
		}, 10*time.Second, 5*time.Millisecond)
		res := wait(t, at)
		require.Equal(t, "TypeError", res.Error.ExcType)
	})
	t.Run("reject dead-letters the message", func(t *testing.T) {
		at := kickRaw(t, b, "mod:reject")
		require.Eventually(t, func() bool {
			for _, dl := range b.broker.DeadLetters() {
				if dl.TaskID == at.TaskID {
					return dl.Reason == "rejected by the task"
				}
			}
			return false
		}, 10*time.Second, 5*time.Millisecond)
	})
}

func TestModuleManualAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{AckType: core.AckManual})
	res := wait(t, kickRaw(t, b, "mod:ack"))
	require.JSONEq(t, `"acked"`, string(res.ReturnValue))
	// Acked, so nothing comes back: a task that did not ack would be
	// returned to the queue and run again.
	require.Eventually(t, func() bool { return b.broker.InFlight() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, b.broker.Len(""))
}

func TestModuleRestartedAfterItDies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{})
	before := core.PluginPIDs(b.app)["tasks.alpha-tasks"]
	require.NotZero(t, before)

	res := wait(t, kickRaw(t, b, "mod:exit"))
	require.True(t, res.IsErr)
	require.Contains(t, res.Error.Error(), "exited while running the task")

	res = wait(t, kickRaw(t, b, "mod:add", 1, 1))
	require.False(t, res.IsErr, "%v", res.Error)
	require.JSONEq(t, "2", string(res.ReturnValue))
	require.NotEqual(t, before, core.PluginPIDs(b.app)["tasks.alpha-tasks"])
}

func TestLoadModulesDuplicateTaskNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alpha, beta := moduleBinary(t, "alpha-tasks"), moduleBinary(t, "beta-tasks")
	err := loadModules(t, b, alpha, beta)
	require.ErrorIs(t, err, core.ErrDuplicateTask)
	require.Contains(t, err.Error(), `task "mod:add" is declared by two task modules, `+alpha+" and "+beta)
	require.Empty(t, b.app.TaskNames(), "nothing is registered when loading fails")
	require.Empty(t, core.PluginPIDs(b.app))
}

func TestLoadModulesTaskAlsoInProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	core.MustTask[int](b.app, "beta:only", func() (int, error) { return 2, nil })
	beta := moduleBinary(t, "beta-tasks")
	err := loadModules(t, b, beta)
	require.ErrorIs(t, err, core.ErrDuplicateTask)
	require.Contains(t, err.Error(), `task "beta:only" of task module `+beta+" is also registered in this process")
}

func TestLoadModulesMissingOrWrongBinary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	missing := filepath.Join(t.TempDir(), "billing-tasks")
	err := loadModules(t, b, missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Contains(t, err.Error(), "task module "+missing+" does not exist; build it first (go build -o "+missing)

	// A plugin that serves another role is not a task module.
	notModule := pluginBinaryServing(t, "inmemory")
	err = loadModules(t, b, notModule)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "is not a task module") && strings.Contains(err.Error(), `"tasks"`), err.Error())
}

// pluginBinaryServing is a script that runs the test binary as one of
// testPlugins (main_test.go).
func pluginBinaryServing(t *testing.T, plugin string) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "not-a-module")
	script := "#!/bin/sh\nTASKIQ_CORE_TEST_PLUGIN=" + plugin + " exec " + exe + " \"$@\"\n"
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	return path
}

func TestKickByNameRejectsInvalidJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.app.KickByName(context.Background(), core.RawKick{TaskName: "x", Args: []json.RawMessage{json.RawMessage("{")}})
	require.ErrorIs(t, err, core.ErrBadArguments)
	_, err = b.app.KickByName(context.Background(), core.RawKick{})
	require.True(t, errors.Is(err, core.ErrBadArguments))
}

// kickBody puts body on the broker exactly as given, as a producer in
// another language might have written it, and returns a handle to its result.
func kickBody(t *testing.T, b *testBundle, taskID, body string) *core.AsyncTask[map[string]any] {
	t.Helper()
	require.NoError(t, b.broker.Kick(context.Background(), []sdk.Outgoing{{TaskID: taskID, TaskName: "mod:body", Body: []byte(body)}}))
	return core.ResultOf[map[string]any](b.app, taskID)
}

// The body crosses to the module as the broker delivered it when no
// pre_execute middleware could have changed the message: no second encoding.
func TestModuleGetsTheOriginalBody(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{})
	// Spacing and key order that the host's encoder would not reproduce.
	body := `{ "task_name": "mod:body", "task_id": "raw-1", "labels": {"b": 1, "a": "x"}, "args": [], "kwargs": {} }`
	res, err := kickBody(t, b, "raw-1", body).WaitResult(context.Background(), 10*time.Second)
	require.NoError(t, err)
	require.False(t, res.IsErr, "%+v", res.Error)
	require.Equal(t, body, res.ReturnValue["body"])
}

// setLabel is a pre_execute middleware that changes the message.
type setLabel struct{}

func (setLabel) PreExecute(_ context.Context, m *wire.Message) error {
	if m.Labels == nil {
		m.Labels = map[string]any{}
	}
	m.Labels["changed_by"] = "pre_execute"
	return nil
}

// A message a pre_execute middleware changed reaches the module changed.
func TestModuleGetsTheMessageAsPreExecuteChangedIt(t *testing.T) {
	t.Parallel()
	b := setup(t, core.WithMiddleware(setLabel{}))
	require.NoError(t, loadModules(t, b, moduleBinary(t, "alpha-tasks")))
	b.runWorker(t, core.WorkerOptions{})
	body := `{ "task_name": "mod:body", "task_id": "raw-2", "labels": {"a": "x"}, "args": [], "kwargs": {} }`
	res, err := kickBody(t, b, "raw-2", body).WaitResult(context.Background(), 10*time.Second)
	require.NoError(t, err)
	require.False(t, res.IsErr, "%+v", res.Error)
	labels, _ := res.ReturnValue["labels"].(map[string]any)
	require.Equal(t, "pre_execute", labels["changed_by"], "the module sees the middleware's change")
	require.Equal(t, "x", labels["a"])
	require.NotEqual(t, body, res.ReturnValue["body"], "a changed message is encoded again")
	require.Contains(t, res.ReturnValue["body"], `"changed_by"`)
}
