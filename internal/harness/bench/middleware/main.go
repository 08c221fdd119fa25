// Command taskiq-bench-middleware is the middleware plugin of the
// middleware benchmark (docs/plugins.md, "Hooks on the hot path"): it
// implements pre_send, pre_execute and post_execute, each doing next to
// nothing, so that a run with it measures what crossing the process
// boundary for the hooks costs.
package main

import (
	"context"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

type hooks struct{}

func (hooks) PreSend(_ context.Context, msg *wire.Message) error {
	msg.SetLabel("bench_mw", "sent")
	return nil
}

func (hooks) PreExecute(_ context.Context, msg *wire.Message) error {
	msg.SetLabel("bench_mw", "started")
	return nil
}

func (hooks) PostExecute(_ context.Context, _ *wire.Message, res *wire.Result) error {
	if res.Labels == nil {
		res.Labels = map[string]any{}
	}
	res.Labels["bench_mw"] = "done"
	return nil
}

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "taskiq-bench-middleware",
		Version: "0.1.0",
		Middleware: &sdk.Factory[sdk.Middleware]{
			New: func(context.Context, sdk.Config) (sdk.Middleware, error) { return hooks{}, nil },
		},
	})
}
