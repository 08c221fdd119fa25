// Package supervise runs plugin processes for the host: it launches and
// configures them from taskiq.hcl's plugin blocks, restarts a process that
// died (go-plugin never does) with backoff, and wraps each role in a shim
// that retries a call once on a restarted process.
package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskiq-go/taskiq/internal/backoff"

	"github.com/hashicorp/go-hclog"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Proc is one configured plugin process under supervision. go-plugin
// never restarts a plugin; this does: when a call fails because the process
// has exited, a fresh process is started with backoff, configured the same
// way, and the call is tried once more. Deliveries in flight on a dead broker
// process are never acked, so the broker redelivers them.
type Proc struct {
	kind   sdk.Kind
	name   string
	launch sdk.LaunchConfig
	raw    json.RawMessage
	logger hclog.Logger

	mu     sync.Mutex
	client *sdk.Client
	// live is client, for WatchResult, which must not wait for mu (held
	// through a restart).
	live     atomic.Pointer[sdk.Client]
	info     sdk.Info
	restarts int
	backoff  *backoff.Backoff
	lastOK   time.Time
	closed   bool
	// startDur is how long the current process took from launch to
	// configured (binary checks, handshake, Info and Configure).
	startDur time.Duration
	// observer, when set, is told of restarts and failed calls (metrics).
	observer atomic.Pointer[Observer]
}

// Observer is told what happens to a plugin process, for its metrics.
type Observer interface {
	// PluginRestarted: the process had exited and is being started again.
	PluginRestarted(kind, name string)
	// PluginCallFailed: a call failed, after the retry on a restarted process.
	PluginCallFailed(kind, name string)
}

// Observe makes o the observer of p.
func (p *Proc) Observe(o Observer) { p.observer.Store(&o) }

func (p *Proc) observe(fn func(Observer)) {
	if o := p.observer.Load(); o != nil {
		fn(*o)
	}
}

// New returns a supervised process for the given role and config, not yet
// started: call Start.
func New(kind sdk.Kind, name string, launch sdk.LaunchConfig, raw json.RawMessage, logger hclog.Logger) *Proc {
	return &Proc{kind: kind, name: name, launch: launch, raw: raw, logger: logger,
		backoff: backoff.New(200*time.Millisecond, 10*time.Second)}
}

// Start launches and configures the process; the caller holds p.mu or owns p.
// A plugin that rejects its configuration gives a *ConfigError.
func (p *Proc) Start(ctx context.Context) error {
	begin := time.Now()
	c, err := sdk.Launch(ctx, p.launch)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		stopClient(c)
		return fmt.Errorf("plugin %s: info: %w", p.launch.Path, err)
	}
	return p.configure(ctx, c, info, begin)
}

// configure configures a launched process and makes it p's current one; on
// failure it stops the process.
func (p *Proc) configure(ctx context.Context, c *sdk.Client, info sdk.Info, begin time.Time) error {
	cerrs, err := c.Configure(ctx, p.kind, p.name, p.raw)
	if err != nil {
		stopClient(c)
		return fmt.Errorf("plugin %s: configure: %w", p.launch.Path, err)
	}
	if len(cerrs) > 0 {
		stopClient(c)
		return &ConfigError{Path: p.launch.Path, Errors: cerrs}
	}
	p.client, p.info, p.lastOK = c, info, time.Now()
	p.live.Store(c)
	p.startDur = p.lastOK.Sub(begin)
	return nil
}

// Kind and Name are the taskiq.hcl block the process serves.
func (p *Proc) Kind() sdk.Kind { return p.kind }

// Name is the name of the process's taskiq.hcl block (or task module).
func (p *Proc) Name() string { return p.name }

// Role is what the process reported of its configured role.
func (p *Proc) Role() sdk.RoleInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	role, _ := p.info.Role(p.kind)
	return role
}

// Status describes the process as it is now.
type Status struct {
	Kind sdk.Kind
	Name string
	Path string
	// PID is 0 when no process runs (after Close).
	PID int
	// StartDuration is how long the current process took from launch to
	// configured.
	StartDuration time.Duration
}

// Status reports the process as it is now.
func (p *Proc) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Kind: p.kind, Name: p.name, Path: p.launch.Path, StartDuration: p.startDur}
	if p.client != nil {
		st.PID = p.client.Pid()
	}
	return st
}

// ConfigError carries the errors a plugin's Configure returned.
type ConfigError struct {
	Path   string
	Errors []*sdk.ConfigError
}

func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("plugin %s rejected its configuration:", e.Path)
	for _, ce := range e.Errors {
		msg += "\n  " + ce.Error()
	}
	return msg
}

// Get returns a live client, restarting the process if it has exited.
func (p *Proc) Get(ctx context.Context) (*sdk.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("plugin %s: %w", p.launch.Path, sdk.ErrClosed)
	}
	if p.client != nil && !p.client.Exited() {
		return p.client, nil
	}
	if p.client != nil {
		p.client.Kill()
		p.client = nil
		p.live.Store(nil)
		if time.Since(p.lastOK) > time.Minute {
			// It served for a while: a new failure, not a crash loop.
			p.restarts = 0
			p.backoff.Reset()
		}
		p.restarts++
		var wait time.Duration // the first restart is immediate
		if p.restarts > 1 {
			wait = p.backoff.Next()
		}
		p.logger.Error("plugin process exited; restarting it", "path", p.launch.Path, "restart", p.restarts, "backoff", wait)
		p.observe(func(o Observer) { o.PluginRestarted(string(p.kind), p.name) })
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p.client, nil
}

// Died reports whether c's process is gone, giving the exit a moment to be
// noticed when the error looks like a broken connection. A plugin that still
// answers a health check failed on its own (its backing service is down, say):
// that error is returned as it is, without a wait or a restart.
func Died(c *sdk.Client, err error) bool {
	if c.Exited() {
		return true
	}
	if !errors.Is(err, sdk.ErrUnavailable) || c.Alive() {
		return false
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if c.Exited() {
			return true
		}
	}
	return false
}

// call runs fn on a live client and, if the process died under it, once more
// on a restarted one.
func call[T any](ctx context.Context, p *Proc, fn func(*sdk.Client) (T, error)) (T, error) {
	v, err := callOnce(ctx, p, fn)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) && ctx.Err() == nil {
		p.observe(func(o Observer) { o.PluginCallFailed(string(p.kind), p.name) })
	}
	return v, err
}

func callOnce[T any](ctx context.Context, p *Proc, fn func(*sdk.Client) (T, error)) (T, error) {
	c, err := p.Get(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(c)
	if err == nil || !Died(c, err) {
		return v, err
	}
	if c, err = p.Get(ctx); err != nil {
		var zero T
		return zero, err
	}
	return fn(c)
}

// Close stops the process for good: it is not restarted afterwards.
func (p *Proc) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.client == nil {
		return nil
	}
	err := p.client.Close(ctx)
	p.client = nil
	p.live.Store(nil)
	return err
}

// Capabilities are the configured role's: those Configure reported, else
// the role's from Info.
func (p *Proc) Capabilities() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		if caps := p.client.Capabilities(); len(caps) > 0 {
			return caps
		}
	}
	role, _ := p.info.Role(p.kind)
	return role.Capabilities
}

// MaxMessageSize is the configured role's own message size limit: the one
// Configure reported, else the role's from Info; 0 when it has none.
func (p *Proc) MaxMessageSize() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		if n := p.client.RoleMaxMessageSize(); n > 0 {
			return n
		}
	}
	role, _ := p.info.Role(p.kind)
	return role.MaxMessageSize
}

// Broker is the broker role of p, retried once on a restarted process.
func Broker(p *Proc) sdk.Broker { return supervisedBroker{p} }

// Results is the result-backend role of p, retried once on a restarted
// process.
func Results(p *Proc) sdk.ResultBackend { return supervisedResults{p} }

// Middleware is the middleware role of p: it lists the hooks the plugin
// declared, so the host calls only those.
func Middleware(p *Proc) sdk.Middleware { return supervisedMiddleware{p: p, hooks: p.Role().Hooks} }

type supervisedBroker struct{ p *Proc }

func (b supervisedBroker) Kick(ctx context.Context, msgs []sdk.Outgoing) error {
	_, err := call(ctx, b.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.Broker().Kick(ctx, msgs)
	})
	return err
}

func (b supervisedBroker) Listen(ctx context.Context, req sdk.ListenRequest) (sdk.Stream, error) {
	return call(ctx, b.p, func(c *sdk.Client) (sdk.Stream, error) { return c.Broker().Listen(ctx, req) })
}

// Close is a no-op: the process is stopped by the App's closer, after the
// other plugins had a chance to drain.
func (b supervisedBroker) Close(context.Context) error { return nil }

// MaxMessageSize is the broker's own message size limit (0: none).
func (b supervisedBroker) MaxMessageSize() int { return b.p.MaxMessageSize() }

type supervisedResults struct{ p *Proc }

func (r supervisedResults) SetResults(ctx context.Context, results []sdk.StoredResult) error {
	_, err := call(ctx, r.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.ResultBackend().SetResults(ctx, results)
	})
	return err
}

func (r supervisedResults) GetResult(ctx context.Context, id string) ([]byte, error) {
	return call(ctx, r.p, func(c *sdk.Client) ([]byte, error) { return c.ResultBackend().GetResult(ctx, id) })
}

func (r supervisedResults) IsReady(ctx context.Context, id string) (bool, error) {
	return call(ctx, r.p, func(c *sdk.Client) (bool, error) { return c.ResultBackend().IsReady(ctx, id) })
}

func (r supervisedResults) WaitResult(ctx context.Context, id string) ([]byte, error) {
	return call(ctx, r.p, func(c *sdk.Client) ([]byte, error) {
		w, ok := c.ResultBackend().(sdk.ResultWaiter)
		if !ok {
			return nil, sdk.ErrUnsupported
		}
		return w.WaitResult(ctx, id)
	})
}

func (r supervisedResults) SetProgress(ctx context.Context, id string, b []byte) error {
	_, err := call(ctx, r.p, func(c *sdk.Client) (struct{}, error) {
		return struct{}{}, c.ResultBackend().SetProgress(ctx, id, b)
	})
	return err
}

func (r supervisedResults) GetProgress(ctx context.Context, id string) ([]byte, error) {
	return call(ctx, r.p, func(c *sdk.Client) ([]byte, error) { return c.ResultBackend().GetProgress(ctx, id) })
}

func (r supervisedResults) Close(context.Context) error { return nil }

// supervisedMiddleware implements every hook and lists the plugin's own, so
// the chain only calls those.
type supervisedMiddleware struct {
	p     *Proc
	hooks []sdk.Hook
}

func (m supervisedMiddleware) Hooks() []sdk.Hook { return m.hooks }

func (m supervisedMiddleware) mw(c *sdk.Client) sdk.Middleware { return c.Middleware(m.hooks) }

func (m supervisedMiddleware) PreSend(ctx context.Context, msg *wire.Message) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.PreSender).PreSend(ctx, msg) })
}

func (m supervisedMiddleware) PostSend(ctx context.Context, msg *wire.Message) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.PostSender).PostSend(ctx, msg) })
}

func (m supervisedMiddleware) PreExecute(ctx context.Context, msg *wire.Message) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.PreExecuter).PreExecute(ctx, msg) })
}

func (m supervisedMiddleware) OnError(ctx context.Context, msg *wire.Message, res *wire.Result, err error) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.ErrorHandler).OnError(ctx, msg, res, err) })
}

func (m supervisedMiddleware) PostExecute(ctx context.Context, msg *wire.Message, res *wire.Result) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.PostExecuter).PostExecute(ctx, msg, res) })
}

func (m supervisedMiddleware) PostSave(ctx context.Context, msg *wire.Message, res *wire.Result) error {
	return m.do(ctx, func(mw sdk.Middleware) error { return mw.(sdk.PostSaver).PostSave(ctx, msg, res) })
}

func (m supervisedMiddleware) do(ctx context.Context, fn func(sdk.Middleware) error) error {
	_, err := call(ctx, m.p, func(c *sdk.Client) (struct{}, error) { return struct{}{}, fn(m.mw(c)) })
	return err
}

// Interface guards
var (
	_ sdk.Broker             = supervisedBroker{}
	_ sdk.MessageSizeLimiter = supervisedBroker{}
	_ sdk.ResultBackend      = supervisedResults{}
	_ sdk.ResultWaiter       = supervisedResults{}
	_ sdk.PreSender          = supervisedMiddleware{}
	_ sdk.PostSender         = supervisedMiddleware{}
	_ sdk.PreExecuter        = supervisedMiddleware{}
	_ sdk.ErrorHandler       = supervisedMiddleware{}
	_ sdk.PostExecuter       = supervisedMiddleware{}
	_ sdk.PostSaver          = supervisedMiddleware{}
	_ sdk.HookLister         = supervisedMiddleware{}
)
