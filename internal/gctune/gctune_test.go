package gctune_test

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/internal/gctune"
)

func TestApplySetsTheDefaultOnlyWhenGOGCIsUnset(t *testing.T) {
	t.Setenv("GOGC", "100") // restored after the test
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	require.NoError(t, os.Unsetenv("GOGC"))
	gctune.Apply()
	require.Equal(t, gctune.DefaultGOGC, debug.SetGCPercent(100))

	t.Setenv("GOGC", "77")
	debug.SetGCPercent(77)
	gctune.Apply()
	require.Equal(t, 77, debug.SetGCPercent(100), "an explicit GOGC wins")
}
