package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// defaultShutdownTimeout bounds a role's Close when the host gives no
// timeout, and when the plugin shuts itself down because its host is gone.
const defaultShutdownTimeout = 5 * time.Second

// pluginServer is the plugin side's state: the Plugin description and the
// one role this process is configured for.
type pluginServer struct {
	p       Plugin
	logger  hclog.Logger
	maxSize int

	mu       sync.RWMutex
	gbroker  *plugin.GRPCBroker
	kind     Kind
	role     any // Broker, ResultBackend or Middleware
	host     Host
	hostID   uint32
	hostConn *grpc.ClientConn

	hooksOnce sync.Once
	hooks     []Hook
}

func newPluginServer(p Plugin, logger hclog.Logger, maxSize int) *pluginServer {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &pluginServer{p: p, logger: logger, maxSize: maxSize}
}

func (s *pluginServer) setBroker(b *plugin.GRPCBroker) {
	s.mu.Lock()
	s.gbroker = b
	s.mu.Unlock()
}

var errNotConfigured = status.Error(codes.FailedPrecondition, "plugin not configured")

// configured returns the role when the process is configured as kind.
func (s *pluginServer) configured(kind Kind) (any, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.role == nil {
		return nil, errNotConfigured
	}
	if s.kind != kind {
		return nil, status.Errorf(codes.FailedPrecondition, "plugin is configured as %s, not %s", s.kind, kind)
	}
	return s.role, nil
}

// middlewareHooks returns the middleware's hooks: the declared ones, or the
// ones a value built from an empty config implements. A failing probe
// reports no hooks rather than failing Info.
func (s *pluginServer) middlewareHooks() []Hook {
	s.hooksOnce.Do(func() {
		if len(s.p.Hooks) > 0 {
			s.hooks = s.p.Hooks
			return
		}
		f := s.p.Middleware
		if f == nil || f.New == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), defaultShutdownTimeout)
		defer cancel()
		raw, err := f.Schema.defaults()
		if err != nil {
			s.logger.Debug("cannot detect middleware hooks: its schema's defaults are invalid; set Plugin.Hooks", "error", err)
			return
		}
		mw, err := f.New(ctx, Config{Raw: raw, Logger: s.logger, MaxMessageSize: s.maxSize})
		if err != nil {
			s.logger.Debug("cannot detect middleware hooks: building it from its schema defaults failed; set Plugin.Hooks", "error", err)
			return
		}
		s.hooks = HooksOf(mw)
		_ = closeRole(ctx, mw)
	})
	return s.hooks
}

func (s *pluginServer) info() *pluginv1.InfoResponse {
	resp := &pluginv1.InfoResponse{Name: s.p.Name, Version: s.p.Version, ProtocolVersion: ProtocolVersion}
	if f := s.p.Broker; f != nil {
		resp.Roles = append(resp.Roles, roleToProto(KindBroker, f.Capabilities, nil, f.Schema, f.MaxMessageSize))
	}
	if f := s.p.ResultBackend; f != nil {
		resp.Roles = append(resp.Roles, roleToProto(KindResultBackend, f.Capabilities, nil, f.Schema, f.MaxMessageSize))
	}
	if f := s.p.Middleware; f != nil {
		resp.Roles = append(resp.Roles, roleToProto(KindMiddleware, withMiddlewareCaps(f.Capabilities), s.middlewareHooks(), f.Schema, f.MaxMessageSize))
	}
	if f := s.p.Tasks; f != nil {
		resp.Roles = append(resp.Roles, roleToProto(KindTasks, withCapability(f.Capabilities, CapExecuteBatch), nil, f.Schema, f.MaxMessageSize))
	}
	if f := s.p.ScheduleSource; f != nil {
		resp.Roles = append(resp.Roles, roleToProto(KindScheduleSource, f.Capabilities, nil, f.Schema, f.MaxMessageSize))
	}
	return resp
}

func (s *pluginServer) servedKinds() []string {
	var kinds []string
	if s.p.Broker != nil {
		kinds = append(kinds, string(KindBroker))
	}
	if s.p.ResultBackend != nil {
		kinds = append(kinds, string(KindResultBackend))
	}
	if s.p.Middleware != nil {
		kinds = append(kinds, string(KindMiddleware))
	}
	if s.p.Tasks != nil {
		kinds = append(kinds, string(KindTasks))
	}
	if s.p.ScheduleSource != nil {
		kinds = append(kinds, string(KindScheduleSource))
	}
	return kinds
}

// roleFactory is the part of a Factory that does not depend on its role's
// type.
type roleFactory struct {
	schema  Schema
	check   func(context.Context, Config) error
	maxSize int
	build   func(context.Context, Config) (any, error)
}

func partsOf[T any](f *Factory[T]) *roleFactory {
	if f == nil || f.New == nil {
		return nil
	}
	return &roleFactory{
		schema: f.Schema, check: f.Check, maxSize: f.MaxMessageSize,
		build: func(ctx context.Context, cfg Config) (any, error) {
			v, err := f.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return v, nil // nil when New returned a nil value
		},
	}
}

// factory returns the factory of kind, or nil when the binary does not
// serve it.
func (s *pluginServer) factory(kind Kind) *roleFactory {
	switch kind {
	case KindBroker:
		return partsOf(s.p.Broker)
	case KindResultBackend:
		return partsOf(s.p.ResultBackend)
	case KindMiddleware:
		return partsOf(s.p.Middleware)
	case KindTasks:
		return partsOf(s.p.Tasks)
	case KindScheduleSource:
		return partsOf(s.p.ScheduleSource)
	}
	return nil
}

// notServed is the answer to a request for a role the binary does not serve.
func (s *pluginServer) notServed(kind string) *pluginv1.ConfigureResponse {
	return &pluginv1.ConfigureResponse{Diagnostics: []*pluginv1.Diagnostic{{
		Summary: fmt.Sprintf("plugin %s does not serve the %q role; it serves: %s",
			s.p.Name, kind, strings.Join(s.servedKinds(), ", ")),
	}}}
}

// diagnosticsOf turns config errors into a response carrying them.
func diagnosticsOf(err error) *pluginv1.ConfigureResponse {
	resp := &pluginv1.ConfigureResponse{}
	for _, ce := range ConfigErrors(err) {
		resp.Diagnostics = append(resp.Diagnostics, &pluginv1.Diagnostic{Attribute: ce.Attribute, Summary: ce.Message})
	}
	return resp
}

// checkConfig runs the schema's checks and the factory's Check on a config
// block, building nothing; the process stays as it was.
func (s *pluginServer) checkConfig(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	f := s.factory(Kind(req.Kind))
	if f == nil {
		return s.notServed(req.Kind), nil
	}
	raw, err := f.schema.Prepare(req.ConfigJson)
	if err != nil {
		return diagnosticsOf(err), nil
	}
	if f.check != nil {
		cfg := Config{
			Name:           req.InstanceName,
			Raw:            raw,
			Logger:         s.logger.With("instance", req.InstanceName),
			MaxMessageSize: s.maxSize,
		}
		if err := f.check(ctx, cfg); err != nil {
			return diagnosticsOf(err), nil
		}
	}
	return &pluginv1.ConfigureResponse{}, nil
}

func (s *pluginServer) configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	kind := Kind(req.Kind)
	f := s.factory(kind)
	if f == nil {
		return s.notServed(req.Kind), nil
	}
	// Whatever the host sent (taskiq.hcl's block, or sdktest's JSON), New
	// sees it with the schema's defaults and checks applied.
	raw, err := f.schema.Prepare(req.ConfigJson)
	if err != nil {
		return diagnosticsOf(err), nil
	}
	host, err := s.hostFor(req.HostServiceId)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	cfg := Config{
		Name:           req.InstanceName,
		Raw:            raw,
		Host:           host,
		Logger:         s.logger.With("instance", req.InstanceName),
		MaxMessageSize: s.maxSize,
	}
	role, newErr := f.build(ctx, cfg)
	if newErr == nil && role != nil && kind == KindMiddleware {
		if newErr = s.checkMiddleware(role); newErr != nil {
			_ = closeRole(ctx, role)
		}
	}
	if newErr != nil {
		return diagnosticsOf(newErr), nil
	}
	if role == nil {
		return nil, status.Errorf(codes.Internal, "plugin %s: the %s factory returned neither a value nor an error", s.p.Name, kind)
	}
	s.mu.Lock()
	old := s.role
	s.kind, s.role = kind, role
	s.mu.Unlock()
	if old != nil {
		cctx, cancel := context.WithTimeout(context.Background(), defaultShutdownTimeout)
		defer cancel()
		if err := closeRole(cctx, old); err != nil {
			s.logger.Warn("closing the previous role after reconfiguration failed", "error", err)
		}
	}
	resp := &pluginv1.ConfigureResponse{MaxMessageSize: int64(f.maxSize)}
	if l, ok := role.(MessageSizeLimiter); ok && l.MaxMessageSize() > 0 {
		resp.MaxMessageSize = int64(l.MaxMessageSize())
	}
	if c, ok := role.(Capable); ok {
		resp.Capabilities = c.Capabilities()
		if kind == KindMiddleware && len(resp.Capabilities) > 0 {
			resp.Capabilities = withMiddlewareCaps(resp.Capabilities)
		}
	}
	if m, ok := role.(TaskModule); ok {
		resp.Capabilities = withCapability(resp.Capabilities, CapExecuteBatch)
		if resp.Tasks, err = tasksToProto(m.Tasks()); err != nil {
			return nil, status.Errorf(codes.Internal, "plugin %s: %v", s.p.Name, err)
		}
	}
	return resp, nil
}

// shutdown closes the configured role, if any, and forgets it.
func (s *pluginServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	role := s.role
	s.role = nil
	s.mu.Unlock()
	if role == nil {
		return nil
	}
	return closeRole(ctx, role)
}

// closeRole closes a role value: brokers and result backends have Close;
// a middleware is closed when it implements Close(ctx) or io.Closer.
func closeRole(ctx context.Context, role any) error {
	switch r := role.(type) {
	case interface{ Close(context.Context) error }:
		return r.Close(ctx)
	case io.Closer:
		return r.Close()
	}
	return nil
}

// baseServer serves the Plugin service.
type baseServer struct {
	pluginv1.UnimplementedPluginServer
	srv *pluginServer
}

func (b *baseServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return b.srv.info(), nil
}

func (b *baseServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	return b.srv.configure(ctx, req)
}

func (b *baseServer) CheckConfig(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	return b.srv.checkConfig(ctx, req)
}

func (b *baseServer) Shutdown(ctx context.Context, req *pluginv1.ShutdownRequest) (*pluginv1.ShutdownResponse, error) {
	timeout := defaultShutdownTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := b.srv.shutdown(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ShutdownResponse{}, nil
}

func (p *grpcPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errors.New("taskiq plugin: no server configured")
	}
	p.server.setBroker(b)
	pluginv1.RegisterPluginServer(s, &baseServer{srv: p.server})
	pluginv1.RegisterBrokerServer(s, &brokerServer{srv: p.server})
	pluginv1.RegisterResultBackendServer(s, &resultsServer{srv: p.server})
	pluginv1.RegisterMiddlewareServer(s, &middlewareServer{srv: p.server})
	pluginv1.RegisterTaskModuleServer(s, &tasksServer{srv: p.server})
	pluginv1.RegisterInspectorServer(s, &inspectServer{srv: p.server})
	pluginv1.RegisterScheduleSourceServer(s, &scheduleServer{srv: p.server})
	return nil
}

// Interface guards
var (
	_ pluginv1.PluginServer = (*baseServer)(nil)
)

// checkMiddleware refuses a middleware the host could not call as meant: one
// CheckMiddleware refuses, or one lacking a hook Plugin.Hooks declares (the
// host would call it and fail every time).
func (s *pluginServer) checkMiddleware(m Middleware) error {
	if err := CheckMiddleware(m); err != nil {
		return fmt.Errorf("plugin %s: %w", s.p.Name, err)
	}
	has := HooksOf(m)
	for _, h := range s.p.Hooks {
		if !slices.Contains(has, h) {
			return fmt.Errorf("plugin %s: %w: Plugin.Hooks declares %s, which %T does not implement", s.p.Name, ErrInvalidMiddleware, h, m)
		}
	}
	return nil
}
