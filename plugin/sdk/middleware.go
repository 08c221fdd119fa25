package sdk

import (
	"context"
	"errors"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Middleware is a value implementing one or more of the hook interfaces
// below (PreSender, PostSender, PreExecuter, ErrorHandler, PostExecuter,
// PostSaver). The host calls only the hooks a middleware implements (or, for
// a value with a Hooks method, the hooks it lists).
//
// Go cannot say "one of these six interfaces" in a type, so Middleware is
// an interface with no methods and the check happens at registration:
// core.WithMiddleware and Serve pass every middleware to CheckMiddleware,
// which refuses a value with no hook, or with a method that looks like a
// hook under a wrong name or signature, with an error naming it.
//
// Order follows taskiq: pre hooks run in the configured order, post hooks
// (post_send, post_execute, post_save, on_error) in reverse.
type Middleware interface{}

// Hook names a middleware hook.
type Hook string

// The six hooks.
const (
	HookPreSend     Hook = "pre_send"
	HookPostSend    Hook = "post_send"
	HookPreExecute  Hook = "pre_execute"
	HookOnError     Hook = "on_error"
	HookPostExecute Hook = "post_execute"
	HookPostSave    Hook = "post_save"
)

// AllHooks lists the hooks in the order of a task's life, in a new slice.
func AllHooks() []Hook {
	return []Hook{HookPreSend, HookPostSend, HookPreExecute, HookOnError, HookPostExecute, HookPostSave}
}

// PreSender runs on the client before a message is sent; it may change it.
type PreSender interface {
	PreSend(ctx context.Context, msg *wire.Message) error
}

// PostSender runs on the client after a message is sent.
type PostSender interface {
	PostSend(ctx context.Context, msg *wire.Message) error
}

// PreExecuter runs on the worker before a task runs; it may change the message.
type PreExecuter interface {
	PreExecute(ctx context.Context, msg *wire.Message) error
}

// ErrorHandler runs on the worker when a task failed, before the result is
// saved. err is the task's error (a *wire.Error when it crossed a process
// boundary). Returning ErrNoResult skips saving the result; returning
// DeadLetter(reason) also moves the message to the dead-letter store.
type ErrorHandler interface {
	OnError(ctx context.Context, msg *wire.Message, res *wire.Result, err error) error
}

// PostExecuter runs on the worker after a task ran, before its result is
// saved; it may change the result.
type PostExecuter interface {
	PostExecute(ctx context.Context, msg *wire.Message, res *wire.Result) error
}

// PostSaver runs on the worker after the result is saved.
type PostSaver interface {
	PostSave(ctx context.Context, msg *wire.Message, res *wire.Result) error
}

// HookLister lets a middleware state its hooks explicitly; plugin client
// shims use it, because they implement every hook method.
type HookLister interface {
	Hooks() []Hook
}

// HooksOf returns the hooks a middleware implements.
func HooksOf(mw Middleware) []Hook {
	if l, ok := mw.(HookLister); ok {
		return l.Hooks()
	}
	var hooks []Hook
	if _, ok := mw.(PreSender); ok {
		hooks = append(hooks, HookPreSend)
	}
	if _, ok := mw.(PostSender); ok {
		hooks = append(hooks, HookPostSend)
	}
	if _, ok := mw.(PreExecuter); ok {
		hooks = append(hooks, HookPreExecute)
	}
	if _, ok := mw.(ErrorHandler); ok {
		hooks = append(hooks, HookOnError)
	}
	if _, ok := mw.(PostExecuter); ok {
		hooks = append(hooks, HookPostExecute)
	}
	if _, ok := mw.(PostSaver); ok {
		hooks = append(hooks, HookPostSave)
	}
	return hooks
}

// ErrNoResult, returned from a hook, tells the host not to save the task's
// result (a retry middleware uses it for intermediate failures).
var ErrNoResult = errors.New("no result")

// ErrDeadLetter is wrapped by DeadLetter's errors.
var ErrDeadLetter = errors.New("dead letter")

// DeadLetter, returned from OnError, makes the host save the result and then
// move the message to the broker's dead-letter store with reason.
func DeadLetter(reason string) error {
	return &deadLetterError{reason: reason}
}

type deadLetterError struct{ reason string }

func (e *deadLetterError) Error() string { return "dead letter: " + e.reason }
func (e *deadLetterError) Unwrap() error { return ErrDeadLetter }

// DeadLetterReason returns the reason given to DeadLetter, if err carries one.
func DeadLetterReason(err error) (string, bool) {
	var d *deadLetterError
	if errors.As(err, &d) {
		return d.reason, true
	}
	return "", false
}
