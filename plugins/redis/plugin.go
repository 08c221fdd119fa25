package taskiqredis

import (
	"context"

	"github.com/redis/go-redis/v9"

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
			// Check decodes and checks the block (TLS files included)
			// without connecting.
			Check: func(_ context.Context, cfg sdk.Config) error {
				_, _, err := decodeBrokerConfig(cfg)
				return err
			},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Broker, error) {
				b, err := credentialChecked[*broker](ctx)(newBroker(ctx, cfg))
				if err != nil {
					return nil, err // not a typed nil in the interface
				}
				return b, nil
			},
		},
		ResultBackend: &sdk.Factory[sdk.ResultBackend]{
			Schema:       resultSchema(),
			Capabilities: []string{sdk.CapWait, sdk.CapProgress},
			Check: func(_ context.Context, cfg sdk.Config) error {
				_, _, err := decodeResultConfig(cfg)
				return err
			},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.ResultBackend, error) {
				r, err := credentialChecked[*resultBackend](ctx)(newResultBackend(ctx, cfg))
				if err != nil {
					return nil, err
				}
				return r, nil
			},
		},
	}
}

// connected is a role with a Redis connection.
type connected interface {
	conn() (redis.UniversalClient, string)
	Close(context.Context) error
}

func (b *broker) conn() (redis.UniversalClient, string)        { return b.client, b.addr }
func (r *resultBackend) conn() (redis.UniversalClient, string) { return r.client, r.addr }

// credentialChecked runs checkCredentials on a role just built and closes
// it when the credentials are refused. It returns a function so that it
// takes the constructor's two results as they are.
func credentialChecked[R connected](ctx context.Context) func(R, error) (R, error) {
	return func(r R, err error) (R, error) {
		var none R
		if err != nil {
			return none, err
		}
		client, addr := r.conn()
		if err := checkCredentials(ctx, client, addr); err != nil {
			_ = r.Close(ctx)
			return none, err
		}
		return r, nil
	}
}

// Capabilities reports what this broker's mode implements.
func (b *broker) Capabilities() []string { return capabilitiesFor(b.opts.mode) }
