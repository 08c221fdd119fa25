package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// ProtocolVersion is the major version of the plugin protocol this SDK
// speaks: go-plugin negotiates it and it names the proto package
// (taskiq.plugin.v1). Inside a major, changes are additive and optional
// features are capability flags; a new major means plugins are rebuilt.
const ProtocolVersion = 1

// The handshake cookie tells a plugin binary that a taskiq-go host started
// it. It is a usability check (a binary run by hand explains itself instead
// of hanging), not a security measure.
const (
	MagicCookieKey   = "TASKIQ_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "ab2c6b4a0aa86965297e13fda2db591d23fd6a94bd8f72ef"
)

// Environment variables the host sets for a plugin process.
const (
	// EnvLogLevel is the level the plugin logs at (trace, debug, info, warn,
	// error, off); the host passes its own so filtering happens at the source.
	EnvLogLevel = "TASKIQ_PLUGIN_LOG_LEVEL"
	// EnvMaxMessageSize is the largest message body in bytes (see
	// DefaultMaxMessageSize).
	EnvMaxMessageSize = "TASKIQ_PLUGIN_MAX_MESSAGE_SIZE"
)

// DefaultMaxMessageSize is the largest message body (or stored result) that
// crosses a plugin boundary unless taskiq.hcl sets max_message_size. gRPC's
// own 4 MiB default is raised to this, plus headroom for the envelope.
const DefaultMaxMessageSize = 16 << 20

// DefaultPrefetch is the credit window of a delivery stream: how many
// deliveries a broker plugin may hand out before the host settles some.
const DefaultPrefetch = 256

// grpcHeadroom is added to the message size limit for gRPC's frame limits,
// so that a body of exactly MaxMessageSize still fits with its envelope.
const grpcHeadroom = 64 << 10

// pluginSetName is the single plugin name of the go-plugin plugin set; the
// role is chosen by Configure, not by dispensing different names.
const pluginSetName = "taskiq"

// ErrChecksumMismatch is returned by Launch when the plugin binary does not
// match the pinned SHA-256.
var ErrChecksumMismatch = errors.New("plugin binary checksum mismatch")

// ErrIncompatiblePlugin is returned by Launch when the binary is not a
// taskiq-go plugin or speaks another protocol version.
var ErrIncompatiblePlugin = errors.New("incompatible plugin")

func handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// services of server; on the host side it hands out the raw connection and
// GRPCBroker, which Client wraps.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *pluginServer
}

// remoteConn is what the host side dispenses.
type remoteConn struct {
	conn   *grpc.ClientConn
	broker *plugin.GRPCBroker
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
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &remoteConn{conn: c, broker: b}, nil
}

func pluginSets(server *pluginServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {pluginSetName: &grpcPlugin{server: server}},
	}
}

// tooLarge reports a body over the size limit, saying how to raise it.
func tooLarge(what string, size, limit int) error {
	return fmt.Errorf("%w: %s is %d bytes, over the limit of %d bytes; raise max_message_size in taskiq.hcl if such messages are expected",
		ErrMessageTooLarge, what, size, limit)
}

// grpcLimit is the gRPC message limit for a body limit.
func grpcLimit(maxMessageSize int) int {
	return maxMessageSize + grpcHeadroom
}

// chunkBySize splits items into runs whose summed size stays within limit
// (each run holds at least one item), so that a batch of bodies each within
// the limit never makes one gRPC message over it.
func chunkBySize[T any](items []T, limit int, size func(T) int) [][]T {
	if len(items) == 0 {
		return nil
	}
	var out [][]T
	start, total := 0, 0
	for i, it := range items {
		s := size(it) + 64 // envelope of one item: ids, field tags
		if i > start && total+s > limit {
			out = append(out, items[start:i])
			start, total = i, 0
		}
		total += s
	}
	return append(out, items[start:])
}
