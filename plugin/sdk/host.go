package sdk

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Host is the host's service as a plugin sees it: a middleware can kick
// messages and read results through it without opening its own connections.
// Over process boundaries it is one gRPC connection per plugin, set up once.
type Host interface {
	// Kick sends messages through the named broker ("" for the default one),
	// without running pre_send/post_send middlewares. The delay, queue_name
	// and priority labels are honoured.
	Kick(ctx context.Context, broker string, msgs []*wire.Message) error
	// GetResult reads a result from the host's result backend, or ErrNotFound.
	GetResult(ctx context.Context, taskID string) (*wire.Result, error)
	// BrokerCapabilities lists the named broker's capabilities.
	BrokerCapabilities(ctx context.Context, broker string) ([]string, error)
}
