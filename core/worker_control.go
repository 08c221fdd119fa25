package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// The worker's part of inspection and control: heartbeats to the broker's
// inspector (so `taskiq workers` lists it) and the cancellation watch
// (tombstones checked when a task is about to run, running tasks
// cancelled when their tombstone arrives).

// HeartbeatInterval is how often a worker tells an inspectable broker it is
// alive; it is listed until three intervals pass without one.
const HeartbeatInterval = 5 * time.Second

// cancelMemory bounds how long a worker remembers a tombstone it was told
// about; the broker keeps them durably (for its own TTL) and tells a
// restarted worker again.
const cancelMemory = 24 * time.Hour

// cancelRegistry is a worker's view of cancellations.
type cancelRegistry struct {
	clk     clock
	mu      sync.Mutex
	dead    map[string]time.Time               // cancelled task id -> forget after
	running map[string]context.CancelCauseFunc // task id -> cancel its context
}

func newCancelRegistry(clk clock) *cancelRegistry {
	return &cancelRegistry{clk: clk, dead: map[string]time.Time{}, running: map[string]context.CancelCauseFunc{}}
}

// errCancelledCause is the cause a running task's context is cancelled with.
var errCancelledCause = errors.New("the task was cancelled")

// add records cancelled ids and cancels those running; it returns how many
// were running.
func (r *cancelRegistry) add(ids []string) int {
	now := r.clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, until := range r.dead {
		if now.After(until) {
			delete(r.dead, id)
		}
	}
	n := 0
	for _, id := range ids {
		r.dead[id] = now.Add(cancelMemory)
		if cancel := r.running[id]; cancel != nil {
			cancel(errCancelledCause)
			n++
		}
	}
	return n
}

// enter registers a task about to run: cancelled is true when its tombstone
// is known (it must not start); otherwise ctx is cancelled when one
// arrives, until leave is called.
func (r *cancelRegistry) enter(ctx context.Context, taskID string) (_ context.Context, leave func(), cancelled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.dead[taskID]; ok {
		return ctx, func() {}, true
	}
	ctx, cancel := context.WithCancelCause(ctx)
	r.running[taskID] = cancel
	return ctx, func() {
		r.mu.Lock()
		delete(r.running, taskID)
		r.mu.Unlock()
		cancel(nil)
	}, false
}

// cancelledBeforeStart is the CancelledError of a task whose tombstone the
// worker knows, checked when the worker takes its message; nil otherwise.
func (w *worker) cancelledBeforeStart(tc *Context, def *taskDef) error {
	if w.cancels == nil || !w.cancels.has(tc.Message.TaskID) {
		return nil
	}
	w.app.logger.Info("task cancelled before it started; not running it", "task_id", tc.Message.TaskID, "task", def.name)
	return &CancelledError{TaskID: tc.Message.TaskID}
}

// has reports whether the task's tombstone is known.
func (r *cancelRegistry) has(taskID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.dead[taskID]
	return ok
}

// run runs the task unless it was cancelled, and turns a cancellation that
// arrived while it ran into a CancelledError.
func (w *worker) run(ctx context.Context, def *taskDef, tc *Context, timeout time.Duration) (json.RawMessage, error) {
	if w.cancels == nil {
		// The broker cannot cancel, or this is a task module's own run (the
		// host worker that called it watches the cancellations and cancels
		// the call).
		return w.runTask(ctx, def, tc, timeout)
	}
	id := tc.Message.TaskID
	ctx, leave, cancelled := w.cancels.enter(ctx, id)
	defer leave()
	if cancelled {
		w.app.logger.Info("task cancelled before it started; not running it", "task_id", id, "task", def.name)
		return nil, &CancelledError{TaskID: id}
	}
	ret, err := w.runTask(ctx, def, tc, timeout)
	if errors.Is(context.Cause(ctx), errCancelledCause) {
		w.app.logger.Info("running task cancelled", "task_id", id, "task", def.name)
		return nil, &CancelledError{TaskID: id, Running: true}
	}
	return ret, err
}

// startControl starts the heartbeat and the cancellation watch of the
// worker's broker, when it has the roles; both end with ctx.
func (w *worker) startControl(ctx context.Context, wg *sync.WaitGroup) {
	if in := w.broker.insp; in != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.heartbeat(ctx, in)
		}()
	}
	if c := w.broker.canc; c != nil {
		// The tombstones that exist now are known before the first delivery
		// is taken (bounded: a broker that does not answer delays the
		// worker's start by cancelWatchWait at most).
		first := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.watchCancels(ctx, c, sync.OnceFunc(func() { close(first) }))
		}()
		select {
		case <-first:
		case <-ctx.Done():
		case <-w.app.clock.After(cancelWatchWait):
			w.app.logger.Warn("the broker did not send its cancellation tombstones in time; starting without them", "broker", w.broker.name, "waited", cancelWatchWait)
		}
	}
}

// cancelWatchWait bounds the wait for the first tombstones at start.
const cancelWatchWait = 5 * time.Second

// workerID names this worker process in heartbeats.
func workerID() (string, string) {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)), host
}

// heartbeat tells the inspector about this worker every HeartbeatInterval,
// and that it is gone (a heartbeat that expires at once) when ctx ends.
func (w *worker) heartbeat(ctx context.Context, in Inspector) {
	id, host := workerID()
	info := WorkerInfo{ID: id, Host: host, PID: os.Getpid(), Started: w.app.clock.Now()}
	for _, q := range w.opts.Queues {
		info.Queues = append(info.Queues, q.Name)
	}
	failed := false
	for {
		info.Running = len(w.running)
		if err := in.Heartbeat(ctx, info, 3*HeartbeatInterval); err != nil && ctx.Err() == nil && !failed {
			failed = true
			w.app.logger.Warn("worker heartbeat failed; taskiq workers may not list this worker", "broker", w.broker.name, "error", err)
		} else if err == nil {
			failed = false
		}
		select {
		case <-ctx.Done():
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = in.Heartbeat(bctx, info, time.Millisecond)
			cancel()
			return
		case <-w.app.clock.After(HeartbeatInterval):
		}
	}
}

// watchCancels keeps a cancellation watch open on the broker until ctx
// ends, reopening it with backoff when it breaks.
func (w *worker) watchCancels(ctx context.Context, c sdk.Canceller, started func()) {
	bo := newBackoff(w.app.clock, 100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		opened := w.app.clock.Now()
		err := c.WatchCancels(ctx, func(ids []string) {
			defer started()
			if n := w.cancels.add(ids); n > 0 {
				w.app.logger.Info("cancelling running tasks", "broker", w.broker.name, "tasks", n)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if w.app.clock.Now().Sub(opened) > time.Minute {
			bo.Reset()
		}
		wait := bo.Next()
		w.app.logger.Warn("cancellation watch ended; reopening it", "broker", w.broker.name, "error", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return
		case <-w.app.clock.After(wait):
		}
	}
}
