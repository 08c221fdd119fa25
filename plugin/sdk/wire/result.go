package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/token"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/taskiq-go/taskiq/internal/plainjson"
)

// Progress states of taskiq.
const (
	StateStarted = "STARTED"
	StateFailure = "FAILURE"
	StateSuccess = "SUCCESS"
	StateRetry   = "RETRY"
)

// ErrorTypeCancelled is the exc_type of the error stored for a task that
// was cancelled (core.CancelledError). Middlewares branch on it: a
// cancelled task is not retried.
const ErrorTypeCancelled = "TaskCancelledError"

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

// Named lets an error choose its exc_type on the wire instead of its Go type
// name (TypedError also sets exc_module).
type Named interface {
	ErrorType() string
}

// ExcArgs lets an error choose its exc_message (the exception's argument
// list) on the wire instead of [err.Error()], so a receiver in another
// process can read structured arguments back (a retry delay, for example).
type ExcArgs interface {
	ErrorArgs() []any
}

// FromError converts a Go error to the wire layout: exc_type is the name of
// the error's type when it is exported (type parameters dropped), "Error"
// for an unexported one (errors.New, fmt.Errorf, errors.Join), or what
// ErrorType returns; exc_module is its package path; exc_message is
// [err.Error()] (or ErrorArgs); a wrapped error becomes exc_cause. A
// *TypedError gives its own type and module to the error it wraps.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var we *Error
	if errors.As(err, &we) && err == error(we) {
		return we
	}
	if te, ok := err.(*TypedError); ok {
		e := *FromError(te.Err)
		e.ExcType = te.Type
		if te.Module != "" {
			e.ExcModule = te.Module
		}
		return &e
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

// TypedError is Err under an explicit exception type: Type becomes exc_type
// and Module, when set, exc_module, in place of Err's own (Err's message,
// arguments and cause are kept). Python taskiq raises the class Module.Type when that
// module is loaded ("builtins" and "ValueError" make a real ValueError),
// else an exception class of that name.
type TypedError struct {
	Type, Module string
	Err          error
}

// Error is Err's message.
func (e *TypedError) Error() string { return e.Err.Error() }

// Unwrap returns Err, so errors.Is and errors.As see through the renaming.
func (e *TypedError) Unwrap() error { return e.Err }

// ErrorType is Type.
func (e *TypedError) ErrorType() string { return e.Type }

func typeName(err error) (string, string) {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name, module := t.Name(), t.PkgPath()
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i] // Generic[T] -> Generic
	}
	if n, ok := err.(Named); ok {
		return n.ErrorType(), module
	}
	if !token.IsExported(name) {
		name = "Error" // errors.New, fmt.Errorf, errors.Join, other unexported types
	}
	return name, module
}

// EncodeResult marshals a result.
func EncodeResult(r *Result) ([]byte, error) {
	if b, ok := appendResultFast(make([]byte, 0, 128+len(r.ReturnValue)+labelsSize(r.Labels)), r); ok {
		return b, nil
	}
	return json.Marshal(r)
}

// appendResultFast writes what json.Marshal writes for the common result:
// no log, no error, labels of plain types and a compact return value
// without characters json.Marshal would escape. Anything else returns false
// and takes json.Marshal; the fuzz test holds the two to the same bytes.
func appendResultFast(b []byte, r *Result) ([]byte, bool) {
	if r.Log != nil || r.Error != nil || math.IsNaN(r.ExecutionTime) || math.IsInf(r.ExecutionTime, 0) {
		return nil, false
	}
	ret := r.ReturnValue
	if ret == nil { // json.Marshal writes nil as null but fails on empty
		ret = json.RawMessage("null")
	}
	for _, c := range ret {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2: // 0xE2 starts U+2028 and U+2029
			return nil, false
		}
	}
	if !validJSON(ret) {
		return nil, false
	}
	if r.IsErr {
		b = append(b, `{"is_err":true,"log":null,"return_value":`...)
	} else {
		b = append(b, `{"is_err":false,"log":null,"return_value":`...)
	}
	b = append(b, ret...)
	b = append(b, `,"execution_time":`...)
	b = appendJSONFloat(b, r.ExecutionTime)
	b = append(b, `,"labels":`...)
	if r.Labels == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		var keyBuf [8]string
		for i, k := range appendSortedKeys(keyBuf[:0], r.Labels) {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = plainjson.AppendString(b, k); !ok {
				return nil, false
			}
			b = append(b, ':')
			switch v := r.Labels[k].(type) {
			case string:
				if b, ok = plainjson.AppendString(b, v); !ok {
					return nil, false
				}
			case int64:
				b = strconv.AppendInt(b, v, 10)
			case int:
				b = strconv.AppendInt(b, int64(v), 10)
			case bool:
				b = strconv.AppendBool(b, v)
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return nil, false
				}
				b = appendJSONFloat(b, v)
			default:
				return nil, false
			}
		}
		b = append(b, '}')
	}
	return append(b, `,"error":null}`...), true
}

// appendJSONFloat formats a finite float as encoding/json does.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// DecodeResult parses a stored result; errors wrap ErrMalformed.
func DecodeResult(b []byte) (*Result, error) {
	if r, ok := decodeResultFast(b); ok {
		return r, nil
	}
	return decodeResultStd(b)
}

// decodeResultStd is DecodeResult through encoding/json.
func decodeResultStd(b []byte) (*Result, error) {
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
	return appendSortedKeys(make([]string, 0, len(m)), m)
}

// appendSortedKeys appends m's keys to keys, sorted. With a keys of
// enough capacity on the caller's stack, listing a typical message's
// labels allocates nothing.
func appendSortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// labelsSize is about how many bytes the labels of a message take encoded
// (keys twice, for labels_types), for sizing the buffer once.
func labelsSize(labels map[string]any) int {
	n := 0
	for k, v := range labels {
		n += 2*len(k) + 12
		if s, ok := v.(string); ok {
			n += len(s)
		} else {
			n += 24
		}
	}
	return n
}
