package taskiqnats

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Version is the plugin's version, reported in Info.
const Version = "0.1.0"

// BrokerCapabilities are the broker's capabilities with the default
// configuration (dedup is dropped when dedup = false).
var BrokerCapabilities = []string{sdk.CapAckable, sdk.CapLease, sdk.CapDelay, sdk.CapDeadLetter,
	sdk.CapRouting, sdk.CapStableIDs, sdk.CapDedup}

// ResultCapabilities are the result backend's capabilities.
var ResultCapabilities = []string{sdk.CapWait, sdk.CapProgress}

// Plugin describes the taskiq-nats plugin binary: a JetStream broker and a
// JetStream key-value result backend.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    "taskiq-nats",
		Version: Version,
		Broker: &sdk.Factory[sdk.Broker]{
			Schema:       brokerSchema(),
			Capabilities: BrokerCapabilities,
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
				b, err := newBroker(ctx, cfg)
				if err != nil {
					return nil, err
				}
				return b, nil
			},
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Schema:       resultSchema(),
			Capabilities: ResultCapabilities,
			New: func(ctx context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
				r, err := newResultBackend(ctx, cfg)
				if err != nil {
					return nil, err
				}
				return r, nil
			},
		},
	}
}
