package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

var (
	// ErrNoResultBackend is returned when results are read but no result
	// backend is configured: the default backend stores nothing.
	ErrNoResultBackend = errors.New("no result backend configured: results are not stored (add a result_backend block to taskiq.hcl or use WithResultBackend)")
	// ErrResultNotReady is returned by GetResult before the task has finished.
	ErrResultNotReady = errors.New("result not ready")
	// ErrTimeout is returned by WaitResult when the timeout passes first.
	ErrTimeout = errors.New("timed out waiting for the result")
)

// AsyncTask is a handle to a kicked task's result.
type AsyncTask[R any] struct {
	TaskID string
	app    *App
}

// ResultOf returns a handle to the result of a task kicked elsewhere.
func ResultOf[R any](app *App, taskID string) *AsyncTask[R] {
	return &AsyncTask[R]{TaskID: taskID, app: app}
}

// Result is a task's result with its return value decoded.
type Result[R any] struct {
	ReturnValue   R
	IsErr         bool
	Error         *TaskError
	ExecutionTime time.Duration
	Labels        map[string]any
	Log           string
	// Raw is the stored result as read from the backend.
	Raw *TaskResult
}

// Value returns the return value, or the task's error when it failed.
func (r *Result[R]) Value() (R, error) {
	if r.IsErr {
		var zero R
		if r.Error == nil {
			return zero, errors.New("task failed without an error description")
		}
		return zero, r.Error
	}
	return r.ReturnValue, nil
}

// IsReady reports whether the result is stored.
func (t *AsyncTask[R]) IsReady(ctx context.Context) (bool, error) {
	return t.app.results.IsReady(ctx, t.TaskID)
}

// GetResult reads the result, or ErrResultNotReady.
func (t *AsyncTask[R]) GetResult(ctx context.Context) (*Result[R], error) {
	b, err := t.app.results.GetResult(ctx, t.TaskID)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("task %s: %w", t.TaskID, ErrResultNotReady)
	}
	if err != nil {
		return nil, err
	}
	return decodeResult[R](b)
}

// WaitResult waits up to timeout (0: until ctx ends) for the result. A backend
// that can notify returns it as soon as it is saved; others are polled with a
// backoff from 1 ms to 100 ms.
func (t *AsyncTask[R]) WaitResult(ctx context.Context, timeout time.Duration) (*Result[R], error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	b, err := t.app.waitRaw(ctx, t.TaskID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("task %s: %w (%v)", t.TaskID, ErrTimeout, timeout)
		}
		return nil, err
	}
	return decodeResult[R](b)
}

// OnResult calls fn once with the result, or with ctx's error when ctx
// ends first, and returns at once. Unlike WaitResult it blocks no goroutine
// while waiting: with a backend that can watch (taskiq-redis, the
// in-memory plugin, any result plugin) a pending OnResult is a small struct
// in the host, so a program can wait for a hundred thousand results at
// once. fn runs on a goroutine of the backend's and must not block for
// long; a backend that cannot watch is polled by a goroutine per call.
func (t *AsyncTask[R]) OnResult(ctx context.Context, fn func(*Result[R], error)) {
	t.app.onRaw(ctx, t.TaskID, func(b []byte, err error) {
		if err != nil {
			fn(nil, err)
			return
		}
		fn(decodeResult[R](b))
	})
}

// GetProgress reads the task's last progress report, or ErrResultNotReady.
func (t *AsyncTask[R]) GetProgress(ctx context.Context) (*Progress, error) {
	b, err := t.app.results.GetProgress(ctx, t.TaskID)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("task %s progress: %w", t.TaskID, ErrResultNotReady)
	}
	if err != nil {
		return nil, err
	}
	var p wire.Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: progress: %v", wire.ErrMalformed, err)
	}
	return &p, nil
}

func (a *App) waitRaw(ctx context.Context, taskID string) ([]byte, error) {
	if w, ok := a.results.(sdk.ResultWaiter); ok {
		b, err := w.WaitResult(ctx, taskID)
		if !errors.Is(err, sdk.ErrUnsupported) {
			return b, err
		}
	}
	delay := time.Millisecond
	for {
		b, err := a.results.GetResult(ctx, taskID)
		if !errors.Is(err, sdk.ErrNotFound) {
			return b, err
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// onRaw calls fn once with taskID's stored result or ctx's error.
func (a *App) onRaw(ctx context.Context, taskID string, fn func([]byte, error)) {
	w, ok := a.results.(sdk.ResultWatcher)
	if !ok {
		go func() { fn(a.waitRaw(ctx, taskID)) }()
		return
	}
	if ctx.Done() == nil {
		// A context that never ends (Background, WithoutCancel) needs no
		// AfterFunc registration: the watch alone, its answer straight to fn.
		w.WatchResult(taskID, fn)
		return
	}
	c := &rawCall{fn: fn}
	stop := w.WatchResult(taskID, c.result)
	stopCtx := context.AfterFunc(ctx, func() {
		if stop() {
			c.finish(nil, ctx.Err())
		}
	})
	c.mu.Lock()
	c.stopCtx = stopCtx
	finished := c.finished
	c.mu.Unlock()
	if finished {
		stopCtx()
	}
}

// rawCall is one onRaw: the watch's answer or the context's end, whichever
// comes first.
type rawCall struct {
	fn       func([]byte, error)
	mu       sync.Mutex
	finished bool
	stopCtx  func() bool
}

func (c *rawCall) result(b []byte, err error) {
	if c.finish(b, err) {
		c.mu.Lock()
		stop := c.stopCtx
		c.mu.Unlock()
		if stop != nil {
			stop()
		}
	}
}

func (c *rawCall) finish(b []byte, err error) bool {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return false
	}
	c.finished = true
	c.mu.Unlock()
	c.fn(b, err)
	return true
}

func decodeResult[R any](b []byte) (*Result[R], error) {
	raw, err := wire.DecodeResult(b)
	if err != nil {
		return nil, err
	}
	r := &Result[R]{
		IsErr:         raw.IsErr,
		Error:         raw.Error,
		ExecutionTime: time.Duration(raw.ExecutionTime * float64(time.Second)),
		Labels:        raw.Labels,
		Raw:           raw,
	}
	if raw.Log != nil {
		r.Log = *raw.Log
	}
	if len(raw.ReturnValue) > 0 && string(raw.ReturnValue) != "null" {
		if err := json.Unmarshal(raw.ReturnValue, &r.ReturnValue); err != nil {
			return nil, fmt.Errorf("decode return value into %T: %w", r.ReturnValue, err)
		}
	}
	return r, nil
}

// dummyResults is the default result backend: it stores nothing, as taskiq's
// dummy backend, and says so when asked for a result.
type dummyResults struct{}

func (dummyResults) SetResults(context.Context, []sdk.StoredResult) error { return nil }
func (dummyResults) GetResult(context.Context, string) ([]byte, error) {
	return nil, ErrNoResultBackend
}
func (dummyResults) IsReady(context.Context, string) (bool, error) {
	return false, ErrNoResultBackend
}
func (dummyResults) WaitResult(context.Context, string) ([]byte, error) {
	return nil, ErrNoResultBackend
}
func (dummyResults) SetProgress(context.Context, string, []byte) error { return nil }
func (dummyResults) GetProgress(context.Context, string) ([]byte, error) {
	return nil, ErrNoResultBackend
}
func (dummyResults) Close(context.Context) error { return nil }

// Interface guards
var (
	_ sdk.ResultBackend = dummyResults{}
	_ sdk.ResultWaiter  = dummyResults{}
)
