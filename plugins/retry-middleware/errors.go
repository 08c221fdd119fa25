package retry

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Wire type names of the task-side markers. They are matched on exc_type
// alone, so a Python task can raise an exception class of the same name and
// get the same treatment.
const (
	NoRetryType    = "NoRetry"
	RetryAfterType = "RetryAfter"
)

// NoRetry marks a task failure as final: the retry middleware does not retry
// it, whatever the labels say (use it for errors that another attempt cannot
// fix, like invalid input). The result stores the error with exc_type
// "NoRetry" and err as its exc_cause. err may be nil.
//
// A task module imports this package only for NoRetry and RetryAfter; the
// middleware itself runs in the worker host as a plugin.
func NoRetry(err error) error {
	return &NoRetryError{Err: err}
}

// NoRetryError is the error NoRetry returns; find it with errors.As.
type NoRetryError struct {
	Err error
}

func (e *NoRetryError) Error() string {
	if e.Err == nil {
		return "no retry"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error, so errors.Is and errors.As see through
// the marker.
func (e *NoRetryError) Unwrap() error { return e.Err }

// ErrorType names the marker on the wire (wire.Named).
func (e *NoRetryError) ErrorType() string { return NoRetryType }

// RetryAfter asks the retry middleware to retry the task after d instead of
// the configured backoff (for example the Retry-After of a rate-limited API).
// The attempt still counts against max_retries, and the task must still be
// retryable (retry_on_error or default_retry_label). err may be nil ("not
// ready yet, try again later").
//
// On the wire the error has exc_type "RetryAfter" and exc_message
// [err.Error(), seconds].
func RetryAfter(d time.Duration, err error) error {
	if d < 0 {
		d = 0
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// RetryAfterError is the error RetryAfter returns; find it with errors.As.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return "retry after " + e.Delay.String()
	}
	return "retry after " + e.Delay.String() + ": " + e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// ErrorType names the marker on the wire (wire.Named).
func (e *RetryAfterError) ErrorType() string { return RetryAfterType }

// ErrorArgs is the exception's argument list on the wire (exc_message): the
// wrapped error's message and the delay in seconds, which is how the
// middleware reads the delay back in another process.
func (e *RetryAfterError) ErrorArgs() []any {
	msg := e.Error()
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return []any{msg, e.Delay.Seconds()}
}

// Interface guards
var (
	_ wire.Named   = (*NoRetryError)(nil)
	_ wire.Named   = (*RetryAfterError)(nil)
	_ wire.ExcArgs = (*RetryAfterError)(nil)
)

// maxChain bounds the walk down exc_cause; a result from another process is
// untrusted input.
const maxChain = 64

// causeChain lists e and its causes, outermost first.
func causeChain(e *wire.Error) []*wire.Error {
	var out []*wire.Error
	for ; e != nil && len(out) < maxChain; e = e.ExcCause {
		out = append(out, e)
	}
	return out
}

// matchesAny reports whether any error of the chain has one of names as its
// exc_type or as "exc_module.exc_type".
func matchesAny(chain []*wire.Error, names []string) bool {
	for _, e := range chain {
		for _, n := range names {
			if n == e.ExcType || (e.ExcModule != "" && n == e.ExcModule+"."+e.ExcType) {
				return true
			}
		}
	}
	return false
}

// retryAfterDelay finds the first RetryAfter marker of the chain and returns
// its delay; ok is false when there is none or its delay is unreadable.
func retryAfterDelay(chain []*wire.Error) (time.Duration, bool) {
	for _, e := range chain {
		if e.ExcType != RetryAfterType {
			continue
		}
		if len(e.ExcMessage) < 2 {
			return 0, false
		}
		return secondsToDuration(e.ExcMessage[1])
	}
	return 0, false
}

// secondsToDuration reads a number of seconds as decoded from JSON.
func secondsToDuration(v any) (time.Duration, bool) {
	var s float64
	switch x := v.(type) {
	case float64:
		s = x
	case float32:
		s = float64(x)
	case int64:
		s = float64(x)
	case int:
		s = float64(x)
	case interface{ Float64() (float64, error) }: // json.Number
		f, err := x.Float64()
		if err != nil {
			return 0, false
		}
		s = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		s = f
	default:
		return 0, false
	}
	return clampSeconds(s)
}

// clampSeconds converts seconds to a duration in [0, math.MaxInt64].
func clampSeconds(s float64) (time.Duration, bool) {
	switch {
	case math.IsNaN(s):
		return 0, false
	case s <= 0:
		return 0, true
	case s >= float64(math.MaxInt64)/float64(time.Second):
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(s * float64(time.Second)), true
}

// defaultRand is the jitter source when none is injected; the top-level
// math/rand/v2 functions are safe for concurrent use.
func defaultRand() float64 { return rand.Float64() }
