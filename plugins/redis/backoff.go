package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// backoff is a capped exponential delay for loops that must survive a Redis
// outage: listeners retry forever instead of exiting, so a Redis restart is
// a pause, not a crash.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func newBackoff() *backoff { return &backoff{min: 20 * time.Millisecond, max: 2 * time.Second} }

// wait sleeps for the next delay; it returns false when ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur *= 2
		if b.cur > b.max {
			b.cur = b.max
		}
	}
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *backoff) reset() { b.cur = 0 }

// serverErrorPrefixes are Redis error replies that mean "try again later"
// rather than "your command is wrong".
var serverErrorPrefixes = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY "}

// isUnavailable reports whether err means Redis could not be reached (or is
// not ready), as opposed to a command the server rejected.
func isUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range serverErrorPrefixes {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return !errors.Is(err, redis.Nil)
}

// wrapErr adds the operation and the address (never the password) and marks
// connection failures with sdk.ErrUnavailable so the host knows to retry.
func wrapErr(op, addr string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redis %s: %w", op, sdk.ErrClosed)
	}
	if isUnavailable(err) {
		return fmt.Errorf("redis %s at %s: %w (is Redis running and reachable? %w)", op, addr, sdk.ErrUnavailable, err)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") {
		return fmt.Errorf("redis %s at %s: %w (check username and password, or the user:password of url)", op, addr, err)
	}
	return fmt.Errorf("redis %s at %s: %w", op, addr, err)
}

// isOOM reports whether Redis refused a write because it is over maxmemory
// (policy noeviction, or nothing left to evict).
func isOOM(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM ")
}
