package core

import (
	"context"
	"sync/atomic"
	"time"
)

// clock is the time source of the worker: the lease extender, reconnect
// backoff, readiness, task timeouts, the result-save retry and the
// shutdown timeout read it, so that tests replace it with a fake one to
// show what happens after a process was frozen, or a timeout passed,
// without sleeping. Middlewares, and the pacing of settlement batches
// (internal/coalesce), keep using the time package.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// withTimeout is context.WithTimeout on clk: the context's deadline is d
// after clk's now, and it ends with context.DeadlineExceeded once clk says
// d has passed.
func withTimeout(parent context.Context, clk clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := clk.(realClock); real {
		return context.WithTimeout(parent, d)
	}
	inner, cancel := context.WithCancel(parent)
	ctx := &clockDeadline{Context: inner, deadline: clk.Now().Add(d)}
	go func() {
		select {
		case <-clk.After(d):
			ctx.expired.Store(true)
			cancel()
		case <-inner.Done():
		}
	}()
	return ctx, cancel
}

// clockDeadline is a context that withTimeout ends when its clock's
// deadline passes.
type clockDeadline struct {
	context.Context
	deadline time.Time
	expired  atomic.Bool
}

func (c *clockDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *clockDeadline) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}
