package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/core/internal/supervise"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/internal/config"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// ConfigError is returned by Load and Validate for a taskiq.hcl with errors;
// its message lists every diagnostic as file:line:col.
type ConfigError struct {
	Diagnostics hcl.Diagnostics
}

func (e *ConfigError) Error() string {
	return "invalid configuration:\n" + config.FormatDiagnostics(e.Diagnostics)
}

// Load reads taskiq.hcl, starts every plugin it names as a supervised child
// process, configures each with its config block (checked against the
// schema the plugin declares) and returns an App wired to them. Extra
// options (WithMiddleware for in-process middlewares, ...) apply after the
// configured ones. Close the App to stop the plugins.
func Load(ctx context.Context, path string, opts ...Option) (*App, error) {
	f, diags := config.Load(path)
	if diags.HasErrors() {
		return nil, &ConfigError{diags}
	}
	if diags := scheduleDiagnostics(f); diags.HasErrors() {
		return nil, &ConfigError{diags}
	}
	// The caller's options apply once, first: the plugins start with the
	// caller's logger. What taskiq.hcl configures is wired in under them.
	a := newApp()
	if err := a.apply(opts); err != nil {
		return nil, err
	}
	if a.logger == nil {
		a.logger = defaultLogger()
	}
	host := &hostService{caps: map[string][]string{}}
	procs, diags := supervise.StartAll(ctx, f, host, a.logger)
	stopAll := func(ctx context.Context) error {
		var errs []error
		// Middlewares first, the result backend, then brokers: a draining
		// worker may still save results and settle deliveries.
		for i := len(procs) - 1; i >= 0; i-- {
			errs = append(errs, procs[i].Close(ctx))
		}
		return errors.Join(errs...)
	}
	if diags.HasErrors() {
		_ = stopAll(ctx)
		return nil, &ConfigError{diags}
	}
	if err := a.addConfigured(f, procs, stopAll); err != nil {
		_ = stopAll(ctx)
		return nil, err
	}
	a.sched.configure(f, host)
	if err := a.checkBrokers(); err != nil {
		_ = stopAll(ctx)
		return nil, err
	}
	a.finish()
	if err := a.configureTelemetry(ctx, f.Telemetry); err != nil {
		_ = a.Close(ctx)
		return nil, fmt.Errorf("taskiq: telemetry: %w", err)
	}
	if err := a.startTelemetry(); err != nil {
		_ = a.Close(ctx)
		return nil, err
	}
	host.setApp(a)
	return a, nil
}

// addConfigured wires the plugins Load started into a, under the caller's
// options: configured brokers and middlewares come before the caller's
// (configured middlewares run first; the first configured broker is the
// default unless taskiq.hcl or WithDefaultBroker names one), and settings
// the caller set win over the file's.
func (a *App) addConfigured(f *config.File, procs []*supervise.Proc, stop func(context.Context) error) error {
	if !a.explicit.maxMessageSize {
		a.maxMessageSize = f.Client.MaxMessageSize
	}
	if !a.explicit.workerDefaults {
		a.settings = workerDefaults(f.Worker)
	}
	a.closers = append([]func(context.Context) error{stop}, a.closers...)
	a.plugins = procs
	var mws []Middleware
	firstBroker := ""
	for _, p := range procs {
		switch p.Kind() {
		case sdk.KindBroker:
			if err := a.addBroker(p.Name(), supervise.Broker(p), p.Capabilities()); err != nil {
				return err
			}
			a.addControl(p.Name(), supervise.Inspector(p), p.Capabilities())
			if firstBroker == "" {
				firstBroker = p.Name()
			}
		case sdk.KindResultBackend:
			if a.results == nil {
				a.results, a.resultCaps = supervise.Results(p), p.Capabilities()
			}
		case sdk.KindMiddleware:
			mws = append(mws, supervise.Middleware(p))
		}
	}
	a.chain.all = append(mws, a.chain.all...)
	if !a.explicit.defaultBroker {
		switch {
		case f.Client.DefaultBroker != "":
			a.defaultBroker = f.Client.DefaultBroker
		case firstBroker != "":
			a.defaultBroker = firstBroker
		}
	}
	return nil
}

func workerDefaults(w config.Worker) WorkerOptions {
	o := WorkerOptions{
		MaxAsyncTasks:   w.MaxAsyncTasks,
		MaxPrefetch:     w.MaxPrefetch,
		AckType:         AckType(w.AckType),
		ShutdownTimeout: w.ShutdownTimeout,
		Lease:           w.Lease,
	}
	for _, q := range w.Queues {
		o.Queues = append(o.Queues, sdk.Queue{Name: q, Weight: 1})
	}
	return o
}

// PluginProcess describes one plugin process started by Load, as it is now.
type PluginProcess struct {
	// Kind and Name are the taskiq.hcl block the process serves.
	Kind sdk.Kind
	Name string
	// Path is the plugin binary.
	Path string
	// PID is the process id, 0 when no process runs (after Close).
	PID int
	// StartDuration is the time the current process took from launch to
	// configured and ready: binary checks, handshake, Info and Configure.
	// After a restart it is the restarted process's.
	StartDuration time.Duration
}

// PluginProcesses lists the plugin processes Load started, in start order
// (brokers, the result backend, middlewares); nil for an App built with New.
func (a *App) PluginProcesses() []PluginProcess {
	var out []PluginProcess
	for _, p := range a.plugins {
		st := p.Status()
		out = append(out, PluginProcess{Kind: st.Kind, Name: st.Name, Path: st.Path, PID: st.PID, StartDuration: st.StartDuration})
	}
	return out
}

// Validate checks taskiq.hcl without running anything: host attributes,
// plugin binaries (presence, sha256 pins) and each plugin's config block
// against the schema the plugin declares (the plugin is started only to read
// its schema, never configured).
func Validate(ctx context.Context, path string, logger hclog.Logger) hcl.Diagnostics {
	f, diags := config.Load(path)
	if f == nil {
		return diags
	}
	// Host errors do not stop the plugin checks: report everything at once.
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	for _, blocks := range [][]*config.PluginBlock{f.Brokers, f.ResultBackends, f.Middlewares, f.ScheduleSources} {
		for _, b := range blocks {
			diags = append(diags, supervise.Inspect(ctx, f, b, logger)...)
		}
	}
	diags = append(diags, scheduleDiagnostics(f)...)
	return diags
}

// hostService is the host as plugins see it (sdk.Host). It is served to
// every plugin once, through go-plugin's GRPCBroker. Brokers' capabilities
// are known before middlewares are configured; kicking and reading results
// work once the App is built.
type hostService struct {
	mu            sync.RWMutex
	app           *App
	caps          map[string][]string
	defaultBroker string
}

// SetBrokerCapabilities records a configured broker's capabilities for the
// plugins that ask (supervise.Host).
func (h *hostService) SetBrokerCapabilities(name string, caps []string, isDefault bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.caps[name] = caps
	if isDefault || h.defaultBroker == "" {
		h.defaultBroker = name
	}
}

func (h *hostService) setApp(a *App) {
	h.mu.Lock()
	h.app = a
	h.mu.Unlock()
}

func (h *hostService) getApp() (*App, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.app == nil {
		return nil, errors.New("taskiq host is still starting: kicks and results are available once every plugin is configured")
	}
	return h.app, nil
}

func (h *hostService) Kick(ctx context.Context, broker string, msgs []*wire.Message) error {
	a, err := h.getApp()
	if err != nil {
		return err
	}
	return a.kick(ctx, broker, msgs...)
}

func (h *hostService) GetResult(ctx context.Context, taskID string) (*wire.Result, error) {
	a, err := h.getApp()
	if err != nil {
		return nil, err
	}
	b, err := a.results.GetResult(ctx, taskID)
	if err != nil {
		return nil, err
	}
	return wire.DecodeResult(b)
}

func (h *hostService) BrokerCapabilities(_ context.Context, broker string) ([]string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if broker == "" {
		broker = h.defaultBroker
	}
	caps, ok := h.caps[broker]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownBroker, broker)
	}
	return caps, nil
}

// Interface guards
var _ supervise.Host = (*hostService)(nil)
