package retry

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Strategy is how the delay grows from one attempt to the next.
type Strategy string

// Backoff strategies.
const (
	// Fixed waits the base delay before every retry.
	Fixed Strategy = "fixed"
	// Linear waits base × attempt.
	Linear Strategy = "linear"
	// Exponential waits base × 2^(attempt-1), the default: it backs off fast
	// from a service that is down without delaying the first retry much.
	Exponential Strategy = "exponential"
)

// ParseStrategy reads a strategy name, case-insensitively.
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(strings.ToLower(strings.TrimSpace(s))); st {
	case Fixed, Linear, Exponential:
		return st, nil
	}
	return "", fmt.Errorf("unknown backoff %q; use \"fixed\", \"linear\" or \"exponential\"", s)
}

// Backoff returns how long to wait before retrying after the failed attempt
// (1 for the first execution). The result is always within [0, max]: the
// growth is capped at max before jitter, and computed without overflowing
// however large attempt is.
//
// With jitter the delay is "full jitter": uniform in [0, computed], using rnd
// (which returns values in [0, 1); nil means math/rand/v2). Full jitter
// spreads retries of tasks that failed together (a dependency went down) so
// they do not hit it again in lockstep.
//
// A base or max that is zero or negative gives 0; an attempt below 1 counts
// as 1; an unknown strategy counts as Exponential.
func Backoff(strategy Strategy, base, max time.Duration, attempt int, jitter bool, rnd func() float64) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	if attempt < 1 {
		attempt = 1
	}
	var d time.Duration
	switch strategy {
	case Fixed:
		d = base
	case Linear:
		// base*attempt > max  ⇔  attempt > max/base (integer division is
		// exact enough here: it only decides whether to cap).
		if time.Duration(attempt) > max/base {
			d = max
		} else {
			d = base * time.Duration(attempt)
		}
	default:
		shift := attempt - 1
		// base<<shift > max  ⇔  base > max>>shift, compared before shifting
		// so it cannot overflow; max>>shift is 0 for shifts of 63 and more,
		// so huge attempts cap as well.
		if base > max>>uint(shift) {
			d = max
		} else {
			d = base << uint(shift)
		}
	}
	if d > max {
		d = max
	}
	if jitter {
		d = fullJitter(d, rnd)
	}
	return d
}

// fullJitter returns a duration uniform in [0, d].
func fullJitter(d time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = defaultRand
	}
	r := rnd()
	if math.IsNaN(r) || r < 0 {
		r = 0
	}
	j := float64(d) * r
	// float64(d) rounds large durations up; never return more than d.
	if j >= float64(d) {
		return d
	}
	return time.Duration(j)
}
