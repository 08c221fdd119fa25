package inmemory

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFifoMatchesModel checks the reuse and compaction of fifoOf against a
// plain slice under a random mix of pushes and pops.
func TestFifoMatchesModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var f fifoOf[int]
	var model []int
	next := 0
	for range 100_000 {
		if len(model) == 0 || rng.IntN(5) < 3 {
			f.push(next)
			model = append(model, next)
			next++
			continue
		}
		require.Equal(t, model[0], f.front())
		require.Equal(t, model[0], f.pop())
		model = model[1:]
		require.Equal(t, len(model), f.len())
	}
}
