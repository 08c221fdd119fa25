package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
