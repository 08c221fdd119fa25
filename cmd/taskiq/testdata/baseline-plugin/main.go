// Command baseline-plugin is a broker plugin that answers the way one built
// with the first release of protocol v1 does: its Plugin service knows Info,
// Configure and Shutdown only, and its schema carries no constraints. The
// script tests check that config validate still checks a block of it (the
// host's schema checks) and reports it valid.
package main

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// server embeds the generated Unimplemented server, which answers every
// call it does not define (CheckConfig among them) with Unimplemented, as a
// server generated before the call existed does.
type server struct {
	pluginv1.UnimplementedPluginServer
}

func (server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return &pluginv1.InfoResponse{
		Name: "taskiq-baseline", Version: "1.0.0", ProtocolVersion: 1,
		Roles: []*pluginv1.RoleInfo{{
			Kind: string(sdk.KindBroker),
			Schema: &pluginv1.Schema{Attributes: []*pluginv1.Attribute{
				{Name: "queue", Type: string(sdk.TypeString), DefaultJson: `"taskiq"`, Description: "queue"},
				{Name: "count", Type: string(sdk.TypeNumber), DefaultJson: `1`, Description: "batch size"},
			}},
		}},
	}, nil
}

func (server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	var c struct {
		Queue string `json:"queue"`
	}
	if err := json.Unmarshal(req.ConfigJson, &c); err != nil || c.Queue == "" {
		return &pluginv1.ConfigureResponse{Diagnostics: []*pluginv1.Diagnostic{{Attribute: "queue", Summary: "must be set"}}}, nil
	}
	return &pluginv1.ConfigureResponse{}, nil
}

func (server) Shutdown(context.Context, *pluginv1.ShutdownRequest) (*pluginv1.ShutdownResponse, error) {
	return &pluginv1.ShutdownResponse{}, nil
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, server{})
	return nil
}

func (grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion: 1, MagicCookieKey: sdk.MagicCookieKey, MagicCookieValue: sdk.MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{1: {"taskiq": grpcPlugin{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
