// Command example-tasks is a task module: a plugin binary holding task
// functions that `taskiq worker` loads and runs. Its tasks are registered
// exactly as in a library App (core.MustTask); core.ServeModule serves them.
//
//	go build -o bin/example-tasks ./examples/tasks-module
//	taskiq worker --config examples/tasks-module/taskiq.hcl ./bin/example-tasks
//	taskiq kick --config examples/tasks-module/taskiq.hcl example:add 1 2 --wait
//
// See docs/worker.md.
package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

// version is reported by `taskiq plugins info bin/example-tasks`.
const version = "0.1.0"

var app = core.NewModule("example-tasks")

// Tasks are package-level values, as in a library App; their names are
// what `taskiq kick` and producers in other languages send.
var (
	_ = core.MustTask[int](app, "example:add", add, core.WithParamNames("a", "b"))
	_ = core.MustTask[string](app, "example:upper", upper, core.WithParamNames("text"))
	_ = core.MustTask[int](app, "example:sleep", sleep, core.WithParamNames("ms"))
	_ = core.MustTask[string](app, "example:whoami", whoami)
)

func add(a, b int) (int, error) { return a + b, nil }

func upper(text string) (string, error) {
	if text == "" {
		return "", fmt.Errorf("nothing to upper-case: pass a non-empty text")
	}
	return strings.ToUpper(text), nil
}

// sleep holds a worker slot for ms milliseconds, then returns ms: it shows
// draining at shutdown and redelivery after a crash.
func sleep(ctx context.Context, ms int) (int, error) {
	tc := core.ContextFrom(ctx)
	tc.App().Logger().Info("sleeping", "task_id", tc.Message.TaskID, "ms", ms)
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// whoami reports what the task knows about its delivery.
func whoami(ctx context.Context) (string, error) {
	tc := core.ContextFrom(ctx)
	return fmt.Sprintf("task %s from broker %q, attempt %d", tc.Message.TaskID, tc.BrokerName, tc.Delivery.Attempt), nil
}

func main() { core.ServeModule(app, version) }
