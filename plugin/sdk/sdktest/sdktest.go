// Package sdktest is the test kit for taskiq-go plugin authors: it runs a
// plugin as a real process from `go test`, so tests cross the same process
// boundary, handshake and gRPC glue as production.
//
// The test binary re-executes itself as the plugin:
//
//	func TestMain(m *testing.M) {
//		sdktest.RunPluginIfRequested(myPlugin)
//		os.Exit(m.Run())
//	}
//
//	func TestKick(t *testing.T) {
//		c := sdktest.Launch(t, sdk.KindBroker, `{"queue":"x"}`)
//		b := c.Broker()
//		...
//	}
//
// Each role has its accessor on the Client: Broker, ResultBackend,
// Middleware, Tasks and ScheduleSource (launch with
// sdk.KindScheduleSource; the value also implements sdk.ScheduleHooks and
// sdk.ScheduleState), which the conformance suites take.
package sdktest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// EnvPlugin, set to "1", makes RunPluginIfRequested serve the plugin.
const EnvPlugin = "TASKIQ_SDKTEST_PLUGIN"

// launchTimeout bounds launching and configuring a plugin in a test, and
// closing it in the cleanup.
const launchTimeout = 30 * time.Second

// RunPluginIfRequested serves p and exits when the process was started as
// a plugin by Launch (EnvPlugin=1); otherwise it returns at once. Call it
// first thing in TestMain.
func RunPluginIfRequested(p sdk.Plugin) {
	if os.Getenv(EnvPlugin) != "1" {
		return
	}
	sdk.Serve(p)
	os.Exit(0)
}

// Option adjusts how a test launches a plugin.
type Option func(*options)

type options struct {
	cfg      sdk.LaunchConfig
	instance string
}

// WithHost serves h to the plugin as its Host.
func WithHost(h sdk.Host) Option { return func(o *options) { o.cfg.Host = h } }

// WithLogger sends the plugin's logs (and go-plugin's) to l instead of t.Log.
func WithLogger(l hclog.Logger) Option { return func(o *options) { o.cfg.Logger = l } }

// WithEnv adds KEY=VALUE variables to the plugin's environment.
func WithEnv(kv ...string) Option {
	return func(o *options) { o.cfg.Env = append(o.cfg.Env, kv...) }
}

// WithMaxMessageSize sets LaunchConfig.MaxMessageSize.
func WithMaxMessageSize(n int) Option { return func(o *options) { o.cfg.MaxMessageSize = n } }

// WithPrefetch sets LaunchConfig.Prefetch, the delivery credit window.
func WithPrefetch(n int) Option { return func(o *options) { o.cfg.Prefetch = n } }

// WithInstanceName sets the block label the role is configured with
// (default "test").
func WithInstanceName(name string) Option { return func(o *options) { o.instance = name } }

// WithLaunchConfig edits the LaunchConfig directly, for anything else.
func WithLaunchConfig(f func(*sdk.LaunchConfig)) Option { return func(o *options) { f(&o.cfg) } }

// Launch starts the test binary itself as the plugin (see
// RunPluginIfRequested), configures it for kind with configJSON, and stops
// it when the test ends. An empty kind leaves the process unconfigured.
// Config diagnostics fail the test.
func Launch(t testing.TB, kind sdk.Kind, configJSON string, opts ...Option) *sdk.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return LaunchBinary(t, exe, kind, configJSON, append([]Option{WithEnv(EnvPlugin + "=1")}, opts...)...)
}

// LaunchBinary starts the plugin binary at path, asks for its Info and
// configures it for kind with configJSON, as a host does, and stops it when
// the test ends. An empty kind leaves the process unconfigured. Config
// diagnostics fail the test.
func LaunchBinary(t testing.TB, path string, kind sdk.Kind, configJSON string, opts ...Option) *sdk.Client {
	t.Helper()
	o := options{instance: "test"}
	for _, opt := range opts {
		opt(&o)
	}
	o.cfg.Path = path
	if o.cfg.Logger == nil {
		w := &testWriter{t: t}
		// Registered first, so it runs last: after the plugin has stopped
		// and its last log line has been written.
		t.Cleanup(w.stop)
		// go-plugin forwards a plugin's stderr lines that are not log
		// entries (a race report, a panic) at debug level: keep those, while
		// the plugin itself logs at info unless the test says otherwise.
		level := hclog.Debug
		if _, bench := t.(*testing.B); bench {
			level = hclog.Warn // benchmarks print every log line
		}
		o.cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Output: w, Level: level})
		o.cfg.Env = append([]string{sdk.EnvLogLevel + "=info"}, o.cfg.Env...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), launchTimeout)
	defer cancel()
	c, err := sdk.Launch(ctx, o.cfg)
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), launchTimeout)
		defer cancel()
		if err := c.Close(ctx); err != nil && !c.Exited() {
			t.Logf("closing plugin %s: %v", path, err)
		}
	})
	// As the host does before it configures a plugin: the capabilities of
	// Info pick the protocol of some calls (the Hooks stream).
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("plugin info: %v", err)
	}
	if kind == "" {
		return c
	}
	diags, err := c.Configure(ctx, kind, o.instance, json.RawMessage(configJSON))
	if err != nil {
		t.Fatalf("configure plugin as %s: %v", kind, err)
	}
	if len(diags) > 0 {
		lines := make([]string, len(diags))
		for i, d := range diags {
			lines[i] = d.Error()
		}
		t.Fatalf("plugin rejected its %s config %s:\n%s", kind, configJSON, strings.Join(lines, "\n"))
	}
	return c
}

// testWriter sends log output to t.Log until the test is over (t.Log after
// that would panic), and fails the test when the plugin process reports a
// data race, which would otherwise only show in its exit status.
type testWriter struct {
	t     testing.TB
	mu    sync.Mutex
	done  bool
	raced bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\n")
	w.t.Log(line)
	if !w.raced && strings.Contains(line, "WARNING: DATA RACE") {
		w.raced = true
		w.t.Errorf("the plugin process reported a data race; its report follows in the log")
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
