package taskiqredis

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Version is the plugin's version, reported in Info.
const Version = "0.1.0"

// Plugin describes the taskiq-redis plugin binary: a broker (stream, list or
// pub/sub mode) and a result backend.
//
// The broker's declared capabilities are those of the default stream mode;
// list and pub/sub mode offer fewer (see the package documentation), and a
// broker built for them reports its own through Capabilities.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    "taskiq-redis",
		Version: Version,
		Broker: &sdk.Factory[sdk.Broker]{
			Schema:       brokerSchema(),
			Capabilities: capabilitiesFor(modeStream),
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
				return newBroker(ctx, cfg)
			},
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Schema:       resultSchema(),
			Capabilities: []string{sdk.CapWait, sdk.CapProgress},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
				return newResultBackend(ctx, cfg)
			},
		},
	}
}

// Capabilities reports what this broker's mode implements.
func (b *broker) Capabilities() []string { return capabilitiesFor(b.opts.mode) }
