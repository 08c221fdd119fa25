package core

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// NewModule builds the App of a task-module binary: a registry of tasks, and
// no broker, since the worker that loads the module (`taskiq worker
// ./bin/<name>`) fetches the messages. Register tasks on it with NewTask or
// MustTask exactly as in a library App, then call ServeModule from main.
//
// Inside a module task, ContextFrom(ctx) gives the message, its labels, the
// broker name and the delivery attempt. Requeue and Reject work;
// Ack (ack_type manual) takes effect when the task returns. In v1 the
// task's Context cannot reach the worker's result backend (SetProgress) or
// brokers (kicking from inside a task) unless the module adds its own with
// options.
//
// The logger writes JSON to the process's stderr, which the worker shows
// under the module's name. Options that fail panic: NewModule is meant for
// package-level variables.
func NewModule(name string, opts ...Option) *App {
	a := newApp()
	a.moduleName = name
	a.logger = hclog.New(&hclog.LoggerOptions{
		Name: name, Output: os.Stderr, JSONFormat: true, Level: moduleLogLevel(),
	})
	if err := a.apply(opts); err != nil {
		panic(fmt.Sprintf("taskiq: task module %s: %v", name, err))
	}
	a.finish()
	return a
}

// moduleLogLevel is the level the worker host asks its plugins to log at.
func moduleLogLevel() hclog.Level {
	if l := hclog.LevelFromString(os.Getenv(sdk.EnvLogLevel)); l != hclog.NoLevel {
		return l
	}
	return hclog.Info
}

// ServeModule serves app's tasks as a task-module plugin: call it from the
// module binary's main. version is reported by `taskiq plugins info`.
func ServeModule(app *App, version string) {
	sdk.Serve(modulePlugin(app, version))
}

// modulePlugin is the plugin ServeModule serves.
//
// Configuring the module fires app's worker startup event and closing it
// the worker shutdown event, so event handlers prepare the state tasks use
// as they do in a worker.
func modulePlugin(app *App, version string) sdk.Plugin {
	n := app.moduleName
	if n == "" {
		n = "taskiq-tasks"
	}
	return sdk.Plugin{
		Name:    n,
		Version: version,
		Tasks: &sdk.Factory[sdk.TaskModule]{
			New: func(ctx context.Context, _ sdk.Config) (sdk.TaskModule, error) {
				if err := app.fire(ctx, EventWorkerStartup); err != nil {
					return nil, fmt.Errorf("worker startup event: %w", err)
				}
				return &moduleTasks{app: app, w: &worker{app: app}}, nil
			},
		},
	}
}

// moduleTasks serves an App's tasks to a worker host (sdk.TaskModule).
type moduleTasks struct {
	app *App
	// w runs every execution: the worker's code path without its broker
	// (one for all calls; what it keeps per call is safe for concurrent use).
	w *worker
}

// Tasks describes the registered tasks from what registration learned.
func (m *moduleTasks) Tasks() []sdk.TaskInfo {
	m.app.mu.RLock()
	defs := make([]*taskDef, 0, len(m.app.tasks))
	for _, d := range m.app.tasks {
		defs = append(defs, d)
	}
	m.app.mu.RUnlock()
	sort.Slice(defs, func(i, j int) bool { return defs[i].name < defs[j].name })
	out := make([]sdk.TaskInfo, 0, len(defs))
	for _, d := range defs {
		ti := sdk.TaskInfo{Name: d.name, Labels: d.labels}
		for i, p := range d.params {
			pi := sdk.ParamInfo{Type: jsonType(p)}
			if i < len(d.paramNames) {
				pi.Name = d.paramNames[i]
			}
			ti.Params = append(ti.Params, pi)
		}
		if d.returns {
			ti.Result = jsonType(d.fn.Type().Out(0))
		}
		out = append(out, ti)
	}
	return out
}

// jsonType names the JSON type a Go type travels as.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string" // []byte is base64 text
		}
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "any"
}

// Execute runs one task as a worker would, on the same code path: the
// worker's timeout and panic handling around the registered function.
func (m *moduleTasks) Execute(ctx context.Context, msg *wire.Message) (json.RawMessage, error) {
	def := m.app.task(msg.TaskName)
	if def == nil {
		return nil, fmt.Errorf("task module has no task %q; it serves %v", msg.TaskName, m.app.TaskNames())
	}
	call := sdk.TaskCallFrom(ctx)
	if call == nil {
		call = &sdk.TaskCall{}
	}
	tc := &Context{
		Message:    msg,
		BrokerName: call.Broker,
		Delivery:   sdk.Delivery{ID: call.DeliveryID, Attempt: call.Attempt},
		app:        m.app,
	}
	tc.settle = func(st sdk.Settlement) error {
		if st.Kind == sdk.SettleAck {
			call.Ack()
		}
		return nil
	}
	timeout := def.timeout
	if t, ok := msg.LabelFloat(wire.LabelTimeout); ok && t > 0 {
		timeout = time.Duration(t * float64(time.Second))
	}
	ret, err := m.w.run(withTaskContext(ctx, tc), def, tc, timeout)
	tc.mu.Lock()
	out := tc.outcome
	tc.mu.Unlock()
	switch out {
	case outcomeRequeue:
		return nil, sdk.ErrRequeue
	case outcomeReject:
		return nil, sdk.ErrReject
	}
	return ret, err
}

// Close fires the worker shutdown event.
func (m *moduleTasks) Close(ctx context.Context) error {
	return m.app.fire(ctx, EventWorkerShutdown)
}

// Interface guards
var _ sdk.TaskModule = (*moduleTasks)(nil)
