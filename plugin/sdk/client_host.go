package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// Client is a running plugin process, seen from the host.
type Client struct {
	pc      *plugin.Client
	conn    *grpc.ClientConn
	gbroker *plugin.GRPCBroker
	base    pluginv1.PluginClient

	path string
	name string
	pid  int
	// launch holds the private directory (0700) of the plugin's and the
	// host's sockets for this process, removed when it is stopped.
	launch   *launcher
	logger   hclog.Logger
	maxSize  int
	prefetch int

	host     Host
	hostOnce sync.Once

	watch *resultWatcher // every WaitResult of this plugin, on one stream

	// The role shims, built on first use and handed out again: a caller
	// that asks for the broker per call (the supervisor does) costs no
	// allocation and shares the stub.
	shimMu      sync.Mutex
	broker      *remoteBroker
	results     *remoteResults
	middlewares map[string]*remoteMiddleware // by hook list
	modules     map[int]*remoteTasks         // by window
	schedules   *remoteSchedules

	mu     sync.Mutex
	caps   []string // reported by Configure
	mwCaps []string // the middleware role's, reported by Info
	// roleMax is the configured role's own message size limit, reported
	// by Configure (0: none).
	roleMax int
	tasks   []TaskInfo // reported by Configure for KindTasks
	hostID  uint32

	// The goroutines the Client starts (the delivery streams', task
	// streams' and result watch's receive loops, the Host server, health
	// pings) are started by start and counted on wg; Close and Kill return
	// once they have ended, so none of them runs on into a host that has
	// moved on. No goroutine starts once stopping is set (under lifeMu):
	// a wg.Add racing the final wg.Wait would be lost.
	lifeMu   sync.Mutex
	stopping bool
	stopped  chan struct{} // closed when Close or Kill begins
	wg       sync.WaitGroup
	running  atomic.Int32 // the goroutines of wg still running (for tests)
}

// clientStopTimeout bounds how long Close and Kill wait for the Client's
// goroutines once the process is stopped and the connection closed (which
// ends them); one that outlives it is logged, not waited for.
const clientStopTimeout = 5 * time.Second

// start runs f on a goroutine counted on the Client's WaitGroup and reports
// true, or reports false (and runs nothing) once the Client is stopping.
func (c *Client) start(f func()) bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.stopping {
		return false
	}
	c.wg.Add(1)
	c.running.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.running.Add(-1)
		f()
	}()
	return true
}

// errStopped is what a call that would start a goroutine returns once the
// Client is stopping: the plugin is going away, as if it had exited.
func (c *Client) errStopped(op string) error {
	return fmt.Errorf("%w: plugin %s: %s: the plugin (pid %d) was stopped", ErrUnavailable, c.name, op, c.pid)
}

// beginStop refuses new goroutines and tells the running ones (stopped)
// that the Client is going away.
func (c *Client) beginStop() {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if !c.stopping {
		c.stopping = true
		close(c.stopped)
	}
}

// shutdown waits, at most clientStopTimeout, for the goroutines start
// started. It is called once the process is stopped and the connection
// closed: every receive loop then fails its Recv and the Host server stops.
func (c *Client) shutdown() {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(clientStopTimeout):
		c.logger.Warn("goroutines of a stopped plugin client did not end; not waiting for them",
			"plugin", c.name, "pid", c.pid, "waited", clientStopTimeout)
	}
}

// Info returns the plugin's identity and roles.
func (c *Client) Info(ctx context.Context) (Info, error) {
	resp, err := c.base.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return Info{}, c.mapErr(ctx, "info", err)
	}
	info := infoFromProto(resp)
	if role, ok := info.Role(KindMiddleware); ok {
		c.mu.Lock()
		c.mwCaps = role.Capabilities
		c.mu.Unlock()
	}
	return info, nil
}

// middlewareHas reports whether the plugin's middleware declares a
// capability (CapHookStream, CapHookLabelChanges): its configured
// capabilities (or, when Configure reported none, those of Info) include it.
func (c *Client) middlewareHas(capability string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.caps) > 0 {
		return Has(c.caps, capability)
	}
	return Has(c.mwCaps, capability)
}

// Configure configures the process for one role. Problems with the config
// come back as ConfigErrors, with the attribute they concern; err is for
// transport failures. Configuring again replaces (and closes) the role.
func (c *Client) Configure(ctx context.Context, kind Kind, name string, raw json.RawMessage) ([]*ConfigError, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	req := &pluginv1.ConfigureRequest{Kind: string(kind), ConfigJson: raw, InstanceName: name}
	if c.host != nil {
		req.HostServiceId = c.serveHost()
	}
	resp, err := c.base.Configure(ctx, req)
	if err != nil {
		return nil, c.mapErr(ctx, "configure", err)
	}
	tasks, err := tasksFromProto(resp.Tasks)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: configure: %w", c.name, err)
	}
	c.mu.Lock()
	c.caps = resp.Capabilities
	c.tasks = tasks
	c.roleMax = int(resp.MaxMessageSize)
	c.mu.Unlock()
	return configErrorsOf(resp.Diagnostics), nil
}

// CheckConfig asks the plugin to check a config block for kind the way
// Configure would, without building the role or connecting to anything; the
// process stays as it was. Problems with the config come back as
// ConfigErrors; err is for transport failures, and matches ErrUnsupported
// when the plugin was built before the call existed (then only the schema
// checks the host runs itself apply).
func (c *Client) CheckConfig(ctx context.Context, kind Kind, name string, raw json.RawMessage) ([]*ConfigError, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	resp, err := c.base.CheckConfig(ctx, &pluginv1.ConfigureRequest{Kind: string(kind), ConfigJson: raw, InstanceName: name})
	if err != nil {
		return nil, c.mapErr(ctx, "check config", err)
	}
	return configErrorsOf(resp.Diagnostics), nil
}

func configErrorsOf(diags []*pluginv1.Diagnostic) []*ConfigError {
	var out []*ConfigError
	for _, d := range diags {
		ce := &ConfigError{Attribute: d.Attribute, Message: d.Summary}
		if d.Detail != "" {
			ce.Message += ": " + d.Detail
		}
		out = append(out, ce)
	}
	return out
}

// RoleMaxMessageSize is the configured role's own message size limit, as
// Configure reported it; 0 when it reported none (a plugin without one, or
// built before the field existed).
func (c *Client) RoleMaxMessageSize() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roleMax
}

// Capabilities returns the capabilities the configured role reported, or
// nil when it reported none (then the role's Info capabilities apply).
func (c *Client) Capabilities() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps
}

// serveHost serves the Host service through the GRPCBroker, once per
// process; the plugin dials it once and keeps the connection.
func (c *Client) serveHost() uint32 {
	c.hostOnce.Do(func() {
		c.hostID = c.gbroker.NextId()
		limit := grpcLimit(c.maxSize)
		hs := newHostServer(c.host)
		// AcceptAndServe returns once the GRPCBroker is closed (Close and
		// Kill close it) and, with WaitForHandlers, once the Host calls
		// under way have returned: no call into the host runs after Close.
		// Refused only when the Client is stopping; the plugin's dial then
		// fails, as it would a moment later anyway.
		c.start(func() {
			c.gbroker.AcceptAndServe(c.hostID, func(opts []grpc.ServerOption) *grpc.Server {
				opts = append(opts, grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit), grpc.WaitForHandlers(true))
				opts = append(opts, serverFlowOptions()...)
				s := grpc.NewServer(opts...)
				pluginv1.RegisterHostServer(s, hs)
				return s
			})
		})
	})
	return c.hostID
}

// Broker returns the plugin's broker; valid after Configure(KindBroker, ...).
// Every call returns the same value.
func (c *Client) Broker() Broker {
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if c.broker == nil {
		c.broker = &remoteBroker{c: c, rpc: pluginv1.NewBrokerClient(c.conn)}
	}
	return c.broker
}

// ResultBackend returns the plugin's result backend; valid after
// Configure(KindResultBackend, ...). The value also implements ResultWaiter,
// whose WaitResult returns ErrUnsupported when the plugin cannot wait.
// Every call returns the same value; all its waiters share one stream.
func (c *Client) ResultBackend() ResultBackend {
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if c.results == nil {
		rpc := pluginv1.NewResultBackendClient(c.conn)
		c.watch = &resultWatcher{c: c, rpc: rpc}
		c.results = &remoteResults{c: c, rpc: rpc}
	}
	return c.results
}

// Middleware returns the plugin's middleware; valid after
// Configure(KindMiddleware, ...). It has every hook method; its Hooks
// method returns hooks (normally the plugin's RoleInfo.Hooks), which are the
// only ones the host should call. Calls with the same hooks return the
// same value.
func (c *Client) Middleware(hooks []Hook) Middleware {
	key := hookKey(hooks)
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if m := c.middlewares[key]; m != nil {
		return m
	}
	if c.middlewares == nil {
		c.middlewares = map[string]*remoteMiddleware{}
	}
	m := &remoteMiddleware{c: c, rpc: pluginv1.NewMiddlewareClient(c.conn), hooks: append([]Hook(nil), hooks...)}
	if c.middlewareHas(CapHookStream) {
		m.stream = newHookStream(c, m.rpc)
	}
	m.labelChanges = c.middlewareHas(CapHookLabelChanges)
	c.middlewares[key] = m
	return m
}

// Tasks returns the plugin's task module; valid after Configure(KindTasks,
// ...). window bounds the executions outstanding at once on the module's
// stream (0: DefaultTaskWindow); Execute waits for a free slot. There is
// one module, with its own stream, per window: calls with the same window
// return the same value until it is closed with its Close method (it
// implements interface{ Close(context.Context) error }), which ends it for
// every holder; the next call then returns a new one.
func (c *Client) Tasks(window int) TaskModule {
	if window <= 0 {
		window = DefaultTaskWindow
	}
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if t := c.modules[window]; t != nil && !t.isClosed() {
		return t
	}
	if c.modules == nil {
		c.modules = map[int]*remoteTasks{}
	}
	t := newRemoteTasks(c, window)
	c.modules[window] = t
	return t
}

// Exited reports whether the plugin process has exited.
func (c *Client) Exited() bool { return c.pc.Exited() }

// Alive reports whether the plugin process answers a health check. A call
// that failed with ErrUnavailable while the plugin is alive failed inside the
// plugin (its backing service is down, say), not at the process boundary.
func (c *Client) Alive() bool {
	if c.pc.Exited() {
		return false
	}
	proto, err := c.pc.Client()
	if err != nil {
		return false
	}
	done := make(chan error, 1)
	if !c.start(func() { done <- proto.Ping() }) {
		return false
	}
	select {
	case err := <-done:
		return err == nil
	case <-time.After(time.Second):
		return false
	}
}

// Pid returns the plugin's process id.
func (c *Client) Pid() int { return c.pid }

// shutdownRole asks the plugin to close its role, bounded by ctx.
func (c *Client) shutdownRole(ctx context.Context) error {
	req := &pluginv1.ShutdownRequest{}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(1, time.Until(dl).Milliseconds())
	}
	_, err := c.base.Shutdown(ctx, req)
	return c.mapErr(ctx, "shutdown", err)
}

// Close asks the role to drain (the Shutdown RPC, bounded by ctx), then
// stops the process. The process is stopped even when draining fails.
// Close returns once the Client's goroutines (receive loops of streams
// still open, the Host server and its calls) have ended.
func (c *Client) Close(ctx context.Context) error {
	var err error
	if !c.pc.Exited() {
		err = c.shutdownRole(ctx)
	}
	c.beginStop()
	c.pc.Kill()
	c.launch.cleanup()
	c.shutdown()
	return err
}

// Kill stops the process at once, without draining. Like Close, it returns
// once the Client's goroutines have ended.
func (c *Client) Kill() {
	c.beginStop()
	if !c.pc.Exited() && c.pid > 0 {
		if p, err := os.FindProcess(c.pid); err == nil {
			_ = p.Kill()
		}
	}
	c.pc.Kill()
	c.launch.cleanup()
	c.shutdown()
}

// mapErr maps an RPC error to the SDK's sentinels and, when the process is
// gone, says so with ErrUnavailable.
func (c *Client) mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	e := fromStatus(ctx, "plugin "+c.name+": "+op, err)
	if ctx.Err() == nil && !errors.Is(e, ErrUnavailable) && c.Exited() {
		return fmt.Errorf("%w: plugin %s (pid %d) has exited: %w", ErrUnavailable, c.name, c.pid, e)
	}
	return e
}

// remoteConn is what the host side dispenses.
type remoteConn struct {
	conn   *grpc.ClientConn
	broker *plugin.GRPCBroker
}

func (p *grpcPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &remoteConn{conn: c, broker: b}, nil
}

// hookKey names a hook list, the key of Client.Middleware's shims; it is
// computed on every hook call of a supervised middleware, so it stays cheap.
func hookKey(hooks []Hook) string {
	n := 0
	for _, h := range hooks {
		n += len(h) + 1
	}
	b := make([]byte, 0, n)
	for _, h := range hooks {
		b = append(append(b, h...), ',')
	}
	return string(b)
}
