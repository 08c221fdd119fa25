package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// okResult is WIRE.md's success result, as Python's JSONSerializer writes it.
const okResult = `{"is_err": false, "log": null, "return_value": 3, "execution_time": 0.01, ` +
	`"labels": {"max_retries": 3, "retry_on_error": true}, "error": null}`

// errResultPython is a failed result whose exception was raised from
// another one (raise ValueError(...) from KeyError(...)) while handling a
// third, so exc_cause and exc_context both nest.
const errResultPython = `{"is_err": true, "log": "line1\nline2", "return_value": null, "execution_time": 1.5, "labels": {}, ` +
	`"error": {"exc_type": "ValueError", "exc_message": ["boom", 42], "exc_module": "builtins", ` +
	`"exc_cause": {"exc_type": "KeyError", "exc_message": ["k"], "exc_module": "builtins", "exc_cause": null, "exc_context": null, "exc_suppress_context": false}, ` +
	`"exc_context": {"exc_type": "OSError", "exc_message": [2, "No such file"], "exc_module": "builtins", "exc_cause": null, "exc_context": null, "exc_suppress_context": false}, ` +
	`"exc_suppress_context": true}}`

func TestDecodeResult(t *testing.T) {
	t.Parallel()
	r, err := wire.DecodeResult([]byte(okResult))
	require.NoError(t, err)
	require.False(t, r.IsErr)
	require.Nil(t, r.Log)
	require.JSONEq(t, `3`, string(r.ReturnValue))
	require.Equal(t, 0.01, r.ExecutionTime)
	require.Equal(t, map[string]any{"max_retries": float64(3), "retry_on_error": true}, r.Labels)
	require.Nil(t, r.Error)
}

func TestDecodeErrorResult(t *testing.T) {
	t.Parallel()
	r, err := wire.DecodeResult([]byte(errResultPython))
	require.NoError(t, err)
	require.True(t, r.IsErr)
	require.NotNil(t, r.Log)
	require.Equal(t, "line1\nline2", *r.Log)
	e := r.Error
	require.NotNil(t, e)
	require.Equal(t, "ValueError", e.ExcType)
	require.Equal(t, "builtins", e.ExcModule)
	require.Equal(t, []any{"boom", float64(42)}, e.ExcMessage)
	require.True(t, e.ExcSuppressContext)
	require.Equal(t, "ValueError: boom, 42", e.Error())
	require.NotNil(t, e.ExcCause)
	require.Equal(t, "KeyError: k", e.ExcCause.Error())
	require.NotNil(t, e.ExcContext)
	require.Equal(t, `OSError: 2, No such file`, e.ExcContext.Error())

	// The cause chain is a Go error chain.
	require.Same(t, e.ExcCause, errors.Unwrap(e))
	require.Nil(t, errors.Unwrap(e.ExcCause))
}

// TestErrorResultRoundTrip encodes an error result with a cause and decodes
// it again; the encoding keeps WIRE.md's key order.
func TestErrorResultRoundTrip(t *testing.T) {
	t.Parallel()
	log := "traceback"
	in := &wire.Result{
		IsErr:         true,
		Log:           &log,
		ReturnValue:   json.RawMessage(`null`),
		ExecutionTime: 0.25,
		Labels:        map[string]any{"max_retries": float64(3)},
		Error: &wire.Error{
			ExcType: "wrapError", ExcModule: "fmt", ExcMessage: []any{"save: disk full"},
			ExcCause: &wire.Error{ExcType: "Errno", ExcModule: "syscall", ExcMessage: []any{"disk full", float64(28)}},
		},
	}
	enc, err := wire.EncodeResult(in)
	require.NoError(t, err)
	require.Equal(t, `{"is_err":true,"log":"traceback","return_value":null,"execution_time":0.25,"labels":{"max_retries":3},`+
		`"error":{"exc_type":"wrapError","exc_message":["save: disk full"],"exc_module":"fmt",`+
		`"exc_cause":{"exc_type":"Errno","exc_message":["disk full",28],"exc_module":"syscall","exc_cause":null,"exc_context":null,"exc_suppress_context":false},`+
		`"exc_context":null,"exc_suppress_context":false}}`, string(enc))
	out, err := wire.DecodeResult(enc)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

func TestEncodeSuccessResult(t *testing.T) {
	t.Parallel()
	enc, err := wire.EncodeResult(&wire.Result{ReturnValue: json.RawMessage(`{"sum": 3}`), ExecutionTime: 0.01})
	require.NoError(t, err)
	require.Equal(t, `{"is_err":false,"log":null,"return_value":{"sum":3},"execution_time":0.01,"labels":null,"error":null}`, string(enc))
}

func TestDecodeResultMalformed(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"empty":                 ``,
		"truncated":             okResult[:20],
		"is_err a string":       `{"is_err": "yes"}`,
		"exc_message a string":  `{"is_err": true, "error": {"exc_type": "E", "exc_message": "boom"}}`,
		"execution_time a list": `{"execution_time": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := wire.DecodeResult([]byte(src))
			require.ErrorIs(t, err, wire.ErrMalformed)
		})
	}
}

func TestProgressLayout(t *testing.T) {
	t.Parallel()
	enc, err := json.Marshal(wire.Progress{State: wire.StateStarted, Meta: map[string]any{"done": 3}})
	require.NoError(t, err)
	require.Equal(t, `{"state":"STARTED","meta":{"done":3}}`, string(enc))
	var p wire.Progress
	require.NoError(t, json.Unmarshal([]byte(`{"state": "RETRY", "meta": null}`), &p))
	require.Equal(t, wire.StateRetry, p.State)
}

// namedError picks its exc_type, as a task that serves Python callers does.
type namedError struct{ msg string }

func (e *namedError) Error() string     { return e.msg }
func (e *namedError) ErrorType() string { return "ValueError" }

// retryError carries structured arguments for a receiver in another process.
type retryError struct {
	delay float64
	cause error
}

func (e retryError) Error() string    { return fmt.Sprintf("retry in %gs", e.delay) }
func (e retryError) ErrorArgs() []any { return []any{"retry", e.delay} }
func (e retryError) Unwrap() error    { return e.cause }

func TestFromError(t *testing.T) {
	t.Parallel()
	require.Nil(t, wire.FromError(nil))

	base := errors.New("disk full")
	e := wire.FromError(base)
	require.Equal(t, &wire.Error{ExcType: "Error", ExcModule: "errors", ExcMessage: []any{"disk full"}}, e)

	// A wrapped error becomes exc_cause, recursively.
	wrapped := fmt.Errorf("save result: %w", fmt.Errorf("write: %w", base))
	e = wire.FromError(wrapped)
	require.Equal(t, "Error", e.ExcType, "fmt.Errorf: a plain Error")
	require.Equal(t, "fmt", e.ExcModule)
	require.Equal(t, []any{"save result: write: disk full"}, e.ExcMessage)
	require.NotNil(t, e.ExcCause)
	require.Equal(t, []any{"write: disk full"}, e.ExcCause.ExcMessage)
	require.NotNil(t, e.ExcCause.ExcCause)
	require.Equal(t, "Error", e.ExcCause.ExcCause.ExcType)
	require.Nil(t, e.ExcCause.ExcCause.ExcCause)

	// A standard library error type keeps its package path as the module.
	e = wire.FromError(&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist})
	require.Equal(t, "PathError", e.ExcType)
	require.Equal(t, "io/fs", e.ExcModule)
	require.Equal(t, "Error", e.ExcCause.ExcType)

	// Named chooses exc_type.
	e = wire.FromError(fmt.Errorf("task: %w", &namedError{msg: "bad input"}))
	require.Equal(t, "ValueError", e.ExcCause.ExcType)
	require.Equal(t, "github.com/taskiq-go/taskiq/plugin/sdk/wire_test", e.ExcCause.ExcModule)
	require.Equal(t, []any{"bad input"}, e.ExcCause.ExcMessage)

	// ExcArgs chooses exc_message; a value (not pointer) error type works too.
	e = wire.FromError(retryError{delay: 2.5, cause: base})
	require.Equal(t, "Error", e.ExcType, "an unexported type: a plain Error")
	require.Equal(t, []any{"retry", 2.5}, e.ExcMessage)
	require.Equal(t, "Error", e.ExcCause.ExcType)

	// A *wire.Error read back from a backend passes through unchanged...
	we := &wire.Error{ExcType: "KeyError", ExcMessage: []any{"k"}}
	require.Same(t, we, wire.FromError(we))
	// ...and stays the cause when a Go error wraps it.
	e = wire.FromError(fmt.Errorf("remote task failed: %w", we))
	require.Same(t, we, e.ExcCause)

	// errors.Join has several causes and no single Unwrap: no exc_cause,
	// but the message keeps every part.
	e = wire.FromError(errors.Join(errors.New("a"), errors.New("b")))
	require.Nil(t, e.ExcCause)
	require.Equal(t, []any{"a\nb"}, e.ExcMessage)
}

// TestFromErrorSurvivesTheWire encodes a converted Go error and reads it
// back as an error whose chain errors.As can walk.
func TestFromErrorSurvivesTheWire(t *testing.T) {
	t.Parallel()
	res := &wire.Result{IsErr: true, Error: wire.FromError(fmt.Errorf("outer: %w", &namedError{msg: "inner"}))}
	enc, err := wire.EncodeResult(res)
	require.NoError(t, err)
	back, err := wire.DecodeResult(enc)
	require.NoError(t, err)
	var asErr error = back.Error
	require.EqualError(t, asErr, "Error: outer: inner")
	var cause *wire.Error
	require.True(t, errors.As(errors.Unwrap(asErr), &cause))
	require.Equal(t, "ValueError: inner", cause.Error())
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "E", (&wire.Error{ExcType: "E"}).Error())
	require.Equal(t, "just text", (&wire.Error{ExcMessage: []any{"just text"}}).Error())
	require.Equal(t, `E: a, {"k":[1,null]}, true`, (&wire.Error{ExcType: "E", ExcMessage: []any{"a", map[string]any{"k": []any{1, nil}}, true}}).Error())
}

// TestDecodeResultFastPath checks that the results EncodeResult writes take
// the fast path and decode as encoding/json decodes them, and that what the
// fast path does not handle still decodes through encoding/json.
func TestDecodeResultFastPath(t *testing.T) {
	log := "a log"
	for _, r := range []*wire.Result{
		{ReturnValue: json.RawMessage(`{"sum":3,"xs":[1,2]}`), ExecutionTime: 0.25, Labels: map[string]any{"a": "x", "n": int64(3), "f": 1.5, "b": true}},
		{IsErr: true, ReturnValue: json.RawMessage(`null`), Labels: map[string]any{}},
		{},
	} {
		enc, err := wire.EncodeResult(r)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := wire.DecodeResultFast(enc)
		if !ok {
			t.Fatalf("the fast path refused %s", enc)
		}
		std, err := wire.DecodeResultStd(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("fast %#v, encoding/json %#v", fast, std)
		}
	}
	withLog := &wire.Result{Log: &log, Error: &wire.Error{ExcType: "ValueError", ExcMessage: []any{"bad"}}}
	enc, err := wire.EncodeResult(withLog)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := wire.DecodeResultFast(enc); ok {
		t.Fatalf("the fast path took an error object: %s", enc)
	}
	got, err := wire.DecodeResult(enc)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Log != log || got.Error == nil || got.Error.ExcType != "ValueError" {
		t.Fatalf("decoded %#v", got)
	}
}

// TestResultLabelRoundTrip: a result label encoded with AppendResultLabel
// decodes with DecodeResultLabel to what DecodeResult gives the same label
// inside a whole result.
func TestResultLabelRoundTrip(t *testing.T) {
	for _, v := range []any{"text", "needs \"escapes\" <&>", int64(3), 3, 1.5, true, false, nil,
		[]any{"a", 1.0}, map[string]any{"k": "v"}} {
		enc, err := wire.AppendResultLabel(nil, v)
		require.NoError(t, err)
		got, err := wire.DecodeResultLabel(enc)
		require.NoError(t, err)
		whole, err := wire.EncodeResult(&wire.Result{Labels: map[string]any{"x": v}})
		require.NoError(t, err)
		want, err := wire.DecodeResult(whole)
		require.NoError(t, err)
		require.Equal(t, want.Labels["x"], got, "label %#v", v)
	}
	_, err := wire.AppendResultLabel(nil, func() {})
	require.Error(t, err, "a value JSON cannot carry")
}
