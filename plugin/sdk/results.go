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
