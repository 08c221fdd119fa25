package wire_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// GenericError is an exported generic error type.
type GenericError[T any] struct{ v T }

func (e GenericError[T]) Error() string { return fmt.Sprint(e.v) }

type quietError struct{}

func (quietError) Error() string { return "quiet" }

// TestErrorNamesForPython: what exc_type Python sees for Go errors.
func TestErrorNamesForPython(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		typ  string
		mod  string
		desc string
	}{
		{errors.New("x"), "Error", "errors", "errors.New"},
		{fmt.Errorf("x: %w", errors.New("y")), "Error", "fmt", "fmt.Errorf with %w"},
		{fmt.Errorf("x"), "Error", "errors", "fmt.Errorf without %w"},
		{errors.Join(errors.New("a"), errors.New("b")), "Error", "errors", "errors.Join"},
		{quietError{}, "Error", "github.com/taskiq-go/taskiq/plugin/sdk/wire_test", "unexported type"},
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, "PathError", "io/fs", "exported type"},
		{&strconv.NumError{Func: "Atoi", Num: "x", Err: strconv.ErrSyntax}, "NumError", "strconv", "exported type"},
		{GenericError[int]{v: 1}, "GenericError", "github.com/taskiq-go/taskiq/plugin/sdk/wire_test", "type parameters dropped"},
	} {
		e := wire.FromError(tc.err)
		require.Equal(t, tc.typ, e.ExcType, tc.desc)
		require.Equal(t, tc.mod, e.ExcModule, tc.desc)
	}
}

func TestTypedError(t *testing.T) {
	t.Parallel()
	cause := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	err := fmt.Errorf("load config: %w", cause)
	typed := &wire.TypedError{Type: "ValueError", Module: "builtins", Err: err}
	e := wire.FromError(typed)
	require.Equal(t, "ValueError", e.ExcType)
	require.Equal(t, "builtins", e.ExcModule)
	require.Equal(t, []any{"load config: open /x: file does not exist"}, e.ExcMessage)
	require.Equal(t, "PathError", e.ExcCause.ExcType, "the cause is err's cause, not err again")
	require.ErrorIs(t, typed, fs.ErrNotExist)
	require.Equal(t, err.Error(), typed.Error())

	// Without a module, err's module stays.
	e = wire.FromError(&wire.TypedError{Type: "QuotaExceeded", Err: errors.New("over quota")})
	require.Equal(t, "QuotaExceeded", e.ExcType)
	require.Equal(t, "errors", e.ExcModule)
	require.Nil(t, e.ExcCause)
}
