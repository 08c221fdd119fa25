package schedule

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Fire is one kick of a slot.
type Fire struct {
	Spec *Spec
	Slot time.Time
	// TaskID is TaskID(Spec.ID, Slot).
	TaskID string
	// DedupWindow is how long the broker must remember TaskID; zero when
	// the broker does not deduplicate.
	DedupWindow time.Duration
}

// Kicker sends a fire's task.
type Kicker interface {
	Kick(ctx context.Context, f Fire) error
}

// Store keeps the last fired slot per schedule (sdk.ScheduleState's
// first half).
type Store interface {
	LastFired(ctx context.Context, ids []string) (map[string]time.Time, error)
	MarkFired(ctx context.Context, id string, slot time.Time) error
}

// Leaser is a leader lease (sdk.ScheduleState's second half).
type Leaser interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Results tells whether a task has a result (for overlap "skip").
type Results interface {
	IsReady(ctx context.Context, taskID string) (bool, error)
}

// Clock is the engine's time source.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Lease timing: a leader renews every LeaseRenew and holds the lease for
// LeaseTTL; it stops firing LeaseMargin before the lease would run out
// unrenewed, counted from before its last renewal was sent.
const (
	LeaseName   = "scheduler"
	LeaseTTL    = 15 * time.Second
	LeaseRenew  = 5 * time.Second
	LeaseMargin = 3 * time.Second
)

// dedupMargin is added to a schedule's catch-up window for the broker's
// dedup window: a replica that fires a slot late (within the window) must
// still find the first fire remembered.
const dedupMargin = 10 * time.Minute

// maxDue bounds the slots looked at for one schedule in one tick.
const maxDue = 10000

// Options configure an Engine.
type Options struct {
	// Load returns the schedules to run (merged from every place).
	Load func(ctx context.Context) ([]*Spec, error)
	// Kicker sends fires.
	Kicker Kicker
	// Store keeps the last fired slots; nil keeps them in memory only.
	Store Store
	// Dedup says the broker deduplicates kicks by task id (sdk.CapDedup):
	// then every replica fires every slot and the broker keeps one.
	Dedup bool
	// Lease, used when Dedup is false, elects one firing replica; nil
	// means this replica fires alone.
	Lease Leaser
	// Holder names this replica in the lease.
	Holder string
	// Results is consulted for overlap "skip"; nil treats previous fires
	// as finished.
	Results Results
	// Reload is how often Load is called (default 10s).
	Reload time.Duration
	Clock  Clock
	Logger hclog.Logger
	Stats  *Stats
}

// Engine fires schedules. Tick does one round; Run calls it in a loop.
type Engine struct {
	o Options

	mu         sync.Mutex
	specs      map[string]*Spec
	order      []string
	last       map[string]time.Time // last slot handled (fired or passed over)
	lastKicked map[string]time.Time // last slot kicked by this replica
	retryAt    map[string]time.Time // after a failed kick
	loadedAt   time.Time
	leaderTill time.Time
	leaseAt    time.Time
	leader     bool
}

// New returns an engine; nothing runs until Tick or Run.
func New(o Options) *Engine {
	if o.Reload <= 0 {
		o.Reload = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Stats == nil {
		o.Stats = &Stats{}
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return &Engine{o: o, specs: map[string]*Spec{}, last: map[string]time.Time{},
		lastKicked: map[string]time.Time{}, retryAt: map[string]time.Time{}}
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return e.o.Stats }

// Run ticks until ctx ends, then gives the lease up.
func (e *Engine) Run(ctx context.Context) error {
	defer func() {
		if e.o.Lease != nil && !e.o.Dedup && e.leader {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = e.o.Lease.ReleaseLease(rctx, LeaseName, e.o.Holder)
		}
	}()
	for {
		now := e.o.Clock.Now()
		wake := e.Tick(ctx, now)
		select {
		case <-ctx.Done():
			return nil
		case <-e.o.Clock.After(wake.Sub(now)):
		}
	}
}

// Tick does what is due at now: reload the schedules when it is time,
// renew the lease, fire due slots. It returns when it wants to run next.
func (e *Engine) Tick(ctx context.Context, now time.Time) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loadedAt.IsZero() || !now.Before(e.loadedAt.Add(e.o.Reload)) {
		e.reload(ctx, now)
	}
	wake := e.loadedAt.Add(e.o.Reload)
	if !e.o.Dedup && e.o.Lease != nil {
		if !now.Before(e.leaseAt) {
			e.renewLease(ctx, now)
		}
		if e.leaseAt.Before(wake) {
			wake = e.leaseAt
		}
		if !e.leader || !now.Before(e.leaderTill) {
			return wake
		}
	}
	for _, id := range e.order {
		if next, ok := e.process(ctx, e.specs[id], now); ok && next.Before(wake) {
			wake = next
		}
	}
	if !wake.After(now) {
		wake = now.Add(time.Millisecond)
	}
	return wake
}

func (e *Engine) renewLease(ctx context.Context, now time.Time) {
	e.leaseAt = now.Add(LeaseRenew)
	held, err := e.o.Lease.AcquireLease(ctx, LeaseName, e.o.Holder, LeaseTTL)
	if err != nil {
		e.o.Logger.Warn("cannot renew the scheduler lease; not firing until it is renewed", "error", err)
		e.o.Stats.Errors.Add(1)
		return
	}
	was := e.leader
	e.leader = held
	if !held {
		return
	}
	e.leaderTill = now.Add(LeaseTTL - LeaseMargin)
	if !was {
		e.o.Logger.Info("this scheduler holds the lease and fires the schedules", "holder", e.o.Holder)
		// Another leader may have fired since this replica last looked.
		e.refreshLast(ctx)
	}
}

func (e *Engine) refreshLast(ctx context.Context) {
	if e.o.Store == nil || len(e.order) == 0 {
		return
	}
	got, err := e.o.Store.LastFired(ctx, e.order)
	if err != nil {
		e.o.Logger.Warn("cannot read the last fired slots", "error", err)
		return
	}
	for id, t := range got {
		if t.After(e.last[id]) {
			e.last[id] = t
		}
	}
}

// reload replaces the schedules; a schedule seen for the first time starts
// from its stored last slot, else from now (or, without a stored state but
// with a deduplicating broker, from now minus its catch-up window: the
// broker drops what another run already fired); one that appears at a
// later load starts from the previous load. A one-shot schedule with
// no stored slot has not fired: it starts from now minus its catch-up
// window, so one added for a moment just past still fires.
func (e *Engine) reload(ctx context.Context, now time.Time) {
	// A schedule first seen at a later load was added after the previous
	// one: its slots since then are due.
	since := now
	if !e.loadedAt.IsZero() {
		since = e.loadedAt
	}
	e.loadedAt = now
	specs, err := e.o.Load(ctx)
	if err != nil {
		e.o.Logger.Warn("cannot load the schedules; keeping the ones loaded before", "error", err)
		if len(e.specs) > 0 {
			return
		}
	}
	next := make(map[string]*Spec, len(specs))
	order := make([]string, 0, len(specs))
	var fresh []string
	for _, s := range specs {
		if _, dup := next[s.ID]; dup {
			continue
		}
		next[s.ID] = s
		order = append(order, s.ID)
		if _, known := e.last[s.ID]; !known {
			fresh = append(fresh, s.ID)
		}
	}
	var stored map[string]time.Time
	if e.o.Store != nil && len(fresh) > 0 {
		if stored, err = e.o.Store.LastFired(ctx, fresh); err != nil {
			e.o.Logger.Warn("cannot read the last fired slots; starting those schedules from now", "error", err)
			e.o.Stats.Errors.Add(1)
		}
	}
	for _, id := range fresh {
		s := next[id]
		switch t, ok := stored[id]; {
		case ok:
			e.last[id] = t
		case e.o.Store == nil && e.o.Dedup, e.o.Store != nil && !s.Time.IsZero():
			e.last[id] = now.Add(-s.CatchupWindow)
		default:
			e.last[id] = since
		}
	}
	for id := range e.last {
		if next[id] == nil {
			delete(e.last, id)
			delete(e.lastKicked, id)
			delete(e.retryAt, id)
		}
	}
	e.specs, e.order = next, order
}

// process fires what is due of one schedule and returns when its next
// fire is due.
func (e *Engine) process(ctx context.Context, s *Spec, now time.Time) (time.Time, bool) {
	if t, ok := e.retryAt[s.ID]; ok && now.Before(t) {
		return t, true
	}
	last := e.last[s.ID]
	// Slots older than the window can never be fired: start the walk there.
	floor := now.Add(-s.CatchupWindow - s.Jitter - OnTime)
	var missedBefore int64
	if last.Before(floor) {
		missedBefore = countSlots(s, last, floor)
		last = floor
	}
	var due []time.Time
	t := last
	for len(due) < maxDue {
		slot, ok := s.Next(t)
		if !ok || slot.Add(s.JitterFor(slot)).After(now) {
			break
		}
		due = append(due, slot)
		t = slot
	}
	e.o.Stats.Missed.Add(missedBefore)
	if len(due) > 0 {
		fire := e.choose(s, due, now)
		for _, slot := range due {
			switch {
			case s.Paused:
				e.o.Stats.Skipped.Add(1)
			case !fire[slot]:
				e.o.Stats.Missed.Add(1)
			case e.overlapping(ctx, s):
				e.o.Stats.Skipped.Add(1)
				e.o.Logger.Info("skipping a slot: the previous fire has no result yet", "schedule", s.ID, "slot", slot)
			default:
				if err := e.kick(ctx, s, slot, now); err != nil {
					e.retryAt[s.ID] = now.Add(time.Second)
					e.markFired(ctx, s.ID, e.last[s.ID])
					return e.retryAt[s.ID], true
				}
			}
			e.last[s.ID] = slot
		}
		e.markFired(ctx, s.ID, e.last[s.ID])
	} else if missedBefore > 0 {
		e.last[s.ID] = last
	}
	delete(e.retryAt, s.ID)
	next, ok := s.Next(e.last[s.ID])
	if !ok {
		return time.Time{}, false
	}
	return next.Add(s.JitterFor(next)), true
}

// choose picks, by the catch-up policy, which due slots fire.
func (e *Engine) choose(s *Spec, due []time.Time, now time.Time) map[time.Time]bool {
	fire := map[time.Time]bool{}
	window := s.CatchupWindow
	if s.Catchup == CatchupSkip {
		window = OnTime
	}
	fresh := func(slot time.Time) bool { return now.Sub(slot.Add(s.JitterFor(slot))) <= window }
	switch s.Catchup {
	case CatchupAll:
		for _, slot := range due {
			fire[slot] = fresh(slot)
		}
	default:
		if latest := due[len(due)-1]; fresh(latest) {
			fire[latest] = true
		}
	}
	return fire
}

// countSlots counts the slots in (from, to], up to maxDue.
func countSlots(s *Spec, from, to time.Time) int64 {
	if s.Interval > 0 && s.StartAt.IsZero() && s.EndAt.IsZero() {
		p, ph := int64(s.Interval/time.Second), int64(s.Phase/time.Second)
		n := floorDiv(to.Unix()-ph, p) - floorDiv(from.Unix()-ph, p)
		return max(0, min(n, maxDue))
	}
	var n int64
	for t := from; n < maxDue; n++ {
		slot, ok := s.Next(t)
		if !ok || slot.After(to) {
			break
		}
		t = slot
	}
	return n
}

func (e *Engine) overlapping(ctx context.Context, s *Spec) bool {
	if s.Overlap != OverlapSkip || e.o.Results == nil {
		return false
	}
	prev, ok := e.lastKicked[s.ID]
	if !ok {
		return false
	}
	ready, err := e.o.Results.IsReady(ctx, TaskID(s.ID, prev))
	if err != nil {
		e.o.Logger.Warn("cannot tell whether the previous fire finished; firing", "schedule", s.ID, "error", err)
		return false
	}
	return !ready
}

func (e *Engine) kick(ctx context.Context, s *Spec, slot, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err // stopping: no new fire
	}
	// A fire once begun is finished even when the scheduler stops meanwhile:
	// an abandoned kick may still reach the broker, and a fire sent but not
	// counted and recorded would be sent again after a restart.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	f := Fire{Spec: s, Slot: slot, TaskID: TaskID(s.ID, slot)}
	if e.o.Dedup {
		f.DedupWindow = s.CatchupWindow + s.Jitter + OnTime + dedupMargin
	}
	if err := e.o.Kicker.Kick(ctx, f); err != nil {
		e.o.Stats.Errors.Add(1)
		e.o.Logger.Error("cannot fire a schedule; retrying", "schedule", s.ID, "slot", slot, "task_id", f.TaskID, "error", err)
		return fmt.Errorf("schedule %s: %w", s.ID, err)
	}
	e.lastKicked[s.ID] = slot
	e.o.Stats.Fires.Add(1)
	e.o.Stats.observeLag(now.Sub(slot.Add(s.JitterFor(slot))))
	e.o.Logger.Debug("fired", "schedule", s.ID, "slot", slot, "task_id", f.TaskID)
	return nil
}

// finishTimeout bounds finishing a fire (its kick and its record) once the
// run's context is done.
const finishTimeout = 5 * time.Second

func (e *Engine) markFired(ctx context.Context, id string, slot time.Time) {
	if e.o.Store == nil || slot.IsZero() {
		return
	}
	// The fire has been sent: record it even when the scheduler is
	// stopping, or a restart without deduplication fires the slot again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := e.o.Store.MarkFired(ctx, id, slot); err != nil {
		e.o.Stats.Errors.Add(1)
		e.o.Logger.Warn("cannot store the last fired slot", "schedule", id, "error", err)
	}
}
