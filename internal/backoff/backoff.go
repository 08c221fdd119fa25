// Package backoff is the capped exponential backoff with reset that every
// retry loop of taskiq-go uses: the worker reopening its delivery stream, the
// supervisor restarting worker children, the host restarting plugin
// processes and plugins riding out an outage of their backing service.
package backoff

import (
	"context"
	"time"
)

// Backoff yields delays that double from Min up to Max; Reset starts again
// from Min. It is not safe for concurrent use: each retry loop owns one.
type Backoff struct {
	min, max, cur time.Duration
	after         func(time.Duration) <-chan time.Time
}

// New returns a backoff whose first delay is min and whose delays never
// exceed max.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, cur: min, after: time.After}
}

// WithAfter makes Wait use after instead of time.After (a test's clock).
func (b *Backoff) WithAfter(after func(time.Duration) <-chan time.Time) *Backoff {
	b.after = after
	return b
}

// Next returns the delay before the next try and doubles the one after it,
// up to the maximum.
func (b *Backoff) Next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d
}

// Wait sleeps for Next(). It returns false when ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-b.after(b.Next()):
		return true
	}
}

// Reset makes the next delay the shortest again: call it once the retried
// operation worked.
func (b *Backoff) Reset() { b.cur = b.min }
