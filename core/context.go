package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/core/internal/telemetry"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Context is what a running task knows about itself: its message, its broker,
// the shared state, and the ways to settle its message early.
type Context struct {
	// Message is the task's message after pre_execute middlewares.
	Message *Message
	// BrokerName is the broker the message came from.
	BrokerName string
	// Delivery is the broker's delivery (id, attempt, lease deadline).
	Delivery Delivery

	app     *App
	deps    depScope
	settle  func(sdk.Settlement) error
	mu      sync.Mutex
	settled bool
	outcome outcome
	// The lease the broker gave the delivery and its current deadline; the
	// worker extends it while the task runs.
	leaseLen      time.Duration
	leaseDeadline time.Time
	// leaseLost is set when an expired lease could not be extended: the
	// broker may have handed the message to another worker.
	leaseLost bool

	// run is the run's telemetry (nil when off); logger, built by Logger
	// under logMu, carries the task's fields.
	run    *telemetry.Run
	logMu  sync.Mutex
	logger hclog.Logger
}

type outcome int

const (
	outcomeNone outcome = iota
	outcomeRequeue
	outcomeReject
)

type ctxKey struct{}

// ContextFrom returns the task Context in ctx, or nil outside a task.
func ContextFrom(ctx context.Context) *Context {
	tc, _ := ctx.Value(ctxKey{}).(*Context)
	return tc
}

func withTaskContext(ctx context.Context, tc *Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, tc)
}

// App returns the App running the task, to kick other tasks from inside one.
func (c *Context) App() *App { return c.app }

// State returns the App's shared state (the worker state).
func (c *Context) State() *State { return c.app.state }

// Labels returns the message labels.
func (c *Context) Labels() map[string]any { return c.Message.Labels }

// Broker returns the broker the message came from.
func (c *Context) Broker() Broker {
	e, _ := c.app.broker(c.BrokerName)
	if e == nil {
		return nil
	}
	return e.broker
}

// errSettledByTask is returned by Requeue and Reject; the worker recognises it.
var errSettledByTask = errors.New("message settled by the task")

// Requeue ends the task without a result and sends its message again with
// the X-Taskiq-requeue label incremented. The call decides: once a task has
// called it, the message is requeued whatever the task returns, and its
// return value is not stored (an error it returns is logged at warn level,
// a value at debug level, both as ignored). Return its result from the task:
//
//	return 0, core.ContextFrom(ctx).Requeue()
func (c *Context) Requeue() error {
	c.mu.Lock()
	c.outcome = outcomeRequeue
	c.mu.Unlock()
	return fmt.Errorf("requeue: %w", errSettledByTask)
}

// Reject ends the task without a result and moves its message to the
// dead-letter store (or drops it, logged, on a broker without one). As with
// Requeue, the call decides whatever the task returns afterwards. Return
// its result from the task.
func (c *Context) Reject() error {
	c.mu.Lock()
	c.outcome = outcomeReject
	c.mu.Unlock()
	return fmt.Errorf("reject: %w", errSettledByTask)
}

// Ack acknowledges the message now. With ack_type "manual" the task must
// call it; with other ack types it acknowledges early.
func (c *Context) Ack() error {
	c.mu.Lock()
	if c.settled {
		c.mu.Unlock()
		return nil
	}
	c.settled = true
	c.mu.Unlock()
	return c.settle(sdk.Settlement{DeliveryID: c.Delivery.ID, Kind: sdk.SettleAck})
}

// SetProgress stores a progress report for the task (state is one of
// wire.StateStarted, ... or a custom string).
func (c *Context) SetProgress(ctx context.Context, state string, meta map[string]any) error {
	b, err := json.Marshal(wire.Progress{State: state, Meta: meta})
	if err != nil {
		return err
	}
	return c.app.results.SetProgress(ctx, c.Message.TaskID, b)
}

// claimSettlement marks the delivery settled and reports whether the caller
// is the one to settle it.
func (c *Context) claimSettlement() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return false
	}
	c.settled = true
	return true
}
