package core

import (
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// DeadLetterError is the error result stored for a message the worker
// moved to the dead-letter store before running it (its task name is not
// registered on the worker, say), so that a caller waiting for its result
// learns at once why it will never run.
type DeadLetterError struct {
	// Reason is the worker's reason, as the dead letter carries it.
	Reason string
}

func (e *DeadLetterError) Error() string {
	return "message moved to the dead-letter store without running: " + e.Reason
}

// ErrorType names the error on the wire.
func (e *DeadLetterError) ErrorType() string { return "DeadLetterError" }

// saveDeadLetterResult stores a DeadLetterError result for a message that
// cannot run, when a result backend is configured and the message named its
// task id (an unparseable message does not). Saving comes before the dead
// letter, as for a task that failed with bad arguments; a failure to save
// is logged and does not keep the message from the dead-letter store.
func (w *worker) saveDeadLetterResult(tc *Context, reason string) {
	if tc.Message == nil || tc.Message.TaskID == "" {
		return
	}
	if _, none := w.app.results.(dummyResults); none {
		return
	}
	labels := tc.Message.Labels
	if labels == nil {
		labels = map[string]any{}
	}
	res := &wire.Result{IsErr: true, Labels: labels, Error: wire.FromError(&DeadLetterError{Reason: reason})}
	if err := w.app.saveResult(w.taskCtx, tc.Message.TaskID, res); err != nil {
		tc.Logger().Error("saving the error result of a dead-lettered message failed; waiters of its result will time out", "error", err)
	}
}
