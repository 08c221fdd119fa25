package core_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

func TestNamedError(t *testing.T) {
	t.Parallel()
	base := errors.New("over quota")
	for name, want := range map[string][2]string{
		"QuotaExceeded":       {"QuotaExceeded", "errors"},
		"builtins.ValueError": {"ValueError", "builtins"},
		"app.errors.Quota":    {"Quota", "app.errors"},
		"Trailing.":           {"Trailing.", "errors"},
	} {
		err := core.NamedError(name, base)
		require.ErrorIs(t, err, base)
		require.Equal(t, "over quota", err.Error())
		e := wire.FromError(err)
		require.Equal(t, want[0], e.ExcType, name)
		require.Equal(t, want[1], e.ExcModule, name)
	}
}
