package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Inspection and control: what a broker holds (queues, messages by state,
// one task, workers), bulk actions on it, pause/resume, and cancellation.
// They are optional broker roles (capabilities "inspect" and "cancel"); the
// CLI and the dashboard are their clients.
type (
	// Inspector is a broker's inspection role (App.Inspector).
	Inspector = sdk.Inspector
	// QueueStats are a queue's counts.
	QueueStats = sdk.QueueStats
	// MessageState is where a message is: queued, delayed, running or dead.
	MessageState = sdk.MessageState
	// MessageFilter selects messages by task name, task id, labels and text.
	MessageFilter = sdk.MessageFilter
	// MessageQuery asks for a page of messages.
	MessageQuery = sdk.MessageQuery
	// MessagePage is a page of messages with the cursor of the next.
	MessagePage = sdk.MessagePage
	// MessageInfo is one message as the broker holds it.
	MessageInfo = sdk.MessageInfo
	// TaskRef names a task for Inspector.Task.
	TaskRef = sdk.TaskRef
	// Action is a bulk action (requeue, delete, move) by refs or filter.
	Action = sdk.Action
	// ActionKind is the kind of an Action.
	ActionKind = sdk.ActionKind
	// ActionResult says how many messages an Action matched and changed.
	ActionResult = sdk.ActionResult
	// WorkerInfo is a worker process as its heartbeats describe it.
	WorkerInfo = sdk.WorkerInfo
)

// Message states and actions.
const (
	StateQueued   = sdk.StateQueued
	StateDelayed  = sdk.StateDelayed
	StateRunning  = sdk.StateRunning
	StateDead     = sdk.StateDead
	ActionRequeue = sdk.ActionRequeue
	ActionDelete  = sdk.ActionDelete
	ActionMove    = sdk.ActionMove
)

var (
	// ErrNotInspectable is returned by App.Inspector for a broker without
	// the "inspect" capability.
	ErrNotInspectable = errors.New("the broker cannot be inspected (its plugin lacks the \"inspect\" capability)")
	// ErrCancelUnsupported is returned by Cancel when no broker of the App
	// can cancel tasks (capability "cancel").
	ErrCancelUnsupported = errors.New("no broker can cancel tasks (capability \"cancel\")")
	// ErrTaskFinished is returned by Cancel for a task whose result is
	// stored: it already ran, nothing was cancelled.
	ErrTaskFinished = errors.New("task already finished; nothing to cancel")
	// ErrTaskNotFound is returned by Inspector.Task (and App.TaskDetail)
	// when the broker holds no message of the task.
	ErrTaskNotFound = sdk.ErrTaskNotFound
)

// CancelledError is the error of a task that was cancelled (Cancel,
// AsyncTask.Cancel, taskiq cancel): stored as its result, with the error
// type "TaskCancelledError". A task cancelled before it started never ran;
// a running one had its context cancelled. errors.Is(err, ErrCancelled)
// matches it, also when read back from the result backend.
type CancelledError struct {
	TaskID string
	// Running is true when the task was running when the cancel arrived.
	Running bool
}

func (e *CancelledError) Error() string {
	if e.Running {
		return fmt.Sprintf("task %s was cancelled while running", e.TaskID)
	}
	return fmt.Sprintf("task %s was cancelled before it started", e.TaskID)
}

// ErrorType names the error on the wire.
func (e *CancelledError) ErrorType() string { return cancelledErrorType }

// Is makes errors.Is(err, ErrCancelled) true.
func (e *CancelledError) Is(target error) bool { return target == ErrCancelled }

// ErrCancelled matches a CancelledError, and a stored task error of type
// TaskCancelledError (see IsCancelled).
var ErrCancelled = errors.New("task cancelled")

const cancelledErrorType = wire.ErrorTypeCancelled

// IsCancelled reports whether a stored task error says the task was
// cancelled: the error of Result.Value for a cancelled task.
func IsCancelled(err error) bool {
	if errors.Is(err, ErrCancelled) {
		return true
	}
	var te *TaskError
	return errors.As(err, &te) && te.ExcType == cancelledErrorType
}

// addControl records a configured broker's inspection and cancellation
// roles when its plugin declares them.
func (a *App) addControl(name string, c interface {
	Inspector
	sdk.Canceller
}, caps []string) {
	e := a.brokers[name]
	if sdk.Has(caps, sdk.CapInspect) {
		e.insp = c
	}
	if sdk.Has(caps, sdk.CapCancel) {
		e.canc = c
	}
}

// Inspector returns the inspection role of the named broker ("" for the
// default one), or ErrNotInspectable.
func (a *App) Inspector(broker string) (Inspector, error) {
	e, err := a.broker(broker)
	if err != nil {
		return nil, err
	}
	if e.insp == nil {
		return nil, fmt.Errorf("broker %q: %w", e.name, ErrNotInspectable)
	}
	return e.insp, nil
}

// Cancel cancels a task: a queued or delayed task never starts (a durable
// tombstone, checked when a worker takes its message, so it survives worker
// restarts), and a running one has its context cancelled on the worker that
// runs it. Its result is then a CancelledError. Cancel returns
// ErrTaskFinished when the task's result is already stored. The tombstone
// goes to every broker that can cancel, since a task id does not say which
// broker carried it.
func (a *App) Cancel(ctx context.Context, taskID string) error {
	if taskID == "" {
		return errors.New("taskiq: cancel: empty task id")
	}
	if _, ok := a.results.(dummyResults); !ok {
		ready, err := a.results.IsReady(ctx, taskID)
		if err != nil {
			return fmt.Errorf("cancel task %s: reading its result: %w", taskID, err)
		}
		if ready {
			return fmt.Errorf("cancel task %s: %w", taskID, ErrTaskFinished)
		}
	}
	sent := 0
	for _, name := range a.BrokerNames() {
		e := a.brokers[name]
		if e.canc == nil {
			continue
		}
		if err := e.canc.Cancel(ctx, taskID); err != nil {
			return fmt.Errorf("cancel task %s on broker %q: %w", taskID, name, err)
		}
		sent++
	}
	if sent == 0 {
		return fmt.Errorf("cancel task %s: %w", taskID, ErrCancelUnsupported)
	}
	return nil
}

// Cancel cancels the task (App.Cancel).
func (t *AsyncTask[R]) Cancel(ctx context.Context) error { return t.app.Cancel(ctx, t.TaskID) }

// TaskDetail is everything known about one task: its message where the
// broker holds it, its stored result or error, and its last progress.
type TaskDetail struct {
	TaskID string
	// Message is nil when the broker holds no message of the task (it
	// finished, was deleted, or was never kicked to this broker).
	Message *MessageInfo
	// Decoded is Message's body decoded, when it parses.
	Decoded *Message
	// Result is the stored result, nil when none is stored.
	Result   *TaskResult
	Progress *Progress
}

// TaskDetail looks a task up in the named broker's inspector and in the
// result backend. It returns ErrTaskNotFound only when neither knows it.
func (a *App) TaskDetail(ctx context.Context, broker string, ref TaskRef) (*TaskDetail, error) {
	d := &TaskDetail{TaskID: ref.TaskID}
	_, noResults := a.results.(dummyResults)
	if !noResults && d.TaskID != "" {
		if err := a.readResult(ctx, d); err != nil {
			return nil, err
		}
	}
	if in, err := a.Inspector(broker); err == nil {
		if err := d.findMessage(ctx, in, ref); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, ErrNotInspectable) {
		return nil, err
	}
	if !noResults && d.Result == nil && d.Message != nil && d.TaskID == "" {
		d.TaskID = d.Message.TaskID
		if err := a.readResult(ctx, d); err != nil {
			return nil, err
		}
	}
	if d.Message == nil && d.Result == nil {
		return nil, fmt.Errorf("task %s: %w", ref.TaskID, ErrTaskNotFound)
	}
	return d, nil
}

// findMessage looks the task up in the broker. A task whose result is
// stored has finished: without a ref, only the states a finished task can
// still be in are searched (a dead letter, or a retry running or delayed),
// not the whole queue.
func (d *TaskDetail) findMessage(ctx context.Context, in Inspector, ref TaskRef) error {
	refs := []TaskRef{ref}
	if d.Result != nil && ref.Ref == "" && ref.State == "" {
		refs = nil
		for _, s := range []MessageState{StateRunning, StateDelayed, StateDead} {
			r := ref
			r.State = s
			refs = append(refs, r)
		}
	}
	for _, r := range refs {
		m, err := in.Task(ctx, r)
		switch {
		case err == nil:
			d.Message = &m
			if msg, err := wire.DecodeMessage(m.Body); err == nil {
				d.Decoded = msg
			}
			return nil
		case !errors.Is(err, sdk.ErrNotFound):
			return err
		}
	}
	return nil
}

// readResult reads the task's stored result and progress into d.
func (a *App) readResult(ctx context.Context, d *TaskDetail) error {
	if b, err := a.results.GetResult(ctx, d.TaskID); err == nil {
		if r, err := wire.DecodeResult(b); err == nil {
			d.Result = r
		}
	} else if !errors.Is(err, sdk.ErrNotFound) {
		return err
	}
	if b, err := a.results.GetProgress(ctx, d.TaskID); err == nil {
		var p wire.Progress
		if json.Unmarshal(b, &p) == nil {
			d.Progress = &p
		}
	}
	return nil
}
