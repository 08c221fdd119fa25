package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Progress states of taskiq.
const (
	StateStarted = "STARTED"
	StateFailure = "FAILURE"
	StateSuccess = "SUCCESS"
	StateRetry   = "RETRY"
)

// Result is what a result backend stores for one task.
type Result struct {
	IsErr         bool            `json:"is_err"`
	Log           *string         `json:"log"`
	ReturnValue   json.RawMessage `json:"return_value"`
	ExecutionTime float64         `json:"execution_time"`
	Labels        map[string]any  `json:"labels"`
	Error         *Error          `json:"error"`
}

// Error is a task failure in taskiq's exception layout. It implements error,
// so a failure read back from a result backend can be returned and wrapped.
type Error struct {
	ExcType            string `json:"exc_type"`
	ExcMessage         []any  `json:"exc_message"`
	ExcModule          string `json:"exc_module"`
	ExcCause           *Error `json:"exc_cause"`
	ExcContext         *Error `json:"exc_context"`
	ExcSuppressContext bool   `json:"exc_suppress_context"`
}

// Error renders "Type: message".
func (e *Error) Error() string {
	parts := make([]string, 0, len(e.ExcMessage))
	for _, m := range e.ExcMessage {
		if s, ok := m.(string); ok {
			parts = append(parts, s)
		} else {
			b, _ := json.Marshal(m)
			parts = append(parts, string(b))
		}
	}
	msg := strings.Join(parts, ", ")
	if e.ExcType == "" {
		return msg
	}
	if msg == "" {
		return e.ExcType
	}
	return e.ExcType + ": " + msg
}

// Unwrap returns the cause, so errors.As walks the chain.
func (e *Error) Unwrap() error {
	if e.ExcCause == nil {
		return nil
	}
	return e.ExcCause
}

// Named lets an error choose its exc_type (and optionally exc_module) on the
// wire instead of its Go type name.
type Named interface {
	ErrorType() string
}

// ExcArgs lets an error choose its exc_message (the exception's argument
// list) on the wire instead of [err.Error()], so a receiver in another
// process can read structured arguments back (a retry delay, for example).
type ExcArgs interface {
	ErrorArgs() []any
}

// FromError converts a Go error to the wire layout: exc_type is the error's
// type name (or what ErrorType returns), exc_module its package path,
// exc_message [err.Error()], and a wrapped error becomes exc_cause.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var we *Error
	if errors.As(err, &we) && err == error(we) {
		return we
	}
	typ, module := typeName(err)
	e := &Error{ExcType: typ, ExcModule: module, ExcMessage: []any{err.Error()}}
	if a, ok := err.(ExcArgs); ok {
		e.ExcMessage = a.ErrorArgs()
	}
	if cause := errors.Unwrap(err); cause != nil {
		e.ExcCause = FromError(cause)
	}
	return e
}

func typeName(err error) (string, string) {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name, module := t.Name(), t.PkgPath()
	if n, ok := err.(Named); ok {
		name = n.ErrorType()
	}
	if name == "" {
		name = t.String()
	}
	return name, module
}

// EncodeResult marshals a result.
func EncodeResult(r *Result) ([]byte, error) {
	return json.Marshal(r)
}

// DecodeResult parses a stored result; errors wrap ErrMalformed.
func DecodeResult(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: result: %v", ErrMalformed, err)
	}
	return &r, nil
}

// Progress is a task's progress report.
type Progress struct {
	State string         `json:"state"`
	Meta  map[string]any `json:"meta"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
