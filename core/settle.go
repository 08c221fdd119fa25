package core

import (
	"context"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// runOutcome is what the worker knows about a delivery at one of the points
// where it may settle it: before the task runs (runStarting, runInvalid),
// once it ran, and after its result failed to be saved (runUnsaved).
type runOutcome int

const (
	// runStarting: the message decoded and its task is about to run.
	runStarting runOutcome = iota
	// runInvalid: the message cannot run (too large, unparseable, unknown
	// task); it goes to the dead-letter store.
	runInvalid
	// runOK: the task returned a value; it is saved.
	runOK
	// runFailed: the task returned an error (a timeout and a panic are
	// errors too); the error is saved as the result.
	runFailed
	// runNoResult: the task failed and an on_error middleware asked for no
	// result (sdk.ErrNoResult).
	runNoResult
	// runDeadLetter: the task failed with bad arguments, or an on_error
	// middleware asked for a dead letter (sdk.ErrDeadLetter); the result is
	// saved first.
	runDeadLetter
	// runDeadLetterNoResult: as runDeadLetter, and a middleware asked for no
	// result as well.
	runDeadLetterNoResult
	// runRequeue: the task called Context.Requeue.
	runRequeue
	// runReject: the task called Context.Reject.
	runReject
	// runShutdown: the shutdown timeout cut the task off (or it never got to
	// start); its outcome does not count.
	runShutdown
	// runUnsaved: the task ran but its result could not be saved.
	runUnsaved
)

var runOutcomeNames = [...]string{
	runStarting: "starting", runInvalid: "invalid", runOK: "ok", runFailed: "failed",
	runNoResult: "no_result", runDeadLetter: "dead_letter", runDeadLetterNoResult: "dead_letter_no_result",
	runRequeue: "requeue", runReject: "reject", runShutdown: "shutdown", runUnsaved: "unsaved",
}

func (o runOutcome) String() string { return runOutcomeNames[o] }

// actionKind is what the worker sends the broker about a delivery.
type actionKind int

const (
	actNone actionKind = iota
	actAck
	actNack
	actDeadLetter
	// actRequeue kicks a copy of the message with its requeue label
	// incremented, then acks the delivery (nacks it if the kick fails).
	actRequeue
	// actLeftToNewOwner sends nothing: the lease was lost and the message
	// may be another worker's now (see leftToNewOwner).
	actLeftToNewOwner
)

// settleAction is one settlement decision. warn, when set, is logged as
// the action is carried out.
type settleAction struct {
	kind   actionKind
	delay  time.Duration
	reason string // the nack or dead-letter reason; for actLeftToNewOwner, what is not sent
	warn   string
}

// settlePlan is the worker's settlement of a delivery at one point: early
// goes out before the result is saved, the result is saved when save is
// set, final goes out after that.
type settlePlan struct {
	early settleAction
	save  bool
	final settleAction
}

// Warnings the plan attaches to actions, logged as they were before the
// plan existed.
const (
	warnDeadLetterAcked = "task asked for dead letter after its message was acked; nothing to move"
	warnControlAcked    = "task requeued or rejected a message it had already acked; ignored"
	warnManualNotAcked  = "task returned without Ack under ack_type manual; its message goes back to the queue"
)

// planSettle is the one decision of how a delivery is settled: from what
// happened (o, with the dead-letter reason for runInvalid and
// runDeadLetter*), the ack type, whether the message is already acked (by
// ack_type when_received, or by the task) and whether its lease was lost.
//
// Rules: an acked message is never settled again. A lost lease turns a
// nack, dead letter or requeue into nothing (another worker may hold the
// message; see leftToNewOwner) but keeps an ack. when_executed acks before
// the result is saved, unless the message goes to the dead-letter store;
// when_saved and when_received ack after; manual nacks a message the task
// did not ack. Dead letter, requeue and reject apply whatever the ack type.
func planSettle(o runOutcome, reason string, ack AckType, acked, leaseLost bool) settlePlan {
	var p settlePlan
	switch o {
	case runStarting:
		if ack == AckWhenReceived && !acked {
			p.final = settleAction{kind: actAck}
		}
	case runInvalid, runDeadLetter, runDeadLetterNoResult:
		p.save = o == runDeadLetter
		p.final = settleAction{kind: actDeadLetter, reason: reason}
		if acked {
			p.final = settleAction{warn: warnDeadLetterAcked}
		}
	case runOK, runFailed, runNoResult:
		p.save = o != runNoResult
		if ack == AckWhenExecuted && !acked {
			p.early, acked = settleAction{kind: actAck}, true
		}
		switch {
		case acked:
		case ack == AckManual:
			p.final = settleAction{kind: actNack, reason: "not acked by the task", warn: warnManualNotAcked}
		default:
			p.final = settleAction{kind: actAck}
		}
	case runRequeue, runReject:
		p.final = settleAction{kind: actRequeue}
		if o == runReject {
			p.final = settleAction{kind: actDeadLetter, reason: "rejected by the task"}
		}
		if acked {
			p.final = settleAction{warn: warnControlAcked}
		}
	case runUnsaved:
		if !acked {
			p.final = settleAction{kind: actNack, delay: time.Second, reason: "result not saved"}
		}
	case runShutdown:
		// Left unsettled: the broker redelivers the message.
	}
	if leaseLost {
		p.final = p.final.leftToNewOwner()
	}
	return p
}

// leftToNewOwner is a for a run whose lease was lost: its ack still goes
// out (acking a message another worker holds cannot duplicate it), what
// would return the message to the queue does not.
func (a settleAction) leftToNewOwner() settleAction {
	what := map[actionKind]string{actNack: "nack", actDeadLetter: "dead letter", actRequeue: "requeue"}[a.kind]
	if what == "" {
		return a
	}
	return settleAction{kind: actLeftToNewOwner, reason: what, warn: a.warn}
}

// plan decides tc's settlement with what tc knows now.
func (w *worker) plan(tc *Context, o runOutcome, reason string, ack AckType) settlePlan {
	tc.mu.Lock()
	acked, lost := tc.settled, tc.leaseLost
	tc.mu.Unlock()
	return planSettle(o, reason, ack, acked, lost)
}

// apply carries out one action of a plan. Actions other than ack claim the
// delivery first, so that nothing else settles it meanwhile.
func (w *worker) apply(ctx context.Context, tc *Context, a settleAction) {
	if a.warn != "" {
		tc.Logger().Warn(a.warn)
	}
	d := tc.Delivery
	switch a.kind {
	case actNone:
	case actAck:
		_ = tc.Ack()
	case actLeftToNewOwner:
		tc.claimSettlement()
		w.logLeftToNewOwner(tc, a.reason)
	case actNack:
		if tc.claimSettlement() {
			_ = tc.settle(sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleNack, Delay: a.delay, Reason: a.reason})
		}
	case actDeadLetter:
		if tc.claimSettlement() {
			w.deadLetter(tc, a.reason)
		}
	case actRequeue:
		if tc.claimSettlement() {
			w.requeue(ctx, tc)
		}
	default:
		panic(fmt.Sprintf("taskiq: unknown settle action %d", a.kind))
	}
}

// requeue kicks a copy of tc's message with its requeue count incremented
// and acks the delivery; if the kick fails, the delivery is nacked instead.
func (w *worker) requeue(ctx context.Context, tc *Context) {
	d := tc.Delivery
	m := tc.Message.Clone()
	n, _ := m.LabelInt(wire.LabelRequeue)
	m.SetLabel(wire.LabelRequeue, n+1)
	if err := w.app.kick(ctx, w.broker.name, m); err != nil {
		tc.Logger().Error("requeue failed; the message is returned to the queue instead", "error", err)
		_ = tc.settle(sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleNack, Reason: "requeue failed"})
		return
	}
	_ = tc.settle(sdk.Settlement{DeliveryID: d.ID, Kind: sdk.SettleAck})
}
