package core

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/taskiq-go/taskiq/core/config"
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
	// The plugins need the logger before the App exists: learn it from the
	// options on a scratch App; New applies them for real.
	logger := hclog.New(&hclog.LoggerOptions{Name: "taskiq", Level: hclog.Info})
	scratch := newApp()
	for _, o := range opts {
		_ = o(scratch)
	}
	if scratch.logger != nil {
		logger = scratch.logger
	}
	host := &hostService{caps: map[string][]string{}}
	procs, diags := startPlugins(ctx, f, host, logger)
	stopAll := func(ctx context.Context) error {
		var errs []error
		// Middlewares first, the result backend, then brokers: a draining
		// worker may still save results and settle deliveries.
		for i := len(procs) - 1; i >= 0; i-- {
			errs = append(errs, procs[i].close(ctx))
		}
		return errors.Join(errs...)
	}
	if diags.HasErrors() {
		_ = stopAll(ctx)
		return nil, &ConfigError{diags}
	}

	appOpts := []Option{
		WithLogger(logger),
		WithMaxMessageSize(f.Client.MaxMessageSize),
		WithCloser(stopAll),
		WithWorkerDefaults(workerDefaults(f.Worker)),
	}
	if f.Client.DefaultBroker != "" {
		appOpts = append(appOpts, WithDefaultBroker(f.Client.DefaultBroker))
	}
	for _, p := range procs {
		role, _ := p.info.Role(p.kind)
		switch p.kind {
		case sdk.KindBroker:
			appOpts = append(appOpts, WithBroker(p.name, supervisedBroker{p}, p.capabilities()...))
		case sdk.KindResultBackend:
			appOpts = append(appOpts, WithResultBackend(supervisedResults{p}, p.capabilities()...))
		case sdk.KindMiddleware:
			appOpts = append(appOpts, WithMiddleware(supervisedMiddleware{p: p, hooks: role.Hooks}))
		}
	}
	app, err := New(append(appOpts, opts...)...)
	if err != nil {
		_ = stopAll(ctx)
		return nil, err
	}
	app.plugins = procs
	host.setApp(app)
	return app, nil
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

// startPlugins launches and configures every plugin block: brokers and the
// result backend first, so middlewares can ask the host about them while
// they configure.
func startPlugins(ctx context.Context, f *config.File, host *hostService, logger hclog.Logger) ([]*pluginProc, hcl.Diagnostics) {
	var procs []*pluginProc
	var diags hcl.Diagnostics
	groups := [][]*config.PluginBlock{f.Brokers, f.ResultBackends, f.Middlewares}
	for _, blocks := range groups {
		for _, b := range blocks {
			p, d := startPlugin(ctx, f, b, host, logger)
			diags = append(diags, d...)
			if p == nil {
				continue
			}
			procs = append(procs, p)
			if b.Kind == sdk.KindBroker {
				host.setCaps(b.Name, p.capabilities(), b.Name == f.Client.DefaultBroker)
			}
		}
	}
	return procs, diags
}

func launchConfig(f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) sdk.LaunchConfig {
	env := make([]string, 0, len(b.Env))
	for k, v := range b.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return sdk.LaunchConfig{
		Path:           b.Path,
		SHA256:         b.SHA256,
		Logger:         logger.Named(string(b.Kind) + "." + b.Name),
		Env:            env,
		AutoMTLS:       f.Security.AutoMTLS,
		MaxMessageSize: f.Client.MaxMessageSize,
		Host:           host,
	}
}

// inspectPlugin checks the binary, launches it, and decodes the block's
// config against the role's schema. The returned client is running.
func inspectPlugin(ctx context.Context, f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) (*sdk.Client, sdk.Info, []byte, hcl.Diagnostics) {
	diags := config.ResolvePlugin(b)
	if diags.HasErrors() {
		return nil, sdk.Info{}, nil, diags
	}
	c, err := sdk.Launch(ctx, launchConfig(f, b, host, logger))
	if err != nil {
		return nil, sdk.Info{}, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin failed to start",
			Detail: err.Error(), Subject: b.PluginRange.Ptr(),
		})
	}
	info, err := c.Info(ctx)
	if err != nil {
		stopClient(c)
		return nil, info, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin did not describe itself",
			Detail: err.Error(), Subject: b.PluginRange.Ptr(),
		})
	}
	role, ok := info.Role(b.Kind)
	if !ok {
		stopClient(c)
		var kinds []string
		for _, r := range info.Roles {
			kinds = append(kinds, string(r.Kind))
		}
		return nil, info, nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin cannot serve this block",
			Detail:  fmt.Sprintf("%s (%s) serves %v, not %s", info.Name, b.Path, kinds, b.Kind),
			Subject: b.PluginRange.Ptr(),
		})
	}
	raw, d := config.DecodePluginConfig(b, role.Schema)
	diags = append(diags, d...)
	return c, info, raw, diags
}

func startPlugin(ctx context.Context, f *config.File, b *config.PluginBlock, host sdk.Host, logger hclog.Logger) (*pluginProc, hcl.Diagnostics) {
	begin := time.Now()
	c, info, raw, diags := inspectPlugin(ctx, f, b, host, logger)
	if c == nil {
		return nil, diags
	}
	if diags.HasErrors() {
		stopClient(c)
		return nil, diags
	}
	p := &pluginProc{kind: b.Kind, name: b.Name, launch: launchConfig(f, b, host, logger), raw: raw, logger: logger}
	cerrs, err := c.Configure(ctx, b.Kind, b.Name, raw)
	if err == nil && len(cerrs) > 0 {
		stopClient(c)
		return nil, append(diags, config.PluginDiagnostics(b, cerrs)...)
	}
	if err != nil {
		stopClient(c)
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Plugin configuration failed",
			Detail: err.Error(), Subject: b.DeclRange.Ptr(),
		})
	}
	p.client, p.info, p.startDur = c, info, time.Since(begin)
	return p, diags
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
		p.mu.Lock()
		pp := PluginProcess{Kind: p.kind, Name: p.name, Path: p.launch.Path, StartDuration: p.startDur}
		if p.client != nil {
			pp.PID = p.client.Pid()
		}
		p.mu.Unlock()
		out = append(out, pp)
	}
	return out
}

// stopClient stops a plugin process that was started only to be inspected
// or that failed configuration: asked to shut down, then stopped.
func stopClient(c *sdk.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
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
	for _, blocks := range [][]*config.PluginBlock{f.Brokers, f.ResultBackends, f.Middlewares} {
		for _, b := range blocks {
			c, _, _, d := inspectPlugin(ctx, f, b, nil, logger)
			if c != nil {
				stopClient(c)
			}
			diags = append(diags, d...)
		}
	}
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

func (h *hostService) setCaps(name string, caps []string, isDefault bool) {
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
var _ sdk.Host = (*hostService)(nil)
