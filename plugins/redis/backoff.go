package taskiqredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// newBackoff is the delay of loops that must survive a Redis outage:
// listeners retry instead of exiting, so a Redis restart is a pause, not a
// crash.
func newBackoff() *backoff.Backoff { return backoff.New(20*time.Millisecond, 2*time.Second) }

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
	if isAuthError(err) {
		return &authError{fmt.Errorf("redis %s at %s: %w: %w (check username and password, or the user:password of url, and the user's ACL rules; retrying cannot help)", op, addr, ErrAuthFailed, err)}
	}
	return fmt.Errorf("redis %s at %s: %w", op, addr, err)
}

// isOOM reports whether Redis refused a write because it is over maxmemory
// (policy noeviction, or nothing left to evict).
func isOOM(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM ")
}

// ErrAuthFailed marks errors of a Redis that refused the credentials
// (WRONGPASS, NOAUTH) or the user's permissions (NOPERM). It is permanent:
// the same call fails the same way until the configuration or the ACL
// changes; it wraps sdk.ErrUnauthenticated. Across the plugin boundary it
// travels as gRPC code Unauthenticated (PermissionDenied for NOPERM), see
// authError.
var ErrAuthFailed = fmt.Errorf("authentication failed: %w", sdk.ErrUnauthenticated)

// authPrefixes are the error replies of refused credentials or commands
// (the last two are the answers of Redis < 6 and of a server without a
// password to an AUTH).
var authPrefixes = []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH"}

// isAuthError reports whether Redis refused the credentials or a command
// the user may not run.
func isAuthError(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	for _, p := range authPrefixes {
		if strings.HasPrefix(rerr.Error(), p) {
			return true
		}
	}
	return false
}

// authError carries ErrAuthFailed and tells gRPC its code, so that the host
// sees Unauthenticated/PermissionDenied instead of Unknown and can stop
// retrying.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// GRPCStatus is what gRPC sends for this error.
func (e *authError) GRPCStatus() *status.Status {
	code := codes.Unauthenticated
	if strings.Contains(e.err.Error(), "NOPERM") {
		code = codes.PermissionDenied
	}
	return status.New(code, e.err.Error())
}

// checkCredentials sends one PING at configuration time so that a wrong
// password or user fails Configure with an error naming the attribute,
// instead of a worker that retries opening its stream forever. Any other
// failure (Redis down or slow) is left to the calls that follow, which ride
// out outages.
func checkCredentials(ctx context.Context, client redis.UniversalClient, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := client.Ping(ctx).Err()
	if !isAuthError(err) {
		return nil
	}
	attr := "password"
	if strings.HasPrefix(err.Error(), "NOPERM") {
		attr = "username"
	}
	return sdk.AttrError(attr, "Redis at %s refused the credentials: %v (authentication failed; check username and password, or the user:password part of url)", addr, err)
}
