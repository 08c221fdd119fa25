package retry

import (
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"testing"
	"testing/quick"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffStrategies(t *testing.T) {
	t.Parallel()
	const s = time.Second
	tests := []struct {
		strategy Strategy
		base     time.Duration
		max      time.Duration
		attempt  int
		want     time.Duration
	}{
		{Fixed, s, time.Minute, 1, s},
		{Fixed, s, time.Minute, 50, s},
		{Fixed, 2 * time.Minute, time.Minute, 1, time.Minute},
		{Linear, s, time.Minute, 1, s},
		{Linear, s, time.Minute, 3, 3 * s},
		{Linear, s, time.Minute, 60, time.Minute},
		{Linear, s, time.Minute, 61, time.Minute},
		{Linear, s, time.Minute, math.MaxInt, time.Minute},
		{Exponential, s, time.Minute, 1, s},
		{Exponential, s, time.Minute, 2, 2 * s},
		{Exponential, s, time.Minute, 3, 4 * s},
		{Exponential, s, time.Minute, 6, 32 * s},
		{Exponential, s, time.Minute, 7, time.Minute},
		{Exponential, s, time.Minute, 64, time.Minute},
		{Exponential, s, time.Minute, 1000, time.Minute},
		{Exponential, 1, math.MaxInt64, 63, 1 << 62},
		{Exponential, 1, math.MaxInt64, 64, math.MaxInt64},
		{Exponential, s, time.Minute, 0, s},
		{Exponential, s, time.Minute, -5, s},
		{"bogus", s, time.Minute, 3, 4 * s},
		{Exponential, 0, time.Minute, 3, 0},
		{Exponential, s, 0, 3, 0},
		{Linear, -s, time.Minute, 3, 0},
	}
	for _, tt := range tests {
		got := Backoff(tt.strategy, tt.base, tt.max, tt.attempt, false, nil)
		require.Equal(t, tt.want, got, "%s base=%s max=%s attempt=%d", tt.strategy, tt.base, tt.max, tt.attempt)
	}
}

// TestBackoffProperties checks, over random inputs, that the backoff is never
// negative, never above max, does not overflow at huge attempts, and without
// jitter never shrinks from one attempt to the next.
func TestBackoffProperties(t *testing.T) {
	t.Parallel()
	strategies := []Strategy{Fixed, Linear, Exponential}
	prop := func(si uint8, base, max int64, attempt uint16, jitterSeed uint64) bool {
		st := strategies[int(si)%len(strategies)]
		b, m := time.Duration(base), time.Duration(max)
		a := int(attempt)
		rnd := rand.New(rand.NewPCG(jitterSeed, 7)).Float64
		d := Backoff(st, b, m, a, false, nil)
		next := Backoff(st, b, m, a+1, false, nil)
		j := Backoff(st, b, m, a, true, rnd)
		if d < 0 || j < 0 || next < d || j > d {
			return false
		}
		if m > 0 && (d > m || next > m) {
			return false
		}
		if m <= 0 && d != 0 {
			return false
		}
		// Large attempts saturate at the cap instead of wrapping around.
		huge := Backoff(st, b, m, 1000, false, nil)
		return huge >= d && huge >= 0 && (m <= 0 || huge <= m)
	}
	cfg := &quick.Config{MaxCount: 5000, Rand: mrand.New(mrand.NewSource(42))}
	require.NoError(t, quick.Check(prop, cfg))

	// Inputs with a meaningful shape (positive, max >= base), which random
	// int64s rarely produce together.
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		st := strategies[r.IntN(len(strategies))]
		base := time.Duration(r.Int64N(int64(time.Hour))) + 1
		max := base + time.Duration(r.Int64N(int64(24*time.Hour)))
		prev := time.Duration(0)
		for _, a := range []int{1, 2, 3, 5, 8, 13, 40, 62, 63, 64, 65, 100, 1000, math.MaxInt32, math.MaxInt} {
			d := Backoff(st, base, max, a, false, nil)
			require.GreaterOrEqual(t, d, prev, "%s base=%s max=%s attempt=%d", st, base, max, a)
			require.LessOrEqual(t, d, max)
			require.GreaterOrEqual(t, d, min(base, max))
			prev = d
		}
		if st != Fixed {
			require.Equal(t, max, Backoff(st, base, max, math.MaxInt, false, nil), "saturates for %s", st)
		}
	}
	require.Equal(t, time.Duration(math.MaxInt64),
		Backoff(Exponential, time.Hour, math.MaxInt64, 1000, false, nil))
	require.Equal(t, time.Duration(math.MaxInt64),
		Backoff(Linear, time.Hour, math.MaxInt64, math.MaxInt, false, nil))
}

// TestBackoffFullJitter draws many jittered delays with a seeded source: they
// must spread over [0, computed] with a mean near half of it.
func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	const n = 20000
	capped := 8 * time.Second // exponential attempt 4 with base 1s
	rnd := rand.New(rand.NewPCG(2026, 11)).Float64
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	var sum float64
	for range n {
		d := Backoff(Exponential, time.Second, time.Minute, 4, true, rnd)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, capped)
		lo, hi = min(lo, d), max(hi, d)
		sum += float64(d)
	}
	require.Less(t, lo, hi)
	require.Less(t, lo, capped/100, "some draws land near 0")
	require.Greater(t, hi, capped*99/100, "some draws land near the cap")
	mean := time.Duration(sum / n)
	require.InDelta(t, float64(capped/2), float64(mean), float64(capped)*0.02, "mean %s", mean)
}

func TestBackoffJitterBadSource(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{math.NaN(), -1, 1, 2, math.Inf(1), math.Nextafter(1, 0)} {
		d := Backoff(Fixed, math.MaxInt64, math.MaxInt64, 1, true, func() float64 { return r })
		require.GreaterOrEqual(t, d, time.Duration(0), "r=%v", r)
		require.LessOrEqual(t, d, time.Duration(math.MaxInt64), "r=%v", r)
	}
	require.Equal(t, time.Duration(0), Backoff(Fixed, time.Second, time.Minute, 1, true, func() float64 { return math.NaN() }))
	// nil means the default source, which stays within bounds too.
	for range 100 {
		d := Backoff(Fixed, time.Second, time.Minute, 1, true, nil)
		require.True(t, d >= 0 && d <= time.Second, "%s", d)
	}
}

func TestParseStrategy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Strategy{"fixed": Fixed, "Linear": Linear, " EXPONENTIAL ": Exponential} {
		got, err := ParseStrategy(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := ParseStrategy("expo")
	require.ErrorContains(t, err, `unknown backoff "expo"; use "fixed", "linear" or "exponential"`)
}
