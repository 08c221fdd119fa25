package sdk

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// ClientGoroutines returns how many of the goroutines c started are still
// running.
func ClientGoroutines(c *Client) int { return int(c.running.Load()) }

// ServeBaselineV1 serves p the way a plugin built with the first release of
// protocol v1 answers on the wire: without the calls and fields added since
// (plugin/sdk/CHANGELOG.md). CheckConfig is unknown to it, and its Info and
// Configure answers carry none of the newer fields. A test runs it to prove
// that the host still loads and uses such a plugin.
func ServeBaselineV1(p Plugin) {
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: logLevelFromEnv()})
	srv := newPluginServer(p, logger, DefaultMaxMessageSize)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  handshake(),
		VersionedPlugins: pluginSets(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.ChainUnaryInterceptor(baselineV1))...)
		},
		Logger: logger,
	})
	_ = srv.shutdown(context.Background())
}

// baselineV1 refuses the calls added to protocol v1 after its first release
// as an old plugin's gRPC server does, and clears the fields added since
// from the answers.
func baselineV1(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == pluginv1.Plugin_CheckConfig_FullMethodName {
		return nil, status.Errorf(codes.Unimplemented, "unknown method CheckConfig for service taskiq.plugin.v1.Plugin")
	}
	resp, err := handler(ctx, req)
	switch r := resp.(type) {
	case *pluginv1.InfoResponse:
		for _, role := range r.Roles {
			role.MaxMessageSize = 0
			for _, a := range role.GetSchema().GetAttributes() {
				a.Allowed, a.Integer, a.Min, a.Max = nil, false, nil, nil
			}
		}
	case *pluginv1.ConfigureResponse:
		r.MaxMessageSize = 0
	}
	return resp, err
}

// ForgetHookStream makes c take its middleware for one built before the
// Hooks stream: its hooks are then called with the unary Hook.
func ForgetHookStream(c *Client) {
	c.mu.Lock()
	c.mwCaps = nil
	c.mu.Unlock()
}

// ForgetLabelChanges makes c take its middleware for one built before
// CapHookLabelChanges: its hook calls then ask for whole messages.
func ForgetLabelChanges(c *Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	drop := func(caps []string) []string {
		var out []string
		for _, x := range caps {
			if x != CapHookLabelChanges {
				out = append(out, x)
			}
		}
		return out
	}
	c.caps, c.mwCaps = drop(c.caps), drop(c.mwCaps)
}

// AsksLabelChanges reports whether a middleware shim of a Client asks for
// label changes instead of whole messages.
func AsksLabelChanges(m Middleware) bool {
	rm, ok := m.(*remoteMiddleware)
	return ok && rm.labelChanges
}

// UsesHookStream reports whether a middleware shim of a Client calls its
// hooks over the Hooks stream.
func UsesHookStream(m Middleware) bool {
	rm, ok := m.(*remoteMiddleware)
	return ok && rm.stream != nil
}

// SettlesInFlight returns how many Settle messages of a host-side delivery
// stream wait for the plugin to confirm them.
func SettlesInFlight(s Stream) int {
	rs := s.(*remoteStream)
	rs.sendMu.Lock()
	defer rs.sendMu.Unlock()
	return len(rs.unapplied)
}
