package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// ctxStore refuses calls whose context is done, as a plugin call does.
type ctxStore struct{ marked map[string]time.Time }

func (s *ctxStore) LastFired(context.Context, []string) (map[string]time.Time, error) {
	return s.marked, nil
}

func (s *ctxStore) MarkFired(ctx context.Context, id string, slot time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.marked[id] = slot
	return nil
}

// TestMarkFiredWhileStopping: a fire sent just before the scheduler stops
// is still recorded, so a restart does not fire that slot again.
func TestMarkFiredWhileStopping(t *testing.T) {
	st := &ctxStore{marked: map[string]time.Time{}}
	e := New(Options{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slot := time.Date(2026, 12, 2, 19, 14, 3, 0, time.UTC)
	e.markFired(ctx, "tick", slot)
	require.Equal(t, slot, st.marked["tick"])
	require.Zero(t, e.Stats().Errors.Load())
}

// stoppingKicker stops the scheduler while its first kick is under way and,
// as a broker call does, refuses a call whose context is done.
type stoppingKicker struct {
	stop  context.CancelFunc
	fired []string
}

func (k *stoppingKicker) Kick(ctx context.Context, f Fire) error {
	k.stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	k.fired = append(k.fired, f.TaskID)
	return nil
}

// TestKickFinishesWhileStopping: a fire that began before the scheduler
// stopped is sent, counted and recorded (an abandoned kick may reach the
// broker anyway and would be fired again after a restart); no further slot
// is fired once stopping.
func TestKickFinishesWhileStopping(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &ctxStore{marked: map[string]time.Time{}}
	k := &stoppingKicker{stop: cancel}
	spec, err := Compile(sdk.Schedule{ID: "tick", TaskName: "job", Interval: time.Second, Catchup: CatchupAll})
	require.NoError(t, err)
	start := time.Date(2026, 12, 2, 19, 14, 0, 0, time.UTC)
	st.marked["tick"] = start
	e := New(Options{Store: st, Kicker: k, Load: func(context.Context) ([]*Spec, error) { return []*Spec{spec}, nil }})
	e.Tick(ctx, start.Add(3*time.Second)) // three slots due
	require.Equal(t, []string{TaskID("tick", start.Add(time.Second))}, k.fired)
	require.Equal(t, int64(1), e.Stats().Fires.Load())
	require.Zero(t, e.Stats().Errors.Load())
	require.Equal(t, start.Add(time.Second), st.marked["tick"])
}
