package core

import (
	"strings"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// NamedError returns err under an explicit exception type, which is how the
// task's failure is stored (exc_type) and what a Python client of the result
// sees: "QuotaExceeded" names the type, "module.Type" also sets exc_module,
// so "builtins.ValueError" is raised by Python taskiq as a real ValueError.
// The message, arguments and cause are err's, and errors.Is and errors.As
// still find err. Without it a failure is named after the error's exported
// Go type (PathError), or "Error" for errors.New, fmt.Errorf and other
// unexported types (docs/wire.md, "Running beside Python services").
func NamedError(name string, err error) error {
	te := &wire.TypedError{Type: name, Err: err}
	if i := strings.LastIndexByte(name, '.'); i > 0 && i < len(name)-1 {
		te.Module, te.Type = name[:i], name[i+1:]
	}
	return te
}
