package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq/core"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// BenchmarkModuleExecuteInProcess is what a task module does per execution
// besides the crossing: decode the message the host sent and run the task
// (the benchmark task's signature) as ServeModule's module does.
func BenchmarkModuleExecuteInProcess(b *testing.B) {
	ctx := context.Background()
	app := core.NewModule("bench-tasks")
	core.MustTask[[2]int64](app, "bench", func(context.Context, int64, int64, string) ([2]int64, error) {
		return [2]int64{time.Now().UnixNano(), time.Now().UnixNano()}, nil
	}, core.WithParamNames("idx", "at", "payload"))
	tm, err := core.ModulePlugin(app, "1").Tasks.New(ctx, sdk.Config{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"task_id":"0e6051f16e704911973e86e63c949c23","task_name":"bench","labels":{},"labels_types":{},"args":[0,56697,""],"kwargs":{}}`)
	b.ReportAllocs()
	for b.Loop() {
		msg, err := wire.DecodeMessage(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tm.Execute(sdk.WithTaskCall(ctx, &sdk.TaskCall{Broker: "default", DeliveryID: "1-0", Body: body}), msg); err != nil {
			b.Fatal(err)
		}
	}
}
