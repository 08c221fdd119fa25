package core_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugins/inmemory"
)

// Load applies each of the caller's options exactly once (it used to apply
// them a second time to a scratch App, to learn the logger).
func TestLoadAppliesOptionsOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	count := core.Option(func(*core.App) error { calls++; return nil })
	loadProc(t, "", count)
	require.Equal(t, 1, calls)
}

// Options given to Load win over taskiq.hcl, and what the file configures
// comes first where order matters: the configured broker stays the default
// next to an in-process one.
func TestLoadCallerOptionsOverTheFile(t *testing.T) {
	t.Parallel()
	local := inmemory.NewBroker(inmemory.BrokerOptions{})
	b := loadProc(t, "",
		core.WithBroker("local", local),
		core.WithMaxMessageSize(1234),
		core.WithWorkerDefaults(core.WorkerOptions{MaxAsyncTasks: 7}))
	require.Equal(t, []string{"default", "local"}, b.app.BrokerNames())
	require.Equal(t, 7, b.app.WorkerDefaults().MaxAsyncTasks)

	task := core.MustTask[int](b.app, "big", func(s string) (int, error) { return len(s), nil })
	_, err := task.Kiq(context.Background(), string(make([]byte, 2000)))
	require.Error(t, err, "the caller's max message size applies")

	// The default broker is the configured one, not the in-process broker
	// the caller added (which was given no capabilities).
	caps, err := b.app.BrokerCapabilities("")
	require.NoError(t, err)
	pluginCaps, err := b.app.BrokerCapabilities("default")
	require.NoError(t, err)
	require.NotEmpty(t, pluginCaps)
	require.Equal(t, pluginCaps, caps)

	b2 := loadProc(t, "", core.WithBroker("local", inmemory.NewBroker(inmemory.BrokerOptions{})), core.WithDefaultBroker("local"))
	caps, err = b2.app.BrokerCapabilities("")
	require.NoError(t, err)
	require.Empty(t, caps, "WithDefaultBroker wins over the file")
}

// A module App no longer sits in a package-level map for ever: once
// unreachable it is collected.
func TestModuleAppIsCollected(t *testing.T) {
	collected := make(chan struct{})
	func() {
		app := core.NewModule("collect-me")
		runtime.SetFinalizer(app, func(*core.App) { close(collected) })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("a module App that nothing references was never collected")
}
