package sdk

import (
	"context"
	"errors"
)

// ResultBackend stores task results (wire.Result JSON) and progress reports
// as opaque bytes keyed by task id.
type ResultBackend interface {
	// SetResults stores a batch of results.
	SetResults(ctx context.Context, results []StoredResult) error
	// GetResult returns a stored result, or ErrNotFound.
	GetResult(ctx context.Context, taskID string) ([]byte, error)
	// IsReady reports whether a result is stored.
	IsReady(ctx context.Context, taskID string) (bool, error)
	// SetProgress stores a progress report (capability "progress").
	SetProgress(ctx context.Context, taskID string, progress []byte) error
	// GetProgress returns the last progress report, or ErrNotFound.
	GetProgress(ctx context.Context, taskID string) ([]byte, error)
	Close(ctx context.Context) error
}

// ResultWaiter is implemented by backends that can block until a result is
// saved instead of being polled (capability "wait"). WaitResult returns as
// soon as the result is stored, or ctx's error.
//
// Across the process boundary every waiter of a host shares one stream: the
// SDK calls WaitResult once per task id being waited for, each call in its
// own goroutine, and cancels its context when no waiter is left.
type ResultWaiter interface {
	WaitResult(ctx context.Context, taskID string) ([]byte, error)
}

// ResultWatcher is implemented by backends that report a saved result
// through a callback instead of a blocked goroutine, so that a process can
// wait for a hundred thousand results at the cost of a small struct each.
//
// WatchResult returns at once. done is called exactly once, from another
// goroutine, with the stored result or with an error that ends the watch
// (a stored result that cannot be read, the backend closing); it must not
// block. stop withdraws the watch: when it returns true, done will never be
// called; when false, done has been or is being called. Across the process
// boundary the SDK uses it, when the plugin's backend has it, instead of a
// WaitResult call per watched id.
type ResultWatcher interface {
	WatchResult(taskID string, done func(body []byte, err error)) (stop func() bool)
}

// WaitWatched waits for taskID's result through w, or until ctx ends: the
// blocking WaitResult of a backend that implements ResultWatcher.
func WaitWatched(ctx context.Context, w ResultWatcher, taskID string) ([]byte, error) {
	type outcome struct {
		body []byte
		err  error
	}
	ch := make(chan outcome, 1)
	stop := w.WatchResult(taskID, func(body []byte, err error) { ch <- outcome{body, err} })
	select {
	case o := <-ch:
		return o.body, o.err
	case <-ctx.Done():
		if !stop() {
			o := <-ch // done is being called: its answer wins
			return o.body, o.err
		}
		return nil, ctx.Err()
	}
}

// StoredResult is one result to store.
type StoredResult struct {
	TaskID string
	Body   []byte
}

// Result backend capabilities.
const (
	CapWait     = "wait"
	CapProgress = "progress"
)

// ErrNotFound is returned when no result (or progress) is stored for a task.
var ErrNotFound = errors.New("result not found")
