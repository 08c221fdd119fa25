package core

import (
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// leaveUnknown gives a message for a task name this worker does not register
// back to the queue, when the broker declares sdk.CapLeaveUnknownTasks: the
// queue is shared with consumers that may have the task. It reports whether
// it did; otherwise the message is dead-lettered as usual.
func (w *worker) leaveUnknown(tc *Context) bool {
	if !sdk.Has(w.broker.caps, sdk.CapLeaveUnknownTasks) {
		return false
	}
	msg, err := wire.DecodeMessage(tc.Delivery.Body)
	if err != nil || w.app.task(msg.TaskName) != nil {
		return false // unparseable or too large: dead letter
	}
	if _, seen := w.unknownSeen.LoadOrStore(msg.TaskName, struct{}{}); !seen {
		w.app.logger.Info("task name not registered on this worker; its messages are given back to the queue for the other consumers of the group (the broker declares leave_unknown_tasks)",
			"broker", w.broker.name, "task_name", msg.TaskName)
	}
	a := settleAction{kind: actNack, reason: "unknown task name " + msg.TaskName + ": left to the other consumers of the queue"}
	if sdk.Has(w.broker.caps, sdk.CapDelay) {
		a.delay = leaveUnknownDelay
	}
	w.apply(w.taskCtx, tc, a)
	return true
}

// leaveUnknownDelay is how long a message left to the other consumers
// stays out of the queue: long enough for this worker to be busy elsewhere
// or waiting behind them when it comes back, so that another consumer,
// not this one again, is likely to read it.
const leaveUnknownDelay = time.Second
