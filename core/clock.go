package core

import "time"

// clock is the time source of the worker's lease extender, reconnect backoff
// and readiness: tests replace it with a fake one to show what happens after
// a process was frozen, without sleeping. Task timeouts, result-save retries
// and middlewares keep using the time package.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
