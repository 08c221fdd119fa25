package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// RawKick is a kick of a task by name with arguments already encoded as
// JSON: what `taskiq kick` sends, and what a producer sends for tasks that
// live in a task module or another language.
type RawKick struct {
	// TaskName is the task to run. It need not be registered in this
	// process; when it is, its default labels apply.
	TaskName string
	// Args are the positional arguments, each one JSON value.
	Args []json.RawMessage
	// Kwargs are the keyword arguments, each one JSON value.
	Kwargs map[string]json.RawMessage
	// Labels override the task's default labels.
	Labels map[string]any
	// Broker names the broker to send through; "" is the default broker.
	Broker string
	// TaskID is the task id; "" means a new random one.
	TaskID string
}

// KickByName sends k through the client middlewares and the broker, like
// Kiq, and returns a handle to the result; an error wrapping ErrMaybeSent
// may have enqueued the message anyway (see Kicker.Kiq). Arguments are not
// checked here: the worker that runs the task dead-letters a message whose
// arguments do not fit.
func (a *App) KickByName(ctx context.Context, k RawKick) (*AsyncTask[json.RawMessage], error) {
	if strings.TrimSpace(k.TaskName) == "" {
		return nil, fmt.Errorf("%w: the task name is empty", ErrBadArguments)
	}
	for i, raw := range k.Args {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("%w: task %q: argument %d is not valid JSON", ErrBadArguments, k.TaskName, i)
		}
	}
	for name, raw := range k.Kwargs {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("%w: task %q: keyword argument %q is not valid JSON", ErrBadArguments, k.TaskName, name)
		}
	}
	msg := &wire.Message{
		TaskID:   k.TaskID,
		TaskName: k.TaskName,
		Labels:   map[string]any{},
		Args:     k.Args,
		Kwargs:   k.Kwargs,
	}
	if msg.TaskID == "" {
		msg.TaskID = NewTaskID()
	}
	if msg.Args == nil {
		msg.Args = []json.RawMessage{}
	}
	if d := a.task(k.TaskName); d != nil {
		for key, v := range d.labels {
			msg.Labels[key] = v
		}
	}
	for key, v := range k.Labels {
		msg.Labels[key] = v
	}
	if err := a.send(ctx, k.Broker, msg); err != nil {
		return nil, err
	}
	return &AsyncTask[json.RawMessage]{TaskID: msg.TaskID, app: a}, nil
}
