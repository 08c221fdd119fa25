package schedule

import (
	"sync/atomic"
	"time"
)

// Stats counts what a scheduler did. Its fields are safe to read while the
// scheduler runs; Snapshot reads them together.
type Stats struct {
	// Fires counts kicks the scheduler made (a kick the broker dropped as
	// a duplicate of another replica's counts too: the slot was fired).
	Fires atomic.Int64
	// Missed counts due slots that were not fired because of the catch-up
	// policy (older than catchup_window, or not the latest).
	Missed atomic.Int64
	// Skipped counts slots passed over on purpose: paused, or overlap
	// "skip" while the previous fire had no result.
	Skipped atomic.Int64
	// Errors counts failed kicks (retried) and failed state writes.
	Errors atomic.Int64
	// LagLastNs and LagMaxNs are how late the last fire and the latest one
	// ever were, after their slot plus jitter, in nanoseconds.
	LagLastNs atomic.Int64
	LagMaxNs  atomic.Int64
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	Fires, Missed, Skipped, Errors int64
	LagLast, LagMax                time.Duration
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Fires: s.Fires.Load(), Missed: s.Missed.Load(), Skipped: s.Skipped.Load(), Errors: s.Errors.Load(),
		LagLast: time.Duration(s.LagLastNs.Load()), LagMax: time.Duration(s.LagMaxNs.Load()),
	}
}

func (s *Stats) observeLag(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s.LagLastNs.Store(int64(d))
	for {
		old := s.LagMaxNs.Load()
		if int64(d) <= old || s.LagMaxNs.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}
