// Command stamp-middleware is the example plugin of docs/plugins.md: a
// middleware that labels every message on the client side.
package main

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// stamp is a middleware that labels every message it sees on the client.
type stamp struct{ value string }

func (s stamp) PreSend(_ context.Context, msg *wire.Message) error {
	msg.SetLabel("stamped_by", s.value)
	return nil
}

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "taskiq-stamp",
		Version: "0.1.0",
		Middleware: &sdk.Factory[sdk.Middleware]{
			Schema: sdk.Schema{Attributes: []sdk.Attribute{
				{Name: "value", Type: sdk.TypeString, Default: "me", Description: "label value"},
			}},
			New: func(ctx context.Context, cfg sdk.Config) (sdk.Middleware, error) {
				var c struct {
					Value string `json:"value"`
				}
				if err := cfg.Decode(&c); err != nil {
					return nil, err
				}
				if c.Value == "" {
					return nil, sdk.AttrError("value", "must not be empty")
				}
				return stamp{c.Value}, nil
			},
		},
	})
}
