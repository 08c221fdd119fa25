package taskiqrabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Version is the plugin's version, reported in Info.
const Version = "0.1.0"

// Capabilities are the broker capabilities the plugin declares; a broker
// whose queue has priorities (a classic queue with x-max-priority) adds
// sdk.CapPriority through Capabilities.
var Capabilities = []string{sdk.CapAckable, sdk.CapDelay, sdk.CapDeadLetter, sdk.CapRouting}

// Plugin describes the taskiq-rabbitmq plugin binary: an AMQP 0-9-1 broker.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    "taskiq-rabbitmq",
		Version: Version,
		Broker: &sdk.Factory[sdk.Broker]{
			Schema:       brokerSchema(),
			Capabilities: Capabilities,
			// Check decodes and checks the block without connecting (an
			// existing queue's arguments are only known at start).
			Check: func(_ context.Context, cfg sdk.Config) error {
				_, err := decodeConfig(cfg)
				return err
			},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
				b, err := newBroker(ctx, cfg)
				if err != nil {
					return nil, err // not a typed nil in the interface
				}
				return b, nil
			},
		},
	}
}

func randomTag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
