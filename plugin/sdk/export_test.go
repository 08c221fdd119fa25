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
