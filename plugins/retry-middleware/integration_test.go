package retry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/internal/leaktest"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
	retry "github.com/taskiq-go/taskiq/plugins/retry-middleware"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := buildPlugins(); err == nil && pluginsBuilt {
		_ = os.RemoveAll(dir)
	}
	os.Exit(leaktest.Code(code))
}

// pluginsBuilt is set once buildPlugins ran, so TestMain does not build the
// plugins only to remove them.
var pluginsBuilt bool

// buildPlugins compiles the retry middleware and the in-memory plugin into a
// fresh plugin_dir, once per test binary.
var buildPlugins = sync.OnceValues(func() (string, error) {
	pluginsBuilt = true
	dir, err := os.MkdirTemp("", "taskiq-retry-it-")
	if err != nil {
		return "", err
	}
	for _, pkg := range []string{
		"github.com/taskiq-go/taskiq/plugins/retry-middleware/cmd/taskiq-retry-middleware",
		"github.com/taskiq-go/taskiq/plugins/inmemory/cmd/taskiq-inmemory",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

// attemptLog records what each execution of a task saw.
type attemptLog struct {
	mu      sync.Mutex
	taskIDs []string
	retries []int64
	delays  []float64
}

func (l *attemptLog) record(ctx context.Context) {
	m := core.ContextFrom(ctx).Message
	r, _ := m.LabelInt(wire.LabelRetries)
	d, _ := m.LabelFloat(wire.LabelDelay)
	l.mu.Lock()
	l.taskIDs = append(l.taskIDs, m.TaskID)
	l.retries = append(l.retries, r)
	l.delays = append(l.delays, d)
	l.mu.Unlock()
}

// startApp loads a taskiq.hcl with the in-memory broker and result backend
// and the retry middleware (each its own process), and runs a worker.
func startApp(t *testing.T, retryConfig string) *core.App {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts plugin binaries")
	}
	pluginDir, err := buildPlugins()
	require.NoError(t, err)
	hcl := fmt.Sprintf(`
plugin_dir = %q
broker "default" {
  plugin = "taskiq-inmemory"
}
result_backend "default" {
  plugin = "taskiq-inmemory"
}
middleware "retry" {
  plugin = "taskiq-retry-middleware"
  config {
%s
  }
}
`, pluginDir, retryConfig)
	path := filepath.Join(t.TempDir(), "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(hcl), 0o600))

	ctx := context.Background()
	app, err := core.Load(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	return app
}

func runWorker(t *testing.T, app *core.App) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunWorker(ctx, app.WorkerDefaults()) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
}

// TestIntegrationRetries runs a task that always fails through real plugin
// processes: it executes exactly max_retries times with one task id, and
// only the final failure is stored.
func TestIntegrationRetries(t *testing.T) {
	app := startApp(t, `max_retries = 3
    delay = "20ms"
    max_delay = "1s"
    backoff = "linear"
    jitter = false`)
	log := &attemptLog{}
	failing := core.MustTask[int](app, "it.failing", func(ctx context.Context) (int, error) {
		log.record(ctx)
		return 0, errors.New("upstream down")
	}, core.WithLabels(map[string]any{wire.LabelRetryOnError: true}))
	noRetry := core.MustTask[int](app, "it.noretry", func(ctx context.Context) (int, error) {
		return 0, retry.NoRetry(errors.New("bad input"))
	}, core.WithLabels(map[string]any{wire.LabelRetryOnError: true}))
	runWorker(t, app)

	ctx := context.Background()
	at, err := failing.Kiq(ctx)
	require.NoError(t, err)
	res, err := at.WaitResult(ctx, 30*time.Second)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Contains(t, res.Error.Error(), "upstream down")

	// The final result is saved only after the last attempt (intermediate
	// failures store none), so exactly three executions happened.
	log.mu.Lock()
	require.Equal(t, []string{at.TaskID, at.TaskID, at.TaskID}, log.taskIDs)
	require.Equal(t, []int64{0, 1, 2}, log.retries)
	require.Equal(t, []float64{0, 0.02, 0.04}, log.delays, "linear backoff, carried by the delay label")
	log.mu.Unlock()

	nr, err := noRetry.Kiq(ctx)
	require.NoError(t, err)
	res, err = nr.WaitResult(ctx, 30*time.Second)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Equal(t, retry.NoRetryType, res.Error.ExcType)
}

// TestIntegrationRetryAfter checks that a RetryAfter delay set in the host
// crosses into the plugin process and comes back as the delay label.
func TestIntegrationRetryAfter(t *testing.T) {
	app := startApp(t, `max_retries = 2`)
	log := &attemptLog{}
	limited := core.MustTask[int](app, "it.limited", func(ctx context.Context) (int, error) {
		log.record(ctx)
		return 0, retry.RetryAfter(30*time.Millisecond, errors.New("429"))
	}, core.WithLabels(map[string]any{wire.LabelRetryOnError: true}))
	runWorker(t, app)

	ctx := context.Background()
	at, err := limited.Kiq(ctx)
	require.NoError(t, err)
	res, err := at.WaitResult(ctx, 30*time.Second)
	require.NoError(t, err)
	require.True(t, res.IsErr)
	require.Equal(t, retry.RetryAfterType, res.Error.ExcType)
	log.mu.Lock()
	defer log.mu.Unlock()
	require.Equal(t, []float64{0, 0.03}, log.delays)
}

// TestIntegrationBadConfig checks that a config error reaches the user as a
// diagnostic from core.Load.
func TestIntegrationBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts plugin binaries")
	}
	pluginDir, err := buildPlugins()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "taskiq.hcl")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
plugin_dir = %q
broker "default" {
  plugin = "taskiq-inmemory"
}
middleware "retry" {
  plugin = "taskiq-retry-middleware"
  config {
    backoff = "expo"
  }
}
`, pluginDir)), 0o600))
	_, err = core.Load(context.Background(), path)
	require.ErrorContains(t, err, `unknown backoff "expo"`)
	t.Log(err)
}
