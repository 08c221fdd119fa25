package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// KindTasks is the role of a task-module plugin: a binary that holds task
// functions and runs them for a generic worker host (`taskiq worker`).
const KindTasks Kind = "tasks"

// DefaultTaskWindow is how many executions the host keeps outstanding on one
// task module unless told otherwise (the worker's max_async_tasks default).
const DefaultTaskWindow = 100

// TaskInfo describes one task a module serves.
type TaskInfo struct {
	// Name is the task name messages carry; it is unique across the modules
	// one worker loads.
	Name string
	// Labels are the task's default labels (a kicker may override them).
	Labels map[string]any
	// Params are the task's parameters after its context, in order.
	Params []ParamInfo
	// Result is the JSON type of the return value; empty when the task
	// returns only an error.
	Result string
}

// ParamInfo describes one task parameter.
type ParamInfo struct {
	// Name is the keyword the parameter is reachable by; empty when it is
	// positional only.
	Name string
	// Type is the parameter's JSON type: string, integer, number, boolean,
	// array, object or any.
	Type string
}

// TaskModule is the Go-native contract of a task-module plugin. Most
// modules do not implement it by hand: core.NewModule and core.ServeModule
// serve the tasks registered on an App.
type TaskModule interface {
	// Tasks lists the tasks the module serves. It is read once, when the
	// module is configured.
	Tasks() []TaskInfo
	// Execute runs the task msg names and returns its JSON-encoded return
	// value (nil when it has none). Arguments that do not fit the task are an
	// error matching ErrBadArguments (errors.Is; the host dead-letters the
	// message); ErrRequeue and ErrReject (wrapped or not) ask the host to
	// requeue or reject the message. ctx carries the host's deadline and is
	// cancelled when the host gives up on the call; TaskCallFrom(ctx) tells
	// where the message came from.
	Execute(ctx context.Context, msg *wire.Message) (json.RawMessage, error)
}

// Settling requests a task module returns from Execute. They cross the
// process boundary as controls, not as errors, so the host settles the
// message as asked instead of storing a failure.
var (
	// ErrRequeue asks the host to send the message again (with the
	// X-Taskiq-requeue label incremented) and store no result.
	ErrRequeue = errors.New("task asked to requeue its message")
	// ErrReject asks the host to dead-letter the message and store no result.
	ErrReject = errors.New("task asked to reject its message")
	// ErrBadArguments marks an Execute error for arguments that do not fit
	// the task: the host dead-letters the message, since running it again
	// cannot succeed. It crosses the boundary with the error (error_kind).
	ErrBadArguments = errors.New("task arguments do not fit the task")
)

// CapExecuteBatch is the task-module capability to take several execution
// requests in one message of the Execute stream. Serve announces it; a host
// seeing a module without it (built with an older SDK) sends one request
// per stream message.
const CapExecuteBatch = "execute_batch"

// ErrNotDelivered marks a failed Execute whose request never reached the
// module (its stream could not be opened, for one): running it again on a
// restarted module cannot run the task twice. Such errors also wrap
// ErrUnavailable.
var ErrNotDelivered = errors.New("the execution request was not delivered to the task module")

// TaskCall is what a module knows about one execution beyond its message:
// where the delivery came from, and whether the task acknowledged it.
type TaskCall struct {
	// Broker is the name of the broker the message came from.
	Broker string
	// DeliveryID is the broker's id of this delivery.
	DeliveryID string
	// Attempt counts deliveries of the message, from 1.
	Attempt int
	// Body, on the host side, is the message's original encoding as the
	// broker delivered it. When set, Execute sends it instead of encoding the
	// message again: set it only when the message is unchanged since it was
	// decoded from Body (no pre_execute middleware changed it). On the
	// module side, Body is the message as it crossed the boundary: the
	// broker's bytes, or the host's encoding of a changed message.
	Body []byte

	acked atomic.Bool
}

// Ack records that the task acknowledged its message (ack_type manual). The
// host acknowledges it when the execution returns, before the result is
// saved: an acknowledgement cannot cross the boundary earlier in v1.
func (c *TaskCall) Ack() { c.acked.Store(true) }

// Acked reports whether Ack was called.
func (c *TaskCall) Acked() bool { return c.acked.Load() }

type taskCallKey struct{}

// WithTaskCall returns ctx carrying c. The host side puts the call into the
// context it passes to a remote module's Execute; the plugin side puts it
// into the context of the module's Execute.
func WithTaskCall(ctx context.Context, c *TaskCall) context.Context {
	return context.WithValue(ctx, taskCallKey{}, c)
}

// TaskCallFrom returns the TaskCall in ctx, or nil.
func TaskCallFrom(ctx context.Context) *TaskCall {
	c, _ := ctx.Value(taskCallKey{}).(*TaskCall)
	return c
}

// ServeTasks serves m as a task-module plugin named name: call it from main.
// It is Serve with a Tasks factory that returns m.
func ServeTasks(name, version string, m TaskModule) {
	Serve(Plugin{Name: name, Version: version, Tasks: &Factory[TaskModule]{
		New: func(context.Context, Config) (TaskModule, error) { return m, nil },
	}})
}
