package retry

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Name is the plugin's name, the binary's name in plugin_dir.
const Name = "taskiq-retry-middleware"

// Version is the plugin's version, reported by Info.
const Version = "0.1.0"

// Plugin describes the plugin binary: one middleware role with the on_error
// hook. The binary's main is sdk.Serve(retry.Plugin()).
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:    Name,
		Version: Version,
		Middleware: &sdk.Factory[sdk.Middleware]{
			Schema: Schema,
			// Check is New's validation without the host (the broker's
			// capabilities are only known to a running host).
			Check: func(_ context.Context, cfg sdk.Config) error {
				_, err := parseOptions(cfg.Raw)
				return err
			},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Middleware, error) {
				m, err := newMiddleware(ctx, cfg)
				if err != nil {
					return nil, err
				}
				return m, nil
			},
		},
		Hooks: []sdk.Hook{sdk.HookOnError},
	}
}
