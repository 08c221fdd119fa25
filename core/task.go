package core

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Task is a registered task whose function returns an R. Kick it with Kiq or
// Kicker; read its results through the AsyncTask that kicking returns.
type Task[R any] struct {
	app *App
	def *taskDef
}

// taskDef is everything learned about a task function at registration, so
// nothing is reflected on per call beyond decoding arguments.
type taskDef struct {
	name       string
	labels     map[string]any
	fn         reflect.Value
	withCtx    bool
	params     []reflect.Type
	paramNames []string
	returns    bool // the function returns a value besides error
	timeout    time.Duration
	// exec runs a task that lives elsewhere (a task-module plugin) instead
	// of fn; it receives the message and returns the encoded result.
	exec executor
}

// executor runs a task given its message and returns the JSON-encoded return
// value. It reports arguments that do not fit with an *ArgumentError, which
// dead-letters the message.
type executor func(ctx context.Context, msg *wire.Message) (json.RawMessage, error)

// registerExecutor registers a task whose code runs outside this process,
// for example in a task-module plugin. labels are the task's default labels.
func (a *App) registerExecutor(name string, labels map[string]any, exec executor) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("task name is empty")
	}
	d := &taskDef{name: name, labels: map[string]any{}, exec: exec}
	for k, v := range labels {
		d.labels[k] = v
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.tasks[name]; dup {
		return fmt.Errorf("task %q: %w", name, ErrDuplicateTask)
	}
	a.tasks[name] = d
	return nil
}

// TaskOption configures a task at registration.
type TaskOption func(*taskDef)

// WithLabels sets labels every kick of the task carries (a kicker may
// override them).
func WithLabels(labels map[string]any) TaskOption {
	return func(d *taskDef) {
		for k, v := range labels {
			d.labels[k] = v
		}
	}
}

// WithParamNames names the function's parameters (after the context), so
// kwargs sent by a producer, for example a Python one, reach them.
func WithParamNames(names ...string) TaskOption {
	return func(d *taskDef) { d.paramNames = names }
}

// WithTimeout is a default timeout for the task, overridden by a timeout label.
func WithTimeout(t time.Duration) TaskOption {
	return func(d *taskDef) { d.timeout = t }
}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

// NewTask registers fn under name and returns the typed task. fn has the shape
//
//	func([ctx context.Context,] args...) (R, error)
//	func([ctx context.Context,] args...) error
//
// where every arg and R round-trip through JSON. The shape is checked here,
// once: a mismatch between fn's result and R, an unsupported parameter type or
// a duplicate name is an error.
func NewTask[R any](app *App, name string, fn any, opts ...TaskOption) (*Task[R], error) {
	d, err := inspectTask(name, fn, reflect.TypeFor[R]())
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(d)
	}
	if len(d.paramNames) > 0 && len(d.paramNames) != len(d.params) {
		return nil, fmt.Errorf("task %q: WithParamNames lists %d names for %d parameters", name, len(d.paramNames), len(d.params))
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if _, dup := app.tasks[name]; dup {
		return nil, fmt.Errorf("task %q: %w", name, ErrDuplicateTask)
	}
	app.tasks[name] = d
	return &Task[R]{app: app, def: d}, nil
}

// MustTask is NewTask that panics on error, for package-level registration.
func MustTask[R any](app *App, name string, fn any, opts ...TaskOption) *Task[R] {
	t, err := NewTask[R](app, name, fn, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

func inspectTask(name string, fn any, want reflect.Type) (*taskDef, error) {
	if strings.TrimSpace(name) == "" {
		return nil, fmt.Errorf("task name is empty")
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func {
		return nil, fmt.Errorf("task %q: want a function, got %T", name, fn)
	}
	t := v.Type()
	if t.IsVariadic() {
		return nil, fmt.Errorf("task %q: variadic functions are not supported", name)
	}
	d := &taskDef{name: name, fn: v, labels: map[string]any{}}
	for i := 0; i < t.NumIn(); i++ {
		p := t.In(i)
		if i == 0 && p == ctxType {
			d.withCtx = true
			continue
		}
		if err := checkJSONType(p); err != nil {
			return nil, fmt.Errorf("task %q: parameter %d: %w", name, i, err)
		}
		d.params = append(d.params, p)
	}
	switch {
	case t.NumOut() == 1 && t.Out(0) == errorType:
	case t.NumOut() == 2 && t.Out(1) == errorType:
		d.returns = true
		if want.Kind() != reflect.Interface && t.Out(0) != want {
			return nil, fmt.Errorf("task %q: the function returns %s but the task was declared with result type %s", name, t.Out(0), want)
		}
		if err := checkJSONType(t.Out(0)); err != nil {
			return nil, fmt.Errorf("task %q: result: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("task %q: the function must return (R, error) or error, not %s", name, t)
	}
	return d, nil
}

func checkJSONType(t reflect.Type) error {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return fmt.Errorf("type %s cannot be encoded as JSON", t)
	}
	return nil
}

// Name returns the task name.
func (t *Task[R]) Name() string { return t.def.name }

// Kiq kicks the task on the default broker with the task's labels. See
// Kicker.Kiq for what an error means: one wrapping ErrMaybeSent leaves the
// message possibly enqueued.
func (t *Task[R]) Kiq(ctx context.Context, args ...any) (*AsyncTask[R], error) {
	return t.Kicker().Kiq(ctx, args...)
}

// encodeArgs checks args against the task's parameters and encodes them.
func (d *taskDef) encodeArgs(args []any) ([]json.RawMessage, error) {
	if len(args) != len(d.params) {
		return nil, fmt.Errorf("%w: task %q takes %d arguments, got %d", ErrBadArguments, d.name, len(d.params), len(args))
	}
	out := make([]json.RawMessage, len(args))
	for i, a := range args {
		if !argFits(a, d.params[i]) {
			return nil, fmt.Errorf("%w: task %q: argument %d is %T, want %s", ErrBadArguments, d.name, i, a, d.params[i])
		}
		b, err := encodeValue(a)
		if err != nil {
			return nil, fmt.Errorf("%w: task %q: argument %d: %v", ErrBadArguments, d.name, i, err)
		}
		out[i] = b
	}
	return out, nil
}

// argFits accepts values assignable to the parameter, and numbers for numeric
// parameters (so 1 fits an int64), since both travel as JSON numbers.
func argFits(a any, p reflect.Type) bool {
	if a == nil {
		switch p.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
			return true
		}
		return false
	}
	at := reflect.TypeOf(a)
	if at.AssignableTo(p) {
		return true
	}
	return isNumeric(at.Kind()) && isNumeric(p.Kind())
}

func isNumeric(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Float64
}

// call decodes the message's arguments and runs the function.
func (d *taskDef) call(ctx context.Context, msg *wire.Message) (json.RawMessage, error) {
	if d.exec != nil {
		return d.exec(ctx, msg)
	}
	in := make([]reflect.Value, 0, len(d.params)+1)
	if d.withCtx {
		// A Value of the interface type itself: Call then assigns it without
		// checking that the context's concrete type implements the interface.
		in = append(in, reflect.ValueOf(&ctx).Elem())
	}
	args, err := d.decodeArgs(msg)
	if err != nil {
		return nil, err
	}
	in = append(in, args...)
	out := d.fn.Call(in)
	if errv := out[len(out)-1]; !errv.IsNil() {
		return nil, errv.Interface().(error)
	}
	if !d.returns {
		return nil, nil
	}
	b, err := encodeValue(out[0].Interface())
	if err != nil {
		return nil, fmt.Errorf("encode result of task %q: %w", d.name, err)
	}
	return b, nil
}

// ArgumentError reports arguments that cannot be decoded into the task's
// parameters; the worker dead-letters such messages.
type ArgumentError struct {
	Task string
	Msg  string
}

func (e *ArgumentError) Error() string { return fmt.Sprintf("task %q: %s", e.Task, e.Msg) }

// ErrorType names the error on the wire like Python's equivalent.
func (e *ArgumentError) ErrorType() string { return "TypeError" }

func (d *taskDef) decodeArgs(msg *wire.Message) ([]reflect.Value, error) {
	if len(msg.Args) > len(d.params) {
		return nil, &ArgumentError{d.name, fmt.Sprintf("takes %d arguments, the message has %d", len(d.params), len(msg.Args))}
	}
	vals := make([]reflect.Value, len(d.params))
	used := 0
	for i, p := range d.params {
		var raw json.RawMessage
		switch {
		case i < len(msg.Args):
			raw = msg.Args[i]
		case len(d.paramNames) > 0 && msg.Kwargs[d.paramNames[i]] != nil:
			raw = msg.Kwargs[d.paramNames[i]]
			used++
		default:
			name := fmt.Sprint(i)
			if len(d.paramNames) > 0 {
				name = d.paramNames[i]
			}
			return nil, &ArgumentError{d.name, fmt.Sprintf("missing argument %s (%s)", name, p)}
		}
		v, err := decodeArg(raw, p)
		if err != nil {
			return nil, &ArgumentError{d.name, fmt.Sprintf("argument %d: %v", i, err)}
		}
		vals[i] = v
	}
	if used < len(msg.Kwargs) {
		for k := range msg.Kwargs {
			if !contains(d.paramNames, k) {
				return nil, &ArgumentError{d.name, fmt.Sprintf("unexpected keyword argument %q", k)}
			}
		}
	}
	return vals, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (a *App) task(name string) *taskDef {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.tasks[name]
}

// TaskNames lists the registered task names.
func (a *App) TaskNames() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	names := make([]string, 0, len(a.tasks))
	for n := range a.tasks {
		names = append(names, n)
	}
	return names
}
