package schedule

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// broker is a test broker: it records every kick and, when dedup is set,
// keeps one message per task id as a deduplicating broker does.
type broker struct {
	mu       sync.Mutex
	dedup    bool
	accepted map[string]int // task id -> messages kept
	kicks    int
	fail     bool
}

func newBroker(dedup bool) *broker { return &broker{dedup: dedup, accepted: map[string]int{}} }

func (b *broker) Kick(_ context.Context, f Fire) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail {
		return errors.New("broker down")
	}
	b.kicks++
	if b.dedup && f.DedupWindow <= 0 {
		panic("a deduplicating broker got a kick without a dedup window")
	}
	if b.dedup && b.accepted[f.TaskID] > 0 {
		return nil
	}
	b.accepted[f.TaskID]++
	return nil
}

func (b *broker) ids() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.accepted {
		out[k] = v
	}
	return out
}

// store is a test Store and Leaser.
type store struct {
	mu     sync.Mutex
	last   map[string]time.Time
	holder string
	until  time.Time
	now    func() time.Time
}

func newStore(now func() time.Time) *store { return &store{last: map[string]time.Time{}, now: now} }

func (s *store) LastFired(_ context.Context, ids []string) (map[string]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for _, id := range ids {
		if t, ok := s.last[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

func (s *store) MarkFired(_ context.Context, id string, slot time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slot.After(s.last[id]) {
		s.last[id] = slot
	}
	return nil
}

func (s *store) AcquireLease(_ context.Context, _, holder string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holder == holder || s.holder == "" || !s.now().Before(s.until) {
		s.holder, s.until = holder, s.now().Add(ttl)
		return true, nil
	}
	return false, nil
}

func (s *store) ReleaseLease(_ context.Context, _, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holder == holder {
		s.holder = ""
	}
	return nil
}

type results map[string]bool

func (r results) IsReady(_ context.Context, id string) (bool, error) { return r[id], nil }

// bundle is one test's scheduler world: a fake time, a broker, a store.
type bundle struct {
	now    time.Time
	broker *broker
	store  *store
}

func setup(dedup bool) *bundle {
	b := &bundle{now: utc("2026-03-29T00:00:00Z"), broker: newBroker(dedup)}
	b.store = newStore(func() time.Time { return b.now })
	return b
}

func (b *bundle) engine(specs []*Spec, o Options) *Engine {
	o.Load = func(context.Context) ([]*Spec, error) { return specs, nil }
	o.Kicker = b.broker
	if o.Store == nil {
		o.Store = b.store
	}
	o.Dedup = b.broker.dedup
	return New(o)
}

// run ticks engines in turn from b.now until end, each tick at the time the
// engine asked for (never later than step).
func (b *bundle) run(end time.Time, step time.Duration, engines ...*Engine) {
	ctx := context.Background()
	for !b.now.After(end) {
		next := b.now.Add(step)
		for _, e := range engines {
			if w := e.Tick(ctx, b.now); w.Before(next) {
				next = w
			}
		}
		b.now = next
	}
}

func expectSlots(t *testing.T, got map[string]int, id string, from, to time.Time, every time.Duration) {
	t.Helper()
	want := 0
	for s := from; !s.After(to); s = s.Add(every) {
		want++
		if n := got[TaskID(id, s)]; n != 1 {
			t.Errorf("slot %s fired %d times", s.Format(time.RFC3339), n)
		}
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s fired %d times", k, n)
		}
	}
	if len(got) != want {
		t.Errorf("%d task ids, want %d", len(got), want)
	}
}

func TestEngineFiresEverySlotOnce(t *testing.T) {
	b := setup(false)
	s := mustCompile(t, sdk.Schedule{ID: "tick", Interval: time.Second})
	e := b.engine([]*Spec{s}, Options{})
	start := b.now
	b.run(start.Add(time.Minute), 700*time.Millisecond, e)
	expectSlots(t, b.broker.ids(), "tick", start.Add(time.Second), start.Add(time.Minute), time.Second)
	if st := e.Stats().Snapshot(); st.Fires != 60 || st.Missed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Three replicas on a deduplicating broker: every slot is kept once.
func TestEngineReplicasWithDedup(t *testing.T) {
	b := setup(true)
	specs := []*Spec{
		mustCompile(t, sdk.Schedule{ID: "i", Interval: time.Second}),
		mustCompile(t, sdk.Schedule{ID: "c", Cron: "*/2 * * * * *"}),
	}
	es := []*Engine{b.engine(specs, Options{}), b.engine(specs, Options{}), b.engine(specs, Options{})}
	start := b.now
	b.run(start.Add(30*time.Second), 300*time.Millisecond, es...)
	got := b.broker.ids()
	if b.broker.kicks <= len(got) {
		t.Fatalf("the replicas did not all fire (%d kicks, %d ids)", b.broker.kicks, len(got))
	}
	ints, crons := map[string]int{}, map[string]int{}
	for k, v := range got {
		if k[len("sched:")] == 'i' {
			ints[k] = v
		} else {
			crons[k] = v
		}
	}
	expectSlots(t, ints, "i", start.Add(time.Second), start.Add(30*time.Second), time.Second)
	expectSlots(t, crons, "c", start.Add(2*time.Second), start.Add(30*time.Second), 2*time.Second)
}

// Without dedup the replicas elect a leader; only it fires.
func TestEngineLeaseOneFiringReplica(t *testing.T) {
	b := setup(false)
	// catchup "all": the slots that pass while the lease of a dead leader
	// runs out are fired by the next one.
	specs := []*Spec{mustCompile(t, sdk.Schedule{ID: "i", Interval: time.Second, Catchup: CatchupAll})}
	a := b.engine(specs, Options{Lease: b.store, Holder: "a"})
	c := b.engine(specs, Options{Lease: b.store, Holder: "c"})
	start := b.now
	b.run(start.Add(20*time.Second), 250*time.Millisecond, a, c)
	if a.Stats().Fires.Load() == 0 || c.Stats().Fires.Load() != 0 {
		t.Fatalf("fires: a %d, c %d", a.Stats().Fires.Load(), c.Stats().Fires.Load())
	}
	expectSlots(t, b.broker.ids(), "i", start.Add(time.Second), start.Add(20*time.Second), time.Second)

	// The leader stops (its lease is not renewed): the other takes over
	// once the lease ran out and catches up from the stored last slot.
	stopped := b.now
	b.run(stopped.Add(30*time.Second), 250*time.Millisecond, c)
	if c.Stats().Fires.Load() == 0 {
		t.Fatal("the second replica never took over")
	}
	expectSlots(t, b.broker.ids(), "i", start.Add(time.Second), stopped.Add(30*time.Second), time.Second)
}

// A restart reads the last fired slot: it neither repeats nor skips.
func TestEngineRestartCatchup(t *testing.T) {
	for _, c := range []struct {
		catchup        string
		window         time.Duration
		fired, missed  int64
		firstAfterDown time.Duration // first slot fired after the restart, from the stop
	}{
		{CatchupAll, 0, 30, 0, time.Second},
		{CatchupAll, 10 * time.Second, 10, 20, 21 * time.Second},
		{CatchupLatest, 0, 1, 29, 30 * time.Second},
		{CatchupSkip, 0, 1, 29, 30 * time.Second}, // the latest slot is on time
	} {
		t.Run(c.catchup, func(t *testing.T) {
			b := setup(false)
			spec := mustCompile(t, sdk.Schedule{ID: "i", Interval: time.Second, Catchup: c.catchup, CatchupWindow: c.window})
			first := b.engine([]*Spec{spec}, Options{})
			start := b.now
			b.run(start.Add(10*time.Second), 500*time.Millisecond, first)
			stop := b.broker.ids()
			if len(stop) != 10 {
				t.Fatalf("%d fires before the stop", len(stop))
			}
			down := start.Add(10 * time.Second)
			b.now = down.Add(30 * time.Second) // 30 slots pass with no scheduler
			second := b.engine([]*Spec{spec}, Options{})
			b.now = b.now.Add(200 * time.Millisecond)
			second.Tick(context.Background(), b.now)
			st := second.Stats().Snapshot()
			if st.Fires != c.fired || st.Missed != c.missed {
				t.Fatalf("after the restart: %d fired, %d missed; want %d, %d", st.Fires, st.Missed, c.fired, c.missed)
			}
			b.run(down.Add(40*time.Second), 500*time.Millisecond, second)
			got := b.broker.ids()
			for k, n := range got {
				if n != 1 {
					t.Errorf("%s fired %d times", k, n)
				}
			}
			for s := down.Add(time.Second); !s.After(down.Add(40 * time.Second)); s = s.Add(time.Second) {
				want := !s.Before(down.Add(c.firstAfterDown))
				if (got[TaskID("i", s)] == 1) != want {
					t.Errorf("slot +%s fired: %v, want %v", s.Sub(down), got[TaskID("i", s)] == 1, want)
				}
			}
		})
	}
}

// Without a stored state, a deduplicating broker makes a restart safe:
// the catch-up window is fired again and the broker drops what it has.
func TestEngineRestartWithoutStoreOnDedup(t *testing.T) {
	b := setup(true)
	spec := mustCompile(t, sdk.Schedule{ID: "i", Interval: time.Second, Catchup: CatchupAll, CatchupWindow: time.Minute})
	memOnly := func() *Engine {
		return New(Options{Load: func(context.Context) ([]*Spec, error) { return []*Spec{spec}, nil },
			Kicker: b.broker, Dedup: true})
	}
	b.run(b.now.Add(20*time.Second), 400*time.Millisecond, memOnly())
	b.now = b.now.Add(5 * time.Second)
	b.run(b.now.Add(10*time.Second), 400*time.Millisecond, memOnly())
	for k, n := range b.broker.ids() {
		if n != 1 {
			t.Errorf("%s kept %d times", k, n)
		}
	}
	if n := len(b.broker.ids()); n < 35 {
		t.Errorf("%d slots kept, want every slot of the 35 s", n)
	}
}

func TestEngineOverlapSkip(t *testing.T) {
	b := setup(false)
	spec := mustCompile(t, sdk.Schedule{ID: "o", Interval: time.Second, Overlap: OverlapSkip})
	res := results{}
	e := b.engine([]*Spec{spec}, Options{Results: res})
	start := b.now
	b.run(start.Add(3*time.Second), 250*time.Millisecond, e) // first fire at +1s, no result yet
	if got := b.broker.ids(); len(got) != 1 || got[TaskID("o", start.Add(time.Second))] != 1 {
		t.Fatalf("fires while the first has no result: %v", got)
	}
	res[TaskID("o", start.Add(time.Second))] = true
	b.run(start.Add(5*time.Second), 250*time.Millisecond, e)
	if got := b.broker.ids(); got[TaskID("o", start.Add(4*time.Second))] != 1 {
		t.Fatalf("no fire once the previous one finished: %v", got)
	}
	if e.Stats().Skipped.Load() == 0 {
		t.Fatal("no skipped slot counted")
	}
}

func TestEnginePausedAndResumed(t *testing.T) {
	b := setup(false)
	spec := mustCompile(t, sdk.Schedule{ID: "p", Interval: time.Second, Paused: true})
	specs := []*Spec{spec}
	e := New(Options{Load: func(context.Context) ([]*Spec, error) { return specs, nil }, Kicker: b.broker,
		Store: b.store, Reload: time.Second})
	start := b.now
	b.run(start.Add(10*time.Second), 500*time.Millisecond, e)
	if n := len(b.broker.ids()); n != 0 {
		t.Fatalf("a paused schedule fired %d times", n)
	}
	resumed := *spec
	resumed.Paused = false
	specs = []*Spec{&resumed}
	b.run(start.Add(15*time.Second), 500*time.Millisecond, e)
	got := b.broker.ids()
	if len(got) < 4 || len(got) > 5 || got[TaskID("p", start.Add(10*time.Second))] != 0 {
		t.Fatalf("after resume: %v (paused slots must not be caught up)", got)
	}
}

func TestEngineRetriesAFailedKick(t *testing.T) {
	b := setup(false)
	spec := mustCompile(t, sdk.Schedule{ID: "r", Interval: time.Minute})
	e := b.engine([]*Spec{spec}, Options{})
	ctx := context.Background()
	e.Tick(ctx, b.now)
	b.broker.fail = true
	slot := b.now.Add(time.Minute)
	if w := e.Tick(ctx, slot); !w.Equal(slot.Add(time.Second)) {
		t.Fatalf("retry at %s", w)
	}
	b.broker.fail = false
	e.Tick(ctx, slot.Add(time.Second))
	if got := b.broker.ids(); got[TaskID("r", slot)] != 1 {
		t.Fatalf("the slot was not fired after the failure: %v", got)
	}
	if e.Stats().Errors.Load() != 1 {
		t.Fatalf("errors %d", e.Stats().Errors.Load())
	}
}

func TestEngineJitterDelaysTheFire(t *testing.T) {
	b := setup(false)
	spec := mustCompile(t, sdk.Schedule{ID: "j", Interval: time.Minute, Jitter: 30 * time.Second})
	e := b.engine([]*Spec{spec}, Options{Reload: time.Hour})
	slot := b.now.Add(time.Minute)
	j := spec.JitterFor(slot)
	ctx := context.Background()
	if w := e.Tick(ctx, b.now); !w.Equal(slot.Add(j)) {
		t.Fatalf("wake %s, want %s", w, slot.Add(j))
	}
	e.Tick(ctx, slot.Add(j-time.Millisecond))
	if len(b.broker.ids()) != 0 && j > 0 {
		t.Fatal("fired before its jitter")
	}
	e.Tick(ctx, slot.Add(j))
	if b.broker.ids()[TaskID("j", slot)] != 1 {
		t.Fatal("not fired at slot + jitter, under the slot's task id")
	}
}

// Under catchup "skip" a slot found more than OnTime late is not fired.
func TestEngineCatchupSkipDropsALateSlot(t *testing.T) {
	b := setup(false)
	spec := mustCompile(t, sdk.Schedule{ID: "s", Interval: time.Minute, Catchup: CatchupSkip})
	e := b.engine([]*Spec{spec}, Options{Reload: time.Hour})
	ctx := context.Background()
	e.Tick(ctx, b.now)
	late := b.now.Add(time.Minute + OnTime + time.Second)
	e.Tick(ctx, late)
	if len(b.broker.ids()) != 0 || e.Stats().Missed.Load() != 1 {
		t.Fatalf("a late slot under skip: fired %v, missed %d", b.broker.ids(), e.Stats().Missed.Load())
	}
	e.Tick(ctx, b.now.Add(2*time.Minute))
	if b.broker.ids()[TaskID("s", b.now.Add(2*time.Minute))] != 1 {
		t.Fatal("the next slot, on time, was not fired")
	}
}

// A one-shot schedule the store has no slot for has not fired: one whose
// time passed within the catch-up window fires, once; a recurring schedule
// seen for the first time starts from now.
func TestEngineNewOneShotInThePastFires(t *testing.T) {
	b := setup(false)
	once := mustCompile(t, sdk.Schedule{ID: "once", Time: b.now.Add(-10 * time.Minute)})
	tooOld := mustCompile(t, sdk.Schedule{ID: "old", Time: b.now.Add(-2 * time.Hour)})
	daily := mustCompile(t, sdk.Schedule{ID: "daily", Cron: "0 * * * *"}) // fired at 00:00, now is 00:00+
	b.now = b.now.Add(time.Second)
	e := b.engine([]*Spec{once, tooOld, daily}, Options{})
	e.Tick(context.Background(), b.now)
	got := b.broker.ids()
	require.Equal(t, map[string]int{TaskID("once", once.Time): 1}, got)
	again := b.engine([]*Spec{once}, Options{})
	again.Tick(context.Background(), b.now.Add(time.Second))
	require.Len(t, b.broker.ids(), 1, "the stored slot keeps a restarted scheduler from firing it again")
}

// A schedule added while the scheduler runs starts from the load before the
// one that found it: a slot in between is not lost.
func TestEngineScheduleAddedBetweenLoads(t *testing.T) {
	b := setup(false)
	var specs []*Spec
	e := New(Options{Load: func(context.Context) ([]*Spec, error) { return specs, nil }, Kicker: b.broker,
		Store: b.store, Reload: 10 * time.Second})
	ctx := context.Background()
	e.Tick(ctx, b.now) // loads nothing
	specs = []*Spec{mustCompile(t, sdk.Schedule{ID: "new", Cron: "5 * * * * *"})}
	e.Tick(ctx, b.now.Add(10*time.Second)) // added at +3s, say; its slot +5s has passed
	require.Equal(t, map[string]int{TaskID("new", b.now.Add(5*time.Second)): 1}, b.broker.ids())
}
