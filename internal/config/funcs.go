package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// maxFileFuncSize bounds file(): it is meant for certificates and secrets,
// and a mistaken path to a large file should fail fast, not fill memory.
const maxFileFuncSize = 1 << 20

// newEvalContext returns the context every expression of the file is
// evaluated in: no variables, and the functions env() and file().
func newEvalContext(dir string, lookupEnv func(string) (string, bool)) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env":  envFunc(lookupEnv),
			"file": fileFunc(dir),
		},
	}
}

// envUnsetError is returned by env() for an unset variable without default;
// fixFuncDiags turns it into a dedicated diagnostic.
type envUnsetError struct{ name string }

func (e *envUnsetError) Error() string {
	return fmt.Sprintf("environment variable %s is not set and no default was given", e.name)
}

// envFunc implements env("NAME") and env("NAME", "default"). A variable set
// to the empty string counts as set.
func envFunc(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or the default when it is unset.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, function.NewArgErrorf(2, "env takes a variable name and at most one default")
			}
			name := args[0].AsString()
			if name == "" {
				return cty.NilVal, function.NewArgErrorf(0, "the variable name must not be empty")
			}
			if v, ok := lookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, &envUnsetError{name: name}
		},
	})
}

// fileFunc implements file("path"): the contents of a file, relative to the
// configuration's directory. It lets a certificate or password live in its
// own file instead of in taskiq.hcl.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a file, relative to the configuration's directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			st, err := os.Stat(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("read %s: %w", p, err)
			}
			// Devices and FIFOs report no size and may never end.
			if !st.Mode().IsRegular() {
				return cty.NilVal, fmt.Errorf("%s is not a regular file; file() reads regular files only", p)
			}
			f, err := os.Open(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("read %s: %w", p, err)
			}
			defer f.Close()
			b, err := io.ReadAll(io.LimitReader(f, maxFileFuncSize+1))
			if err != nil {
				return cty.NilVal, fmt.Errorf("read %s: %w", p, err)
			}
			if len(b) > maxFileFuncSize {
				return cty.NilVal, fmt.Errorf("%s is over %d bytes; file() reads at most that", p, maxFileFuncSize)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// fixFuncDiags rewrites HCL's generic "Error in function call" for an unset
// env() variable into a diagnostic that names the variable and points at the
// whole call, which is what the user has to edit.
func fixFuncDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		extra, ok := hcl.DiagnosticExtra[hclsyntax.FunctionCallDiagExtra](d)
		if !ok {
			continue
		}
		var unset *envUnsetError
		if !errors.As(extra.FunctionCallError(), &unset) {
			continue
		}
		d.Summary = "Environment variable not set"
		d.Detail = fmt.Sprintf("env(%q) has no default and %s is not set. Export %s, or give a default: env(%q, \"value\").",
			unset.name, unset.name, unset.name, unset.name)
		if call, ok := d.Expression.(*hclsyntax.FunctionCallExpr); ok {
			d.Subject = call.Range().Ptr()
		} else if d.Context != nil {
			d.Subject = d.Context
		}
	}
	return diags
}
